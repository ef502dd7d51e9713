package profile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
)

const targetFile = `target_id: web-2
target_type: nginx
host: web-2
target_config:
  cert_path: /etc/nginx/certs/cert.pem
  key_path: /etc/nginx/certs/key.pem
  post_deploy_verify: {endpoint: "web-2:443"}
`

func good(dir string) string {
	return `profile_id: p-prod
requires_approval: true
required_approvals: 2
approvers: [bob, carol, dave]
key_type: rsa-2048
validity: 720h
subject: {common_name: shop.example.com, organization: [Example]}
sans: [shop.example.com, 127.0.0.1, "*.shop.example.com"]
issuer: {type: localca, ca_cert: /etc/certctl/ca.pem, ca_key: /etc/certctl/ca.key}
targets:
  - target_id: web-1
    target_type: nginx
    host: web-1
    target_config:
      cert_path: /etc/nginx/certs/cert.pem
      key_path: /etc/nginx/certs/key.pem
      post_deploy_verify: {endpoint: "web-1:443"}
  - web-2.yaml
`
}

func parse(t *testing.T, text string) (*Profile, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web-2.yaml"), []byte(targetFile), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func TestParseProfileInlineAndPathTargets(t *testing.T) {
	p, err := parse(t, good(""))
	if err != nil {
		t.Fatal(err)
	}
	if p.ProfileID != "p-prod" || !p.RequiresApproval || p.RequiredApprovals != 2 || len(p.Approvers) != 3 {
		t.Fatalf("approval fields: %+v", p)
	}
	if p.KeyType != KeyRSA2048 || p.Validity.D() != 720*time.Hour || p.RenewBefore.D() != 240*time.Hour {
		t.Fatalf("key/validity/renew_before: %s %s %s", p.KeyType, p.Validity, p.RenewBefore)
	}
	if len(p.Targets) != 2 || p.Targets[0].TargetID != "web-1" || p.Targets[1].TargetID != "web-2" {
		t.Fatalf("targets: %+v", p.Targets)
	}
	if got := p.Subject.String(); got != "CN=shop.example.com,O=Example" {
		t.Fatalf("subject %q", got)
	}
}

func TestParseProfileDefaults(t *testing.T) {
	text := `profile_id: p-dev
sans: [localhost]
issuer: {type: localca, ca_cert: /ca.pem, ca_key: /ca.key}
targets: [web-2.yaml]
`
	p, err := parse(t, text)
	if err != nil {
		t.Fatal(err)
	}
	if p.RequiresApproval || p.RequiredApprovals != 1 || p.KeyType != KeyECDSAP256 || p.Validity.D() != DefaultValidity ||
		p.RenewBefore.D() != DefaultValidity/3 || p.Subject.CommonName != "localhost" {
		t.Fatalf("defaults: %+v", p)
	}
}

func TestParseProfileRefusals(t *testing.T) {
	g := good("")
	for _, c := range []struct {
		name, text, field string
	}{
		{"unknown field", strings.Replace(g, "approvers:", "approver:", 1), "approver"},
		{"duplicate approver case-folded", strings.Replace(g, "[bob, carol, dave]", "[bob, carol, \" BOB \"]", 1), "approvers[2]"},
		{"look-alike approver (Cyrillic o)", strings.Replace(g, "[bob, carol, dave]", "[bob, carol, \"b\u043eb\"]", 1), "approvers[2]"},
		{"full-width duplicate approver", strings.Replace(g, "[bob, carol, dave]", "[bob, carol, \"\uff42\uff4f\uff42\"]", 1), "approvers[2]"},
		{"invisible character in approver", strings.Replace(g, "[bob, carol, dave]", "[bob, carol, \"dave\u200b\"]", 1), "approvers[2]"},
		{"M exceeds pool", strings.Replace(g, "required_approvals: 2", "required_approvals: 4", 1), "required_approvals"},
		{"negative M", strings.Replace(g, "required_approvals: 2", "required_approvals: -1", 1), "required_approvals"},
		{"key type", strings.Replace(g, "rsa-2048", "dsa-1024", 1), "key_type"},
		{"validity", strings.Replace(g, "validity: 720h", "validity: 10m", 1), "validity"},
		{"renew_before", strings.Replace(g, "validity: 720h", "validity: 720h\nrenew_before: 800h", 1), "renew_before"},
		{"bad SAN", strings.Replace(g, "127.0.0.1", "bad_name!", 1), "sans[1]"},
		{"no SANs", strings.Replace(g, `sans: [shop.example.com, 127.0.0.1, "*.shop.example.com"]`, "sans: []", 1), "sans"},
		{"relative CA", strings.Replace(g, "/etc/certctl/ca.pem", "ca.pem", 1), "issuer.ca_cert"},
		{"unknown issuer", strings.Replace(g, "type: localca", "type: acme", 1), "issuer.type"},
		{"profile id", strings.Replace(g, "p-prod", "p/prod", 1), "profile_id"},
		{"inline target field", strings.Replace(g, "key_path: /etc/nginx/certs/key.pem\n      post", "key_path: relative/key.pem\n      post", 1), "targets[0].target_config.key_path"},
		{"inline target typo", strings.Replace(g, "      cert_path: /etc/nginx/certs/cert.pem\n      key_path: /etc/nginx/certs/key.pem\n      post",
			"      cert_pth: /etc/nginx/certs/cert.pem\n      key_path: /etc/nginx/certs/key.pem\n      post", 1), "targets[0].target_config.cert_pth"},
		{"missing target file", strings.Replace(g, "web-2.yaml", "nope.yaml", 1), "targets[1]"},
		{"duplicate target", strings.Replace(g, "target_id: web-1", "target_id: web-2", 1), "targets[1].target_id"},
		{"no targets", strings.Split(g, "targets:")[0], "targets"},
		{"two documents", g + "---\nprofile_id: other\n", "profile"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.text)
			var fe *contract.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("want a refusal naming %s, got %v", c.field, err)
			}
		})
	}
}

func TestActorKeyTrimsAndFolds(t *testing.T) {
	for _, c := range [][2]string{{" ALICE ", "alice"}, {"Bob\t", "bOB"}, {"\u212Aelvin", "kelvin"}, {"ǅemal", "ǆemal"}} {
		if ActorKey(c[0]) != ActorKey(c[1]) {
			t.Errorf("%q and %q should be one actor", c[0], c[1])
		}
	}
	if ActorKey("alice") == ActorKey("alicia") {
		t.Fatal("different names compare equal")
	}
}

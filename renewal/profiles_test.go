package renewal

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/certctl/certctl/connectors/files"
	_ "github.com/certctl/certctl/connectors/nginx"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/target"
)

// The profile and the bypass are the workflow worker's: read from its
// profiles directory and its own environment.
func TestLoadProfileFromTheWorker(t *testing.T) {
	dir := t.TempDir()
	text := "profile_id: p-prod\nrequires_approval: true\napprovers: [bob]\nsubject: {common_name: a.example}\nsans: [a.example]\n" +
		"issuer: {type: localca, ca_cert: /x, ca_key: /y}\n" +
		"targets: [{target_id: w, target_type: nginx, host: h, target_config: {cert_path: /a/c.pem, key_path: /a/k.pem, post_deploy_verify: {enabled: false}}}]\n"
	if err := os.WriteFile(filepath.Join(dir, "p-prod.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &Activities{ProfilesDir: dir}
	t.Setenv(EnvBypass, "")
	res, err := a.LoadProfile(context.Background(), ProfileInput{ProfileID: "p-prod"})
	if err != nil || !res.Profile.RequiresApproval || res.Profile.Approvers[0] != "bob" || res.Bypass {
		t.Fatalf("%+v: %v", res, err)
	}
	t.Setenv(EnvBypass, "true")
	if res, err := a.LoadProfile(context.Background(), ProfileInput{ProfileID: "p-prod"}); err != nil || !res.Bypass {
		t.Fatalf("the worker's bypass not read: %+v %v", res, err)
	}
	_, err = a.LoadProfile(context.Background(), ProfileInput{ProfileID: "p-nope"})
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), filepath.Join(dir, "p-nope.yaml")) {
		t.Fatalf("an uninstalled profile: %v", err)
	}
}

// Every target's verify host must be covered by the profile's SANs, except
// a target whose connector verifies by reading its files back: it has no
// verify host.
func TestCheckTargetsVerifyHost(t *testing.T) {
	tg := func(kind, endpoint string) target.Target {
		return target.Target{TargetID: kind, TargetType: kind, Host: "h", Config: target.Config{CertPath: "/a/c.pem", KeyPath: "/a/k.pem",
			PostDeployVerify: target.Verify{Endpoint: endpoint}}}
	}
	for _, tc := range []struct {
		target  target.Target
		refused bool
	}{
		{tg("files", ""), false},
		{tg("nginx", "a.example:443"), false},
		{tg("nginx", "b.example:443"), true},
	} {
		err := CheckTargets(&profile.Profile{SANs: []string{"a.example"}, Targets: []target.Target{tc.target}})
		if refused := err != nil && strings.Contains(err.Error(), "not covered by the profile's sans"); refused != tc.refused || (!tc.refused && err != nil) {
			t.Errorf("%s %q: %v, want refused %v", tc.target.TargetType, tc.target.Config.PostDeployVerify.Endpoint, err, tc.refused)
		}
	}
}

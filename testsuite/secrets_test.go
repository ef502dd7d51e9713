package testsuite_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/codec"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// codecServer serves the test codec like `certctl codec-server`.
func codecServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(codec.Handler(env.codec, codec.ServerOptions{}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// temporalCLI runs the temporal CLI against the test server.
func temporalCLI(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(env.temporalCLI, append(args, "--address", env.address)...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+env.address)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		t.Logf("temporal %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), err
}

// secretsIn reports where a history export holds key material: in its raw
// text, or inside any payload's base64 "data" once decoded.
func secretsIn(export []byte, keyPEM string) []string {
	blk, _ := pem.Decode([]byte(keyPEM))
	derB64 := base64.StdEncoding.EncodeToString(blk.Bytes)
	needles := []string{"PRIVATE KEY", derB64[:40], derB64[len(derB64)-40 : len(derB64)-4]}
	var found []string
	look := func(where string, b []byte) {
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = append(found, where+" holds "+n[:11]+"…")
			}
		}
	}
	look("export", export)
	eachPayloadData(export, func(raw []byte) { look("payload data", raw) })
	return found
}

// eachPayloadData calls fn with the decoded bytes of every payload's "data"
// in an exported history: one JSON document, or one JSON event per line.
func eachPayloadData(export []byte, fn func(raw []byte)) {
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "data" {
					if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
						fn(raw)
					}
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	var doc any
	if json.Unmarshal(export, &doc) == nil {
		walk(doc)
		return
	}
	for _, line := range bytes.Split(export, []byte("\n")) {
		if json.Unmarshal(line, &doc) == nil {
			walk(doc)
		}
	}
}

// reloadFailsOnce is a reload command that fails the first time, then is
// nginx's own: the deploy's reload fails, the rollback's is real.
func reloadFailsOnce(t *testing.T, n *testsuite.Nginx) target.Command {
	t.Helper()
	script := filepath.Join(n.Dir, "reload-fails-once")
	marker := filepath.Join(n.Dir, "reload-failed-once")
	body := "#!/bin/sh\nif [ ! -e " + marker + " ]; then touch " + marker + "; echo 'reload refused (test)' >&2; exit 1; fi\nexec " +
		strings.Join(n.ReloadCommand(), " ") + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return target.Command{script}
}

// DESIGN "Secrets": a finished history, exported with the temporal CLI, holds
// no private key; through the codec server it decodes.
func TestIntegrationHistoryHoldsNoPrivateKey(t *testing.T) {
	n, _ := startNginx(t)
	url := codecServer(t)
	deployed := issue(t)
	ok := deploy(t, n.Target("secret-ok", testHost), deployed)
	rolledBackSet := issue(t)
	tg := n.Target("secret-rollback", testHost)
	tg.Config.ReloadCommand = reloadFailsOnce(t, n)
	failed := deploy(t, tg, rolledBackSet)
	if ok.code != 0 || failed.lastLine() != "outcome: ReloadFailed" {
		t.Fatalf("setup: exit %d, then %q", ok.code, failed.lastLine())
	}
	for _, c := range []struct {
		run deployRun
		key string
	}{{ok, deployed.KeyPEM}, {failed, rolledBackSet.KeyPEM}} {
		id := c.run.workflowID()
		raw, err := temporalCLI(t, "workflow", "show", "--workflow-id", id, "--output", "json")
		if err != nil {
			t.Fatal(err)
		}
		if found := secretsIn(raw, c.key); len(found) > 0 {
			t.Fatalf("%s: the exported history holds key material: %v", id, found)
		}
		decoded, err := temporalCLI(t, "workflow", "show", "--workflow-id", id, "--output", "json", "--codec-endpoint", url)
		if err != nil {
			t.Fatal(err)
		}
		// Through the codec the input decodes: the same check now finds the
		// key, which proves it can find one.
		if found := secretsIn(decoded, c.key); len(found) == 0 {
			t.Fatalf("%s: decoded through the codec server, the input should show the material", id)
		}
	}
}

// `temporal workflow start … --codec-endpoint` encrypts the operator's JSON
// input, and the deploy runs from it.
func TestIntegrationTemporalCLIStartsEncryptedDeploy(t *testing.T) {
	n, _ := startNginx(t)
	url := codecServer(t)
	fresh := issue(t)
	in, err := json.Marshal(workflows.DeployRequest{Target: n.Target("cli-start", testHost), Material: fresh.Material})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(f, in, 0o600); err != nil {
		t.Fatal(err)
	}
	id := "deploy/cli-start/" + time.Now().UTC().Format("150405.000")
	if _, err := temporalCLI(t, "workflow", "start", "--type", "DeployWorkflow", "--task-queue", contract.TaskQueue,
		"--workflow-id", id, "--input-file", f, "--codec-endpoint", url); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.DeployResult
	if err := env.client.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil || res.Outcome != "Deployed" {
		t.Fatalf("outcome %q, err %v", res.Outcome, err)
	}
	wantServed(t, n, fresh.LeafSHA256)
	raw, err := temporalCLI(t, "workflow", "show", "--workflow-id", id, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	if found := secretsIn(raw, fresh.KeyPEM); len(found) > 0 {
		t.Fatalf("history of a CLI-started deploy holds key material: %v", found)
	}
}

// Every bad input is refused before anything starts: exit 2, the message
// names the field, no workflow, no live file changed.
func TestIntegrationBadInputsRefused(t *testing.T) {
	n, initial := startNginx(t)
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	good := func() (target.Target, testsuite.Set) { return n.Target("bad-input", testHost), issue(t) }
	expired, err := env.ca.Issue(testsuite.LeafOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	future, err := env.ca.Issue(testsuite.LeafOptions{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	other, err := testsuite.NewCA("elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := other.Issue(testsuite.LeafOptions{})
	cases := []struct {
		name  string
		field string
		edit  func(*target.Target, *testsuite.Set)
		raw   string // a target file's text, instead of the edited target
	}{
		{"malformed PEM", "cert_pem", func(_ *target.Target, s *testsuite.Set) {
			s.CertPEM = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
		}, ""},
		{"key does not match", "key_pem", func(_ *target.Target, s *testsuite.Set) { s.KeyPEM = stranger.KeyPEM }, ""},
		{"chain does not link", "chain_pem", func(_ *target.Target, s *testsuite.Set) { s.ChainPEM = stranger.ChainPEM }, ""},
		{"expired leaf", "cert_pem", func(_ *target.Target, s *testsuite.Set) { *s = expired }, ""},
		{"not yet valid leaf", "cert_pem", func(_ *target.Target, s *testsuite.Set) { *s = future }, ""},
		{"relative path", "target_config.key_path", func(tg *target.Target, _ *testsuite.Set) { tg.Config.KeyPath = "certs/key.pem" }, ""},
		{"dot-dot path", "target_config.cert_path", func(tg *target.Target, _ *testsuite.Set) { tg.Config.CertPath = n.CertDir + "/../../etc/passwd" }, ""},
		{"world-readable key mode", "target_config.key_file_mode", func(tg *target.Target, _ *testsuite.Set) { m := target.Mode(0o644); tg.Config.KeyFileMode = &m }, ""},
		{"NUL in path", "target_config.cert_path", nil, "target_id: x\ntarget_type: nginx\ntarget_config:\n  cert_path: \"/tmp/a\\0b\"\n  key_path: /tmp/k\n  post_deploy_verify: {enabled: false}\n"},
		{"shell metacharacter", "target_config.reload_command", nil, "target_id: x\ntarget_type: nginx\ntarget_config:\n  cert_path: /tmp/c\n  key_path: /tmp/k\n  reload_command: \"nginx -s reload && curl evil\"\n  post_deploy_verify: {enabled: false}\n"},
		{"unknown field", "target_config.cert_pth", nil, "target_id: x\ntarget_type: nginx\ntarget_config:\n  cert_pth: /tmp/c\n  key_path: /tmp/k\n"},
		{"oversized target file", "target", nil, "target_id: x\n#" + strings.Repeat("x", target.MaxFileSize) + "\n"},
		{"unknown connector", "target_type", func(tg *target.Target, _ *testsuite.Set) { tg.TargetType = "ngnix" }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg, set := good()
			var r deployRun
			if c.raw != "" {
				r = deployText(t, c.raw, set)
			} else {
				c.edit(&tg, &set)
				r = deploy(t, tg, set)
			}
			if r.code != 2 || !strings.Contains(r.stderr, c.field) || strings.Contains(r.stdout, "workflow:") {
				t.Fatalf("want exit 2 naming %s before any workflow; exit %d, stdout %q, stderr %q", c.field, r.code, r.stdout, r.stderr)
			}
			if strings.Contains(r.stderr, "PRIVATE KEY") || strings.Contains(r.stderr, strings.Split(set.KeyPEM, "\n")[1]) {
				t.Fatal("the refusal prints key material")
			}
			wantUnchanged(t, before)
		})
	}
	wantServed(t, n, initial.LeafSHA256)
	wantNoLeftovers(t, n.CertDir, 0)

	// Forced on purpose, an expired leaf deploys; every other check holds.
	if r := deploy(t, n.Target("bad-input", testHost), expired, "--force-validity"); r.code != 0 {
		t.Fatalf("--force-validity: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	wantServed(t, n, expired.LeafSHA256)
	mismatched := expired
	mismatched.KeyPEM = stranger.KeyPEM
	if r := deploy(t, n.Target("bad-input", testHost), mismatched, "--force-validity"); r.code != 2 {
		t.Fatalf("--force-validity must not let a mismatched key through: exit %d", r.code)
	}
}

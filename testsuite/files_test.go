package testsuite_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certctl/certctl/connectors/files"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// A files target (an application watching a directory: nothing serves its
// certificate) deployed through certctl, the dev server and the host
// worker: the files land with the connector's default modes, no command
// runs (the validate step says so), the verify reads the leaf back from
// cert_path with no endpoint, a second certificate replaces the first, and
// the same certificate again is skipped.
func TestIntegrationFilesDeploy(t *testing.T) {
	dir := t.TempDir()
	cfg := target.Config{
		CertPath:  filepath.Join(dir, "cert.pem"),
		ChainPath: filepath.Join(dir, "chain.pem"),
		KeyPath:   filepath.Join(dir, "privkey.pem"),
		Own:       &files.Config{FullchainPath: filepath.Join(dir, "fullchain.pem")},
	}
	tg := target.Target{TargetID: "files-app", TargetType: files.Name, Host: testHost, Config: cfg}
	layout := func(s testsuite.Set) map[string]string {
		return map[string]string{cfg.CertPath: s.CertPEM, cfg.ChainPath: s.ChainPEM, cfg.KeyPath: s.KeyPEM,
			filepath.Join(dir, "fullchain.pem"): s.CertPEM + s.ChainPEM}
	}

	for i, s := range []testsuite.Set{issue(t), issue(t)} {
		r := deploy(t, tg, s, "--output", "json")
		res := r.result(t)
		if r.code != 0 || res.Outcome != contract.Deployed {
			t.Fatalf("deploy %d: exit %d outcome %s", i+1, r.code, res.Outcome)
		}
		steps := stepDetails(res)
		for _, step := range []string{"plan", "backup", "stage", "validate", "commit", "reload", "verify", "cleanup"} {
			if _, ok := steps[step]; !ok {
				t.Errorf("deploy %d: step %s did not run", i+1, step)
			}
		}
		if d := steps["validate"]; !strings.Contains(d, "server check none: files: no server check") {
			t.Errorf("deploy %d: validate %q, want it to say no server check ran", i+1, d)
		}
		if d := steps["verify"]; !strings.Contains(d, "served "+s.LeafSHA256) {
			t.Errorf("deploy %d: verify %q, want the leaf read back, %s", i+1, d, s.LeafSHA256)
		}
		for p, want := range layout(s) {
			if got, err := os.ReadFile(p); err != nil || string(got) != want {
				t.Errorf("deploy %d: %s does not hold the files layout (%v)", i+1, p, err)
			}
		}
		// New files take the connector's defaults (no default owner: root);
		// the second deploy keeps what the first left.
		wantMode(t, cfg.KeyPath, 0o600, 0)
		for _, p := range []string{cfg.CertPath, cfg.ChainPath, filepath.Join(dir, "fullchain.pem")} {
			wantMode(t, p, 0o644, 0)
		}
		wantNoLeftovers(t, dir, 4*i) // the first deploy had nothing to back up
	}

	last := issue(t)
	if r := deploy(t, tg, last); r.code != 0 {
		t.Fatalf("third deploy: exit %d", r.code)
	}
	before := snapshot(t, cfg.CertPath, cfg.ChainPath, cfg.KeyPath, filepath.Join(dir, "fullchain.pem"))
	r := deploy(t, tg, last, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.SkippedIdempotent {
		t.Fatalf("identical deploy: exit %d outcome %s", r.code, res.Outcome)
	}
	wantUnchanged(t, before)
}

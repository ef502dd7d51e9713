package testsuite_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/connectors/caddy"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/testsuite"
)

// The admin-API reload against a real caddy: it makes caddy re-read
// certificate files replaced under an unchanged config, and a pair caddy
// refuses comes back as caddy's own message while the old leaf keeps
// serving.
func TestCaddyAdminReloadAgainstCaddy(t *testing.T) {
	c := startBeyond(t, "caddy-api")
	cd := c.srv.(*testsuite.Caddy)
	put := func(s testsuite.Set) {
		t.Helper()
		for p, v := range cd.Layout(s) {
			if err := os.WriteFile(p+".tmp", []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p+".tmp", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	reload := caddy.AdminReload{Admin: cd.AdminURL()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fresh := issue(t)
	put(fresh)
	if out, err := reload.Reload(ctx); err != nil {
		t.Fatalf("reload: %v (%s)", err, out)
	}
	c.wantServed(t, fresh.LeafSHA256)

	bad := issue(t)
	bad.KeyPEM = issue(t).KeyPEM
	put(bad)
	_, err := reload.Reload(ctx)
	if err == nil || !strings.Contains(err.Error(), "load: ") {
		t.Fatalf("caddy took a key that does not match: %v", err)
	}
	t.Logf("caddy refused: %v", err)
	// The refused pair on disk, the old leaf still served.
	c.wantServed(t, fresh.LeafSHA256)
	if !c.srv.Running() {
		t.Fatal("caddy stopped")
	}
	put(fresh)

	// Through the pipeline, with no command at all: the reload is the admin
	// endpoint's (the file-mode default, `caddy reload` of
	// /etc/caddy/Caddyfile through localhost:2019, cannot reach this caddy).
	tg := c.target()
	if len(tg.Config.ReloadCommand) != 0 || len(tg.Config.ValidateCommand) != 0 || tg.Config.Own == nil {
		t.Fatalf("not an admin-API target: %+v", tg.Config)
	}
	last := issue(t)
	r := deploy(t, tg, last, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.Deployed {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	if d := stepDetails(res)["validate"]; !strings.Contains(d, "server check none") {
		t.Errorf("validate step %q, want the material check only", d)
	}
	c.wantServed(t, last.LeafSHA256)
}

package testsuite_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/codec"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/testsuite"
)

// The systemd units in deploy/systemd are units systemd takes
// (systemd-analyze verify, with ExecStart at the built worker), they start
// the worker with flags it takes, and every CERTCTL_ variable they set is
// one the worker reads (a renamed variable would leave a unit silently on
// a default).
func TestSystemdUnits(t *testing.T) {
	known := map[string]bool{codec.EnvKeyFile: true, policy.EnvPath: true, profile.EnvDir: true, audit.EnvPath: true, activities.EnvStateDir: true}
	dir := t.TempDir()
	for _, name := range []string{"certctl-worker.service", "certctl-host-worker.service"} {
		src, err := testsuite.RepoFile(filepath.Join("deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		var flags []string
		for _, line := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(line, "Environment=CERTCTL_"); ok {
				if n, _, _ := strings.Cut(v, "="); !known["CERTCTL_"+n] {
					t.Errorf("%s sets CERTCTL_%s, which certctl-worker does not read", name, n)
				}
			}
			if v, ok := strings.CutPrefix(line, "ExecStart=/usr/local/bin/certctl-worker "); ok {
				v = strings.ReplaceAll(strings.ReplaceAll(v, "%H", "web-1"), "$CERTCTL_WORKER_FLAGS", "--workflows")
				flags = strings.Fields(v)
			}
		}
		if flags == nil {
			t.Fatalf("%s: no ExecStart=/usr/local/bin/certctl-worker …", name)
		}
		// --help is refused after the flags only if one of them is.
		out, err := exec.Command(env.worker, append(flags, "-h")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: certctl-worker %s: %v\n%s", name, strings.Join(flags, " "), err, out)
		}
		unit := filepath.Join(dir, name)
		if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, "/usr/local/bin/certctl-worker", env.worker)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}

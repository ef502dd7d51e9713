package testsuite_test

// Attacks on the file steps by an unprivileged local user (uid 65534) who
// owns the certificate directory (the target's configured owner, so
// InsecurePath does not stop the deploy first), racing a real `certctl
// deploy` against a real nginx: planted links and pre-opened files at this
// deploy's temp and backup names, and the certificate directory swapped
// under the deploy. Plus deploys into directories others can write, which
// are refused InsecurePath with nothing written.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

const nobody = 65534

// The attacker is this test binary re-executed as uid 65534 with
// CERTCTL_ATTACK set: init runs it and exits before any test (or TestMain).
func init() {
	if mode := os.Getenv("CERTCTL_ATTACK"); mode != "" {
		os.Exit(attacker(mode, os.Getenv("ATTACK_DIR"), os.Getenv("ATTACK_TARGET"), os.Getenv("ATTACK_STOP")))
	}
}

// attacker watches dir for the first backup name of a deploy (its stamp is in
// the name) and then, by mode:
//   - "link-temp": plants key.pem.certctl-tmp.<stamp> → target (a root-only file);
//   - "link-backup": plants key.pem.certctl-bak.<stamp> → target;
//   - "open-temp": creates key.pem.certctl-tmp.<stamp> itself and keeps it open
//     for reading, hoping root writes the new key into it;
//   - "swap-link" / "swap-dir": once Backup is done (the key's backup exists),
//     renames dir away and puts a link to target (a root-owned directory) or
//     a fresh directory of its own (with copies of the live files) in its
//     place.
//
// It prints what it did, one line each, until the stop file appears; then
// "handle-key" when a handle it opened beforehand reads a private key.
func attacker(mode, dir, target, stop string) int {
	var handles []*os.File
	done := map[string]bool{}
	for {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		names, _ := readNames(dir)
		for _, n := range names {
			i := strings.Index(n, ".certctl-bak.")
			if i < 0 {
				continue
			}
			stamp := n[i+len(".certctl-bak."):]
			if done[stamp] {
				continue
			}
			done[stamp] = true
			switch mode {
			case "link-temp":
				if os.Symlink(target, filepath.Join(dir, "key.pem.certctl-tmp."+stamp)) == nil {
					fmt.Println("planted", "key.pem.certctl-tmp."+stamp)
				}
			case "link-backup":
				if os.Symlink(target, filepath.Join(dir, "key.pem.certctl-bak."+stamp)) == nil {
					fmt.Println("planted", "key.pem.certctl-bak."+stamp)
				}
			case "open-temp":
				p := filepath.Join(dir, "key.pem.certctl-tmp."+stamp)
				if f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666); err == nil {
					handles = append(handles, f)
					fmt.Println("planted", filepath.Base(p))
				}
			case "swap-link", "swap-dir":
				// After Backup (the key's backup is its last), before Stage.
				if fi, err := os.Stat(filepath.Join(dir, n)); !strings.HasPrefix(n, "key.pem.") || err != nil || fi.Size() == 0 {
					done[stamp] = false
					continue
				}
				if os.Rename(dir, dir+".orig") != nil {
					continue
				}
				if mode == "swap-link" {
					_ = os.Symlink(target, dir)
				} else if os.Mkdir(dir, 0o755) == nil {
					// Copies of the live files, so a deploy going by path
					// finds everything it planned.
					for _, name := range []string{"cert.pem", "chain.pem", "key.pem"} {
						if b, err := os.ReadFile(filepath.Join(dir+".orig", name)); err == nil {
							_ = os.WriteFile(filepath.Join(dir, name), b, 0o600)
						}
					}
				}
				fmt.Println("swapped", dir)
				mode = "idle"
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	for _, f := range handles {
		b, _ := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			fmt.Println("handle-key")
		}
	}
	return 0
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// attackerBinary is a copy of this test binary that uid 65534 can run.
func attackerBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(env.workDir, "attacker")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type attack struct {
	cmd   *exec.Cmd
	lines chan string
	seen  []string
	stop  string
}

// startAttacker runs the attacker as uid/gid 65534.
func startAttacker(t *testing.T, mode, dir, target string) *attack {
	t.Helper()
	a := &attack{stop: filepath.Join(t.TempDir(), "stop"), lines: make(chan string, 100)}
	a.cmd = exec.Command(attackerBinary(t), "-test.run=^$")
	a.cmd.Env = append(os.Environ(), "CERTCTL_ATTACK="+mode, "ATTACK_DIR="+dir, "ATTACK_TARGET="+target, "ATTACK_STOP="+a.stop)
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	a.cmd.Stderr = os.Stderr
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
	}()
	t.Cleanup(func() { a.finish(t) })
	return a
}

// await waits for the attacker's first move.
func (a *attack) await(t *testing.T) {
	t.Helper()
	select {
	case l, ok := <-a.lines:
		if !ok {
			t.Fatal("the attacker exited without acting")
		}
		a.seen = append(a.seen, l)
	case <-time.After(time.Minute):
		t.Fatal("the attacker never acted: the deploy never made a backup")
	}
}

// finish stops the attacker and returns what it printed.
func (a *attack) finish(t *testing.T) []string {
	t.Helper()
	if a.cmd.ProcessState == nil {
		_ = os.WriteFile(a.stop, nil, 0o644)
		for l := range a.lines {
			a.seen = append(a.seen, l)
		}
		_ = a.cmd.Wait()
	}
	return a.seen
}

// racedDeploy runs `certctl deploy` for tg on a host worker of its own,
// paused at the failpoint point until the attacker has made its move: the
// race is won by the attacker every time, on any machine.
func racedDeploy(t *testing.T, tg target.Target, set testsuite.Set, point string, a *attack) deployRun {
	t.Helper()
	pause := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(pause, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tg.Host = "attack-files"
	hostWorker(t, tg.Host, failpoint.Env+"="+point+"=pause", failpoint.PauseEnv+"="+pause)
	done := make(chan deployRun, 1)
	go func() { done <- deploy(t, tg, set, "--output", "json") }()
	a.await(t)
	_ = os.Remove(pause)
	select {
	case r := <-done:
		return r
	case <-time.After(2 * time.Minute):
		t.Fatal("the deploy did not end")
	}
	return deployRun{}
}

// ownedByNobody is an nginx whose certificate directory (and its parent)
// belong to uid 65534, the target's configured owner of every file.
func ownedByNobody(t *testing.T) (*testsuite.Nginx, target.Target, testsuite.Set) {
	t.Helper()
	n, initial := startNginx(t)
	// t.TempDir's parent is 0700: let the attacker reach the directory.
	if err := os.Chmod(filepath.Dir(n.Dir), 0o711); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{n.Dir, n.CertDir, n.CertPath, n.ChainPath, n.KeyPath} {
		if err := os.Chown(p, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	tg := n.Target("attack-"+strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), testHost)
	tg.Config.CertOwner, tg.Config.ChainOwner, tg.Config.KeyOwner = "nobody", "nobody", "nobody"
	return n, tg, initial
}

// rootOnlyFile is a root-owned 0600 file outside the certificate directory.
func rootOnlyFile(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "victim.conf")
	if err := os.WriteFile(p, []byte("root's own config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, p
}

func wantVictimUnchanged(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("victim %s: %v", p, err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "root's own config\n" || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("root wrote through the attacker's plant: %s is now %v uid %d holding %q",
			p, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, tail(string(b), 80))
	}
}

func TestIntegrationAttackPlantedFiles(t *testing.T) {
	// Each plant is made while the host worker waits at the failpoint: the
	// temp names once Backup is done (their stamp is in the first backup's
	// name), the key's backup name once the cert's backup is made.
	for mode, point := range map[string]string{"link-temp": "backup:done", "link-backup": "backup:after-file-1", "open-temp": "backup:done"} {
		t.Run(mode, func(t *testing.T) {
			n, tg, initial := ownedByNobody(t)
			_, victim := rootOnlyFile(t)
			a := startAttacker(t, mode, n.CertDir, victim)
			set := issue(t)
			r := racedDeploy(t, tg, set, point, a)
			lines := a.finish(t)
			t.Logf("attacker: %v", lines)
			wantVictimUnchanged(t, victim)
			for _, l := range lines {
				if l == "handle-key" {
					t.Fatal("the attacker read the new private key through a handle opened before the deploy")
				}
			}
			res := r.result(t)
			for _, p := range []string{n.CertPath, n.KeyPath, n.ChainPath} {
				if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
					t.Fatalf("%s is not a regular file after the deploy (%v): the deploy committed a planted link", p, err)
				}
			}
			switch mode {
			case "link-temp", "link-backup":
				// The plant lands before its step runs: the deploy stops there,
				// typed, with the live files untouched.
				if res.Outcome == "Deployed" || !strings.Contains(res.Error, "ConcurrentChange") && !strings.Contains(res.Error, "planted") {
					t.Fatalf("outcome %s (%s): want the planted link refused", res.Outcome, res.Error)
				}
				wantServed(t, n, initial.LeafSHA256)
			case "open-temp":
				// A regular file at the temp name is removed and the temp made
				// afresh: whether the deploy then finishes or stops, the
				// attacker's file never receives the key.
				if res.Outcome == "Deployed" {
					wantServed(t, n, set.LeafSHA256)
				}
			}
			if tmp := testsuite.TempFiles(n.CertDir); len(tmp) > 0 {
				for _, p := range tmp {
					if fi, err := os.Lstat(p); err == nil && fi.Sys().(*syscall.Stat_t).Uid == 0 {
						t.Fatalf("root's temp file %s left behind", p)
					}
				}
			}
		})
	}
}

func TestIntegrationAttackParentSwap(t *testing.T) {
	for _, mode := range []string{"swap-link", "swap-dir"} {
		t.Run(mode, func(t *testing.T) {
			n, tg, _ := ownedByNobody(t)
			evil, victim := rootOnlyFile(t)
			// The link points where root's writes would do harm: a root-owned
			// directory holding root-only files named like the target's.
			victims := []string{victim}
			for _, name := range []string{"cert.pem", "chain.pem", "key.pem"} {
				p := filepath.Join(evil, name)
				if err := os.WriteFile(p, []byte("root's own config\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				victims = append(victims, p)
			}
			before := listNames(t, evil)
			a := startAttacker(t, mode, n.CertDir, evil)
			set := issue(t)
			r := racedDeploy(t, tg, set, "backup:done", a)
			lines := a.finish(t)
			t.Logf("attacker: %v", lines)
			for _, v := range victims {
				wantVictimUnchanged(t, v)
			}
			if got := listNames(t, evil); strings.Join(got, ",") != strings.Join(before, ",") {
				t.Fatalf("root wrote into the directory swapped in: %v, was %v", got, before)
			}
			res := r.result(t)
			if res.Outcome == "Deployed" {
				t.Fatalf("the deploy reports Deployed although its directory was swapped under it: %+v", res)
			}
			if !strings.Contains(res.Error, n.CertDir) {
				t.Fatalf("the error does not name the swapped directory: %s", res.Error)
			}
			// The real directory, moved aside by the attacker, still holds the
			// old files and no temp of root's.
			if tmp := testsuite.TempFiles(n.CertDir + ".orig"); len(tmp) > 0 {
				t.Fatalf("temp files left in the real directory: %v", tmp)
			}
		})
	}
}

func listNames(t *testing.T, dir string) []string {
	t.Helper()
	names, err := readNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Deploys into a 1777 directory and into one owned by another user are
// refused InsecurePath (exit 1, like every outcome but InvalidInput) before anything is written.
func TestIntegrationInsecureDirectoryRefused(t *testing.T) {
	cases := map[string]func(dir string) error{
		"1777":          func(dir string) error { return syscall.Chmod(dir, 0o1777) },
		"another users": func(dir string) error { return os.Chown(dir, nobody, nobody) },
	}
	for name, weaken := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := weaken(dir); err != nil {
				t.Fatal(err)
			}
			off := false
			tg := target.Target{TargetID: "insecure-" + strings.ReplaceAll(name, " ", "-"), TargetType: "nginx", Host: testHost, Config: target.Config{
				CertPath: filepath.Join(dir, "cert.pem"), ChainPath: filepath.Join(dir, "chain.pem"), KeyPath: filepath.Join(dir, "key.pem"),
				ValidateCommand: target.Command{"true"}, ReloadCommand: target.Command{"true"},
				PostDeployVerify: target.Verify{Enabled: &off},
			}}
			r := deploy(t, tg, issue(t))
			if r.code != 1 || r.lastLine() != "outcome: InsecurePath" {
				t.Fatalf("exit %d, last line %q: want exit 1, outcome: InsecurePath", r.code, r.lastLine())
			}
			if !strings.Contains(r.stdout, dir) || !strings.Contains(r.stdout, "chmod go-w") {
				t.Fatalf("the message does not name %s and what to do:\n%s", dir, r.stdout)
			}
			if got := listNames(t, dir); len(got) != 0 {
				t.Fatalf("written into the insecure directory: %v", got)
			}
		})
	}
}

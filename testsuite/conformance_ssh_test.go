package testsuite_test

// The conformance suite's cases for agentless targets over SSH: the same
// connectors (nginx, haproxy, files) with target_config.ssh and no host,
// deployed by the "certctl" queue's worker through Debian's real sshd on a
// loopback port to the real servers' files. The files are "remote" only in
// that they are reached through sshd. Case names follow runConformance's;
// the cases of the transport itself (host keys, policy, a dead host, a link
// planted at the destination) follow.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/certctl/certctl/connectors/files"
	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// overSSH is tg reached over sshd: no host, target_config.ssh set, and a
// reload by signal (haproxy's) turned into the reload command it stands for.
func overSSH(tg target.Target, sshd *testsuite.SSHD, reload string) target.Target {
	tg.Host = ""
	tg.Config.SSH = sshd.SSH()
	if tg.Config.ReloadSignal != "" {
		tg.Config.ReloadSignal, tg.Config.PIDFile = "", ""
		tg.Config.ReloadCommand = target.Command{"sh", "-c", reload}
	}
	return tg
}

func TestConformanceSSH(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o711)
	sshd, err := testsuite.StartSSHD(dir, env.sshPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd log:\n%s", tail(sshd.Logs(), 4000))
		}
		sshd.Stop()
	})
	// A host whose SFTP server leaves new files readable by others.
	umaskDir := t.TempDir()
	_ = os.Chmod(umaskDir, 0o711)
	umaskSSHD, err := testsuite.StartSSHDWith(umaskDir, env.umaskSSHPort, "internal-sftp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(umaskSSHD.Stop)
	type sshCase struct {
		name string
		run  func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD)
	}
	cases := []sshCase{
		{"FirstDeployServedInServerLayout", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) { sshFirstDeploy(t, c, tg, h) }},
		{"IdenticalDeploySkipsWithoutReload", func(t *testing.T, c *confRun, tg target.Target, _ *testsuite.SSHD) { sshIdempotent(t, c, tg) }},
		{"ServerCheckFailsLeavesLiveFilesUntouched", func(t *testing.T, c *confRun, tg target.Target, _ *testsuite.SSHD) { sshCheckFails(t, c, tg) }},
		{"ReloadFailsRestoresOldLeaf", func(t *testing.T, c *confRun, tg target.Target, _ *testsuite.SSHD) { sshReloadFails(t, c, tg) }},
		{"VerifySeesAnotherLeafRollsBack", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) { sshVerifyFails(t, c, tg) }},
		{"DryRunTouchesNothing", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) {
			before := c.snapshot(t)
			r := deploy(t, tg, issue(t), "--dry-run", "--output", "json")
			res := r.result(t)
			if r.code != 0 || res.Outcome != contract.DryRunPassed {
				t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
			}
			// Staged on the worker; the remote server's check reads only
			// live paths, so a dry run does not run it, and says so.
			if d := stepDetails(res)["validate"]; !strings.Contains(d, "server check skipped") {
				t.Errorf("validate step %q, want the server check skipped", d)
			}
			wantSame(t, before)
			if b := c.backups(); len(b) != 0 {
				t.Errorf("a dry run left backups: %v", b)
			}
			c.wantServed(t, c.initial.LeafSHA256)
		}},
		{"ChangedHostKeyRefusedNothingWritten", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) {
			tg.Config.SSH.KnownHostsPath = h.OtherKnownHosts
			r := c.deployFails(t, tg, contract.HostKeyMismatch)
			if !strings.Contains(r.stdout, "changed") {
				t.Errorf("the error does not say the host key changed")
			}
		}},
		{"PinnedHostKeyMismatchRefused", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) {
			other, err := os.ReadFile(filepath.Join(h.Dir, "other_host_ed25519.pub"))
			if err != nil {
				t.Fatal(err)
			}
			tg.Config.SSH.KnownHostsPath, tg.Config.SSH.HostKey = "", strings.TrimSpace(string(other))
			c.deployFails(t, tg, contract.HostKeyMismatch)
		}},
		{"UnknownHostRefusedNoTrustOnFirstUse", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) {
			tg.Config.SSH.KnownHostsPath = h.UnknownHosts
			r := c.deployFails(t, tg, contract.HostKeyMismatch)
			if !strings.Contains(r.stdout, "unknown") {
				t.Errorf("the error does not say the host key is unknown")
			}
			if b, _ := os.ReadFile(h.UnknownHosts); strings.Contains(string(b), fmt.Sprint(h.Port)) {
				t.Errorf("known_hosts was written: %s", b)
			}
		}},
		{"UnlistedHostRefusedByPolicy", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) {
			// The same sshd, named as the policy does not list it.
			tg.Config.SSH.Address = fmt.Sprintf("localhost:%d", h.Port)
			r := c.deployFails(t, tg, contract.PolicyRefused)
			if !strings.Contains(r.stdout, "allow_ssh_hosts") {
				t.Errorf("the refusal does not name allow_ssh_hosts")
			}
		}},
		{"SymlinkAtDestinationRefused", func(t *testing.T, c *confRun, tg target.Target, _ *testsuite.SSHD) { sshSymlinkRefused(t, c, tg) }},
		{"SFTPUmaskLeavingFilesReadableRefused", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) {
			tg.Config.SSH = umaskSSHD.SSH()
			r := c.deployFails(t, tg, contract.InsecurePath)
			if !strings.Contains(r.stdout, "internal-sftp -u 077") {
				t.Errorf("the refusal does not say how to fix the server")
			}
			if b := c.backups(); len(b) != 0 {
				t.Errorf("backups left: %v", b)
			}
		}},
		{"DeadHostUnavailable", func(t *testing.T, c *confRun, tg target.Target, h *testsuite.SSHD) {
			tg.Config.SSH.Address = fmt.Sprintf("127.0.0.1:%d", env.deadSSHPort)
			c.deployFails(t, tg, contract.HostUnavailable)
		}},
	}
	// The keystores go up through an sshd whose SFTP server logs each
	// operation: how the store was written is read from that log.
	logDir := t.TempDir()
	_ = os.Chmod(logDir, 0o711)
	logSSHD, err := testsuite.StartSSHDLoggingSFTP(logDir, env.sftpLogSSHPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd (SFTP logged) log:\n%s\nsftp-server log:\n%s", tail(logSSHD.Logs(), 4000), tail(logSSHD.SFTPOps(), 4000))
		}
		logSSHD.Stop()
	})
	// The cases only a keystore has: its password files read over SFTP.
	keystoreCases := []sshCase{
		{"RenewalKeepsOtherEntries", func(t *testing.T, c *confRun, tg target.Target, _ *testsuite.SSHD) {
			for i := range 2 {
				s := issue(t)
				wantOutcome(t, deploy(t, tg, s), 0, contract.Deployed)
				c.wantServed(t, s.LeafSHA256)
				if err := c.srv.(*testsuite.JavaKeystore).Holds(s); err != nil {
					t.Errorf("deploy %d: %v", i+1, err)
				}
			}
		}},
		{"PasswordFileSymlinkRefused", func(t *testing.T, c *confRun, tg target.Target, _ *testsuite.SSHD) {
			j := c.srv.(*testsuite.JavaKeystore)
			real := j.StorePassFile + ".real"
			if err := os.Rename(j.StorePassFile, real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, j.StorePassFile); err != nil {
				t.Fatal(err)
			}
			before := c.snapshot(t)
			r := deploy(t, tg, issue(t))
			wantOutcome(t, r, 2, contract.InvalidInput)
			if !strings.Contains(r.stdout, "target_config.keystore_password_file") || !strings.Contains(r.stdout, "symbolic link") {
				t.Errorf("the refusal does not name keystore_password_file and the link:\n%s", r.stdout)
			}
			wantSame(t, before)
			c.wantServed(t, c.initial.LeafSHA256)
		}},
		{"WrongStorePasswordRefused", func(t *testing.T, c *confRun, tg target.Target, _ *testsuite.SSHD) {
			j := c.srv.(*testsuite.JavaKeystore)
			if err := os.WriteFile(j.StorePassFile, []byte("not-the-password\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			before := c.snapshot(t)
			r := deploy(t, tg, issue(t))
			wantOutcome(t, r, 2, contract.InvalidInput)
			if !strings.Contains(r.stdout, "target_config.keystore_password_file") || !strings.Contains(r.stdout, "does not open") {
				t.Errorf("the refusal does not name keystore_password_file:\n%s", r.stdout)
			}
			if strings.Contains(r.stdout+r.stderr, "not-the-password") {
				t.Error("the password is in certctl's output")
			}
			noPasswordIn(t, j, []string{"not-the-password"}, r.workflowID())
			wantSame(t, before)
			if b := c.backups(); len(b) != 0 {
				t.Errorf("backups left: %v", b)
			}
			c.wantServed(t, c.initial.LeafSHA256)
		}},
	}
	for _, kind := range []struct {
		name  string
		sshd  *testsuite.SSHD
		extra []sshCase
	}{{"nginx", sshd, nil}, {"haproxy", sshd, nil}, {"javakeystore-jks", logSSHD, keystoreCases}, {"javakeystore-pkcs12", logSSHD, keystoreCases}} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range append(cases[:len(cases):len(cases)], kind.extra...) {
				t.Run(tc.name, func(t *testing.T) {
					c := startConf(t, kind.name)
					tc.run(t, c, overSSH(c.target(), kind.sshd, c.srv.ReloadScript()), kind.sshd)
					c.wantClean(t)
				})
			}
		})
	}
	t.Run("files", func(t *testing.T) {
		t.Parallel()
		sshFiles(t, sshd)
	})
}

func sshFirstDeploy(t *testing.T, c *confRun, tg target.Target, sshd *testsuite.SSHD) {
	fresh := issue(t)
	r := deploy(t, tg, fresh, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.Deployed {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	ran := stepDetails(res)
	// Over SSH the server's check reads the live paths: after Commit,
	// before Reload.
	for _, step := range []string{"plan", "backup", "stage", "validate", "commit", "validate-live", "reload", "verify", "cleanup"} {
		if _, ok := ran[step]; !ok {
			t.Errorf("step %s did not run", step)
		}
	}
	c.wantServed(t, fresh.LeafSHA256)
	c.wantLayout(t, fresh)
	if n := len(c.backups()); n != len(c.srv.LiveFiles()) {
		t.Errorf("%d backups, want one per live file (%d)", n, len(c.srv.LiveFiles()))
	}
	if j, ok := c.srv.(*testsuite.JavaKeystore); ok {
		sshKeystoreFirst(t, j, sshd, r, ran["validate"])
	}
}

// sshKeystoreFirst checks what a keystore deployed over SSH promises beyond
// the layout: the store went up through SFTP as an exclusive temp file,
// owner and mode set before its bytes, renamed over it with posix-rename
// (the SFTP server's own log); keytool's check ran remotely with its
// password from the file; and no password is in a history (decoded),
// certctl's output, the workers', the sshd's, the SFTP server's or the
// JVM's log.
func sshKeystoreFirst(t *testing.T, j *testsuite.JavaKeystore, sshd *testsuite.SSHD, r deployRun, validate string) {
	t.Helper()
	wantMode(t, j.Keystore, javakeystore.StoreMode, 0)
	if want := strings.Join(javakeystore.ListCommand(*j.Config()), " "); !strings.Contains(validate, want) {
		t.Errorf("validate %q, want %q deferred to validate-live (run remotely)", validate, want)
	}
	// In the SFTP server's order: created exclusively, owner and mode set,
	// the bytes written and closed, then renamed over the store.
	log := sshd.SFTPOps()
	tmp := regexp.MustCompile(`open "(` + regexp.QuoteMeta(j.Keystore) + `\.certctl-tmp\.\d+)" flags WRITE,CREATE,EXCL mode `).FindStringSubmatch(log)
	if tmp == nil {
		t.Fatalf("sftp-server logged no exclusive create of %s.certctl-tmp.*:\n%s", j.Keystore, log)
	}
	q, gap := regexp.QuoteMeta(tmp[1]), `(?:.*\n)*?`
	order := regexp.MustCompile(`open "` + q + `" flags WRITE,CREATE,EXCL mode \d+\n` + gap +
		`set "` + q + `" owner 0 group 0\n` + gap + `set "` + q + `" mode 0600\n` + gap +
		`close "` + q + `" bytes read 0 written [1-9]\d*\n` + gap +
		`posix-rename old "` + q + `" new "` + regexp.QuoteMeta(j.Keystore) + `"\n`)
	if !order.MatchString(log) {
		t.Errorf("sftp-server did not log %s created exclusively, owner and mode 0600 set, written, then posix-renamed over %s:\n%s", tmp[1], j.Keystore, log)
	}
	noPasswordIn(t, j, nil, r.workflowID())
	logs := map[string]string{"certctl's output": r.stdout + r.stderr, "sshd's log": sshd.Logs(), "sftp-server's log": log, "the JVM's log": j.Logs()}
	workers, _ := filepath.Glob(filepath.Join(env.workDir, "worker*.log"))
	for _, w := range workers {
		b, _ := os.ReadFile(w)
		logs[w] = string(b)
	}
	store, key, other := testsuite.KeystorePasswords(j.Type)
	for name, text := range logs {
		for _, pw := range []string{store, key, other} {
			if strings.Contains(text, pw) {
				t.Errorf("%s holds the password %q", name, pw)
			}
		}
	}
}

func sshIdempotent(t *testing.T, c *confRun, tg target.Target) {
	fresh := issue(t)
	wantOutcome(t, deploy(t, tg, fresh), 0, contract.Deployed)
	marker := filepath.Join(t.TempDir(), "reloaded")
	tg.Config.ReloadCommand = script(t, fmt.Sprintf("touch %s\nexit 1\n", marker))
	before := c.snapshot(t)
	r := deploy(t, tg, fresh, "--output", "json")
	if res := r.result(t); r.code != 0 || res.Outcome != contract.SkippedIdempotent {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("an identical deploy reloaded the server")
	}
	wantSame(t, before)
	c.wantServed(t, fresh.LeafSHA256)
}

func sshCheckFails(t *testing.T, c *confRun, tg target.Target) {
	broken, err := c.srv.BrokenCheck()
	if err != nil {
		t.Fatal(err)
	}
	tg.Config.ValidateCommand = broken
	// The reload would leave a mark: a failed check never reloads.
	marker := filepath.Join(t.TempDir(), "reloaded")
	tg.Config.ReloadCommand = script(t, fmt.Sprintf("touch %s\n", marker))
	tg.Config.ReloadSignal, tg.Config.PIDFile = "", ""
	r := c.deployFails(t, tg, contract.ValidateFailed)
	if !strings.Contains(r.stdout, broken[0]) {
		t.Errorf("the error does not name the server's check")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a failed check reloaded the server")
	}
}

func sshReloadFails(t *testing.T, c *confRun, tg target.Target) {
	marker := filepath.Join(t.TempDir(), "failed-once")
	tg.Config.ReloadCommand = script(t, fmt.Sprintf(
		"if [ ! -e %[1]s ]; then touch %[1]s; echo 'reload refused (test)' >&2; exit 1; fi\n%[2]s\n", marker, c.srv.ReloadScript()))
	r := c.deployFails(t, tg, contract.ReloadFailed)
	for _, step := range []string{"rollback ", "rollback-reload ", "rollback-verify "} {
		if !strings.Contains(r.stdout, "  "+step) {
			t.Errorf("step %s not run", step)
		}
	}
	if !strings.Contains(r.stdout, "reload refused (test)") {
		t.Errorf("the error does not carry the remote command's output")
	}
	// The failed reload sent nothing; the rollback's made the JVM re-read
	// the old store.
	wantStoreLoads(t, c, 2)
}

// wantStoreLoads waits, for a keystore kind, until its JVM has loaded the
// store n times (its start, then each reload that reached it), the last
// load the initial leaf's: the remote reload_command reached the server,
// and a rollback's made it re-read the restored store.
func wantStoreLoads(t *testing.T, c *confRun, n int) {
	t.Helper()
	j, ok := c.srv.(*testsuite.JavaKeystore)
	if !ok {
		return
	}
	b, err := material.Parse(c.initial.Material)
	if err != nil {
		t.Fatal(err)
	}
	last := "serial " + b.Leaf.SerialNumber.Text(16)
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		var loads []string
		for _, l := range strings.Split(j.Logs(), "\n") {
			if strings.HasPrefix(l, "loaded ") {
				loads = append(loads, l)
			}
		}
		return len(loads) == n && strings.HasSuffix(loads[n-1], last), fmt.Sprintf("the JVM loaded %d time(s), want %d, the last %s: %q", len(loads), n, last, loads)
	})
}

func sshVerifyFails(t *testing.T, c *confRun, tg target.Target) {
	other := issue(t)
	ctx := t.Context()
	addr, err := testsuite.FakeServer(ctx, other, c.srv.Protocol())
	if err != nil {
		t.Fatal(err)
	}
	tg.Config.PostDeployVerify.Endpoint = addr
	tg.Config.PostDeployVerifyAttempts = 2
	c.deployFails(t, tg, contract.VerifyFailed)
	// The JVM re-read the new store, then the restored one.
	wantStoreLoads(t, c, 3)
}

// sshSymlinkRefused plants a link at the remote destination (to a file the
// attacker would like written): Plan refuses it, nothing is written through
// it, and the link and what it points to stay as they were.
func sshSymlinkRefused(t *testing.T, c *confRun, tg target.Target) {
	live := c.srv.LiveFiles()[0]
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(live)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(live); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, live); err != nil {
		t.Fatal(err)
	}
	r := deploy(t, tg, issue(t))
	wantOutcome(t, r, 2, contract.InvalidInput)
	if !strings.Contains(r.stdout, "symbolic link") {
		t.Errorf("the refusal does not name the link")
	}
	if b, _ := os.ReadFile(victim); string(b) != "not a certificate\n" {
		t.Errorf("the link's target was written")
	}
	if fi, err := os.Lstat(live); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the planted link was replaced (%v)", err)
	}
	// Put the server's file back for wantClean.
	if err := os.Remove(live); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(live, saved, 0o600); err != nil {
		t.Fatal(err)
	}
}

// sshFiles deploys plain files over SSH: read-back verify, a second
// certificate replaces the first, the same again is skipped, and a link
// planted in the directory's place is refused.
func sshFiles(t *testing.T, sshd *testsuite.SSHD) {
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := target.Config{
		CertPath: filepath.Join(dir, "cert.pem"), ChainPath: filepath.Join(dir, "chain.pem"), KeyPath: filepath.Join(dir, "privkey.pem"),
		Own: &files.Config{FullchainPath: filepath.Join(dir, "fullchain.pem")},
		SSH: sshd.SSH(),
	}
	tg := target.Target{TargetID: "files-ssh", TargetType: files.Name, Config: cfg}
	t.Run("FirstDeployServedInServerLayout", func(t *testing.T) {
		for i, s := range []testsuite.Set{issue(t), issue(t)} {
			r := deploy(t, tg, s, "--output", "json")
			res := r.result(t)
			if r.code != 0 || res.Outcome != contract.Deployed {
				t.Fatalf("deploy %d: exit %d outcome %s", i+1, r.code, res.Outcome)
			}
			if d := stepDetails(res)["verify"]; !strings.Contains(d, "served "+s.LeafSHA256) {
				t.Errorf("deploy %d: verify %q, want the leaf read back over SFTP", i+1, d)
			}
			for p, want := range map[string]string{cfg.CertPath: s.CertPEM, cfg.ChainPath: s.ChainPEM, cfg.KeyPath: s.KeyPEM,
				filepath.Join(dir, "fullchain.pem"): s.CertPEM + s.ChainPEM} {
				if got, err := os.ReadFile(p); err != nil || string(got) != want {
					t.Errorf("deploy %d: %s does not hold the files layout (%v)", i+1, p, err)
				}
			}
			wantMode(t, cfg.KeyPath, 0o600, 0)
		}
		if tmp := testsuite.TempFiles(dir); len(tmp) > 0 {
			t.Errorf("temp files left behind: %v", tmp)
		}
	})
	t.Run("RenewalReadsTheRemoteLeaf", func(t *testing.T) {
		s := issue(t)
		wantOutcome(t, deploy(t, tg, s), 0, contract.Deployed)
		// The renewal's look at what is deployed goes to the remote host
		// too, host key checked.
		ra := renewal.New("")
		d, err := ra.InspectDeployed(t.Context(), tg)
		if err != nil || !d.Exists || d.LeafSHA256 != s.LeafSHA256 {
			t.Errorf("inspect over SSH: %+v, %v; want leaf %s", d, err, s.LeafSHA256)
		}
		bad := tg
		bad.Config.SSH = sshd.SSH()
		bad.Config.SSH.KnownHostsPath = sshd.OtherKnownHosts
		if _, err := ra.InspectDeployed(t.Context(), bad); err == nil || !strings.Contains(err.Error(), "changed") {
			t.Errorf("inspect with a changed host key: %v", err)
		}
	})
	t.Run("IdenticalDeploySkipsWithoutReload", func(t *testing.T) {
		s := issue(t)
		wantOutcome(t, deploy(t, tg, s), 0, contract.Deployed)
		wantOutcome(t, deploy(t, tg, s), 0, contract.SkippedIdempotent)
	})
	t.Run("SymlinkInPathRefused", func(t *testing.T) {
		real := filepath.Join(t.TempDir(), "elsewhere")
		if err := os.Mkdir(real, 0o755); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(t.TempDir(), "linked")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		lt := tg
		lt.TargetID = "files-ssh-link"
		lt.Config.CertPath, lt.Config.ChainPath, lt.Config.KeyPath = filepath.Join(link, "cert.pem"), filepath.Join(link, "chain.pem"), filepath.Join(link, "privkey.pem")
		lt.Config.Own = &files.Config{FullchainPath: filepath.Join(link, "fullchain.pem")}
		r := deploy(t, lt, issue(t))
		wantOutcome(t, r, 2, contract.InvalidInput)
		if names, _ := os.ReadDir(real); len(names) != 0 {
			t.Errorf("files written through the link: %v", names)
		}
	})
}

// TestConformanceSSHPolicy: the certctl worker applies the host policy to
// agentless targets too. For this test it runs with a policy that lists
// one sshd, the keystores' directories and their own commands (keytool
// -list, kill -HUP): a keystore target outside any of them ends
// PolicyRefused naming the rule and the field, with nothing written and no
// login on the host; inside them it deploys. Not parallel: the shared
// workflow worker is swapped for one with this policy, then started again.
func TestConformanceSSHPolicy(t *testing.T) {
	port, err := testsuite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o711)
	sshd, err := testsuite.StartSSHD(dir, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sshd.Stop)
	kinds := []string{"javakeystore-jks", "javakeystore-pkcs12"}
	runs := map[string]*confRun{}
	p := policy.Policy{AllowSSHHosts: []string{sshd.Address}, AllowCommands: [][]string{{"keytool", "-list"}, {"kill", "-HUP"}}}
	for _, kind := range kinds {
		runs[kind] = startConf(t, kind)
		p.AllowPaths = append(p.AllowPaths, filepath.Dir(runs[kind].srv.LiveFiles()[0]))
	}
	file := filepath.Join(t.TempDir(), "worker.yaml")
	if err := testsuite.WritePolicy(file, p); err != nil {
		t.Fatal(err)
	}
	policyWorkflowWorker(t, file)
	logins := func() int { return strings.Count(sshd.Logs(), "Accepted publickey") }
	refused := func(t *testing.T, c *confRun, tg target.Target, rule, field string) deployRun {
		t.Helper()
		before := logins()
		r := c.deployFails(t, tg, contract.PolicyRefused)
		for _, want := range []string{rule, field, file} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the refusal does not name %s:\n%s", want, r.stdout)
			}
		}
		if n := logins(); n != before {
			t.Errorf("a refused target logged in to the host (%d logins, were %d)", n, before)
		}
		if b := c.backups(); len(b) != 0 {
			t.Errorf("a refused deploy left backups: %v", b)
		}
		return r
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			c := runs[kind]
			j := c.srv.(*testsuite.JavaKeystore)
			base := overSSH(c.target(), sshd, "")
			t.Run("KeystoreOutsideAllowPaths", func(t *testing.T) {
				// A directory beside the allowed one, sharing its prefix.
				other := filepath.Dir(j.Keystore) + "-elsewhere"
				if err := os.Mkdir(other, 0o700); err != nil {
					t.Fatal(err)
				}
				store, err := os.ReadFile(j.Keystore)
				if err != nil {
					t.Fatal(err)
				}
				o := *j.Config()
				o.KeystorePath = filepath.Join(other, filepath.Base(j.Keystore))
				if err := os.WriteFile(o.KeystorePath, store, 0o600); err != nil {
					t.Fatal(err)
				}
				tg := base
				tg.Config.Own = &o
				refused(t, c, tg, "allow_paths", "target_config.keystore_path")
				if b, _ := os.ReadFile(o.KeystorePath); string(b) != string(store) {
					t.Error("the store outside allow_paths was written")
				}
				if names, _ := os.ReadDir(other); len(names) != 1 {
					t.Errorf("files left beside the store outside allow_paths: %v", names)
				}
			})
			t.Run("PasswordFileOutsideAllowPaths", func(t *testing.T) {
				// The store's password, in a file the policy does not
				// list: the worker must not read it (nor any file outside
				// allow_paths its SSH user can read) to open the store.
				pw, err := os.ReadFile(j.StorePassFile)
				if err != nil {
					t.Fatal(err)
				}
				o := *j.Config()
				o.KeystorePasswordFile = filepath.Join(t.TempDir(), "store.pw")
				if err := os.WriteFile(o.KeystorePasswordFile, pw, 0o600); err != nil {
					t.Fatal(err)
				}
				tg := base
				tg.Config.Own = &o
				refused(t, c, tg, "allow_paths", "target_config.keystore_password_file")
			})
			t.Run("ReloadOutsideAllowCommands", func(t *testing.T) {
				marker := filepath.Join(t.TempDir(), "pwned")
				tg := base
				tg.Config.ReloadCommand = target.Command{"touch", marker}
				refused(t, c, tg, "allow_commands", "target_config.reload_command")
				if _, err := os.Stat(marker); err == nil {
					t.Error("the refused reload command ran")
				}
			})
			t.Run("HostOutsideAllowSSHHosts", func(t *testing.T) {
				tg := base
				tg.Config.SSH = sshd.SSH()
				tg.Config.SSH.Address = fmt.Sprintf("localhost:%d", sshd.Port) // the same sshd, by a name the policy does not list
				refused(t, c, tg, "allow_ssh_hosts", "target_config.ssh.address")
			})
			t.Run("InsidePolicyDeploys", func(t *testing.T) {
				fresh := issue(t)
				wantOutcome(t, deploy(t, base, fresh), 0, contract.Deployed)
				c.wantServed(t, fresh.LeafSHA256)
				if err := j.Holds(fresh); err != nil {
					t.Error(err)
				}
			})
			c.wantClean(t)
		})
	}
}

// policyWorkflowWorker stops the shared workflow worker and starts one
// whose host policy is file, until the test ends; then the shared one is
// started again.
func policyWorkflowWorker(t *testing.T, file string) {
	t.Helper()
	workerEnv := []string{"TEMPORAL_ADDRESS=" + env.address}
	env.workflowWorker.Stop()
	p, err := testsuite.StartProcess("worker-ssh-policy", filepath.Join(env.workDir, "worker-ssh-policy.log"), append(workerEnv, policy.EnvPath+"="+file), env.worker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		again, err := testsuite.StartProcess("worker", filepath.Join(env.workDir, "worker-after-ssh-policy.log"), workerEnv, env.worker)
		if err != nil {
			t.Fatalf("restart the workflow worker: %v", err)
		}
		env.workflowWorker = again
	})
	waitPoller(t, contract.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY, strconv.Itoa(p.Pid())+"@")
}

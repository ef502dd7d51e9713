package activities

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

func TestValidateMaterialCheckSwappedKey(t *testing.T) {
	x := newFixture(t, empty())
	old, s, other := issue(t, x.ca), issue(t, x.ca), issue(t, x.ca)
	if _, _, _, err := old.Write(x.dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(x.dir)
	pl := prepare(t, tg, s, false)
	if err := os.WriteFile(pl.staged.Files[2].Temp, []byte(other.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Validate(ctx, pl.validateInput())
	appErr(t, err, contract.ValidateFailed)
	if !strings.Contains(err.Error(), "does not match") {
		t.Errorf("error does not say the key does not match: %v", err)
	}
}

func TestValidateMaterialCheckWrongLeaf(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	// A consistent set, but not the planned leaf.
	for i, r := range roles {
		if err := os.WriteFile(pl.staged.Files[i].Temp, setBytes(x.old)[r], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := (&Activities{}).Validate(ctx, pl.validateInput())
	appErr(t, err, contract.ValidateFailed)
}

func TestValidateCommandFails(t *testing.T) {
	x := newFixture(t)
	x.tg.Config.ValidateCommand = target.Command{"false"}
	pl := prepare(t, x.tg, x.s, false)
	check := func(live bool) {
		t.Helper()
		in := pl.validateInput()
		in.Live = live
		res, err := (&Activities{}).Validate(ctx, in)
		ae := appErr(t, err, contract.ValidateFailed)
		if !ae.NonRetryable() {
			t.Errorf("live=%v: ValidateFailed is retryable", live)
		}
		if !strings.Contains(err.Error(), "false") || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("live=%v: error does not name the command and its status: %v", live, err)
		}
		if res.Command != "false" {
			t.Errorf("live=%v: result command %q", live, res.Command)
		}
	}
	check(false) // against the staged files
	assertFilesHold(t, x.tg, x.old)
	mustCommit(t, pl)
	check(true) // against the live files, after Commit
}

// mounted reports whether path is a mount point in this (the host's) namespace.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func TestValidateStagedView(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	x := newFixture(t)
	stamp := newStamp()
	// The check reads only the live paths; it passes only if, in its view,
	// the live paths hold the staged bytes.
	x.tg.Config.ValidateCommand = target.Command{"cmp", x.tg.Config.CertPath, TempPath(x.tg.Config.CertPath, stamp)}
	pin := planInput(x.tg, x.s, stamp)
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	a := &Activities{}
	if _, err := a.Backup(ctx, in); err != nil {
		t.Fatal(err)
	}
	staged, err := a.Stage(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// Without the view, the check fails: the live cert is the old one.
	if err := runLive(x.tg.Config.ValidateCommand); err == nil {
		t.Fatal("cmp of the live cert and the staged one succeeded on the host")
	}
	vin := ValidateInput{Request: pin.Request, Plan: in.Plan, Staged: staged}
	res, err := a.Validate(ctx, vin)
	noKey(t, err)
	if err != nil {
		t.Fatalf("Validate: %v (result %+v)", err, res)
	}
	if res.ServerCheck != CheckStaged {
		t.Fatalf("server check %q, want %q (note %q)", res.ServerCheck, CheckStaged, res.Note)
	}
	assertFilesHold(t, x.tg, x.old)
	for _, p := range []string{x.tg.Config.CertPath, x.tg.Config.ChainPath, x.tg.Config.KeyPath} {
		if mounted(t, p) {
			t.Errorf("%s is still a mount point on the host", p)
		}
	}

	// The key is bound too: a check reading the live key sees the new one.
	vin.Target.Config.ValidateCommand = target.Command{"grep", "-qF", strings.Split(strings.TrimSpace(x.s.KeyPEM), "\n")[1], x.tg.Config.KeyPath}
	if res, err := a.Validate(ctx, vin); err != nil || res.ServerCheck != CheckStaged {
		t.Errorf("check on the live key path: %+v, %v", res, err)
	}
	noKey(t, err)

	// And a failing check in the view is ValidateFailed, live files untouched.
	vin.Target.Config.ValidateCommand = target.Command{"cmp", x.tg.Config.CertPath, TempPath(x.tg.Config.ChainPath, stamp)}
	_, err = a.Validate(ctx, vin)
	appErr(t, err, contract.ValidateFailed)
	assertFilesHold(t, x.tg, x.old)
}

func runLive(argv target.Command) error {
	_, err := runCommand(ctx, exec.Command(argv[0], argv[1:]...), target.DefaultCommandTimeout, nil)
	return err
}

func TestValidateDeferredWhenDestinationMissing(t *testing.T) {
	x := newFixture(t)
	if err := os.Remove(x.tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	// The check cannot see the staged chain, so it must not run at all here:
	// "false" would fail if it did.
	x.tg.Config.ValidateCommand = target.Command{"false"}
	pl := prepare(t, x.tg, x.s, false)
	res, err := (&Activities{}).Validate(ctx, pl.validateInput())
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if res.ServerCheck != CheckDeferred {
		t.Errorf("server check %q, want %q", res.ServerCheck, CheckDeferred)
	}
	if !strings.Contains(res.Note, x.tg.Config.ChainPath) {
		t.Errorf("note does not name the missing file: %q", res.Note)
	}

	dry := prepare(t, x.tg, x.s, true)
	t.Cleanup(func() { os.RemoveAll(dry.staged.PrivateDir) })
	res, err = (&Activities{}).Validate(ctx, dry.validateInput())
	if err != nil {
		t.Fatalf("dry-run Validate: %v", err)
	}
	if res.ServerCheck != CheckSkipped {
		t.Errorf("dry-run server check %q, want %q", res.ServerCheck, CheckSkipped)
	}
}

func TestValidateDryRunStagedView(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	x := newFixture(t)
	x.tg.Config.ValidateCommand = target.Command{"grep", "-qF", strings.Split(strings.TrimSpace(x.s.KeyPEM), "\n")[1], x.tg.Config.KeyPath}
	listing := listDir(t, x.dir)
	pl := prepare(t, x.tg, x.s, true)
	t.Cleanup(func() { os.RemoveAll(pl.staged.PrivateDir) })
	res, err := (&Activities{}).Validate(ctx, pl.validateInput())
	noKey(t, err)
	if err != nil || res.ServerCheck != CheckStaged {
		t.Fatalf("dry-run Validate: %+v, %v", res, err)
	}
	assertFilesHold(t, x.tg, x.old)
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("dry run wrote beside the destination: %v -> %v", listing, got)
	}
}

func TestValidateLive(t *testing.T) {
	x := newFixture(t)
	if err := os.Remove(x.tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	in := pl.validateInput()
	in.Live = true
	in.Target.Config.ValidateCommand = target.Command{"grep", "-qF", strings.Split(strings.TrimSpace(x.s.KeyPEM), "\n")[1], x.tg.Config.KeyPath}
	res, err := (&Activities{}).Validate(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatalf("live Validate: %v", err)
	}
	if res.ServerCheck != CheckLive {
		t.Errorf("server check %q, want %q", res.ServerCheck, CheckLive)
	}
	// The material check reads the live files too.
	if err := os.WriteFile(x.tg.Config.KeyPath, []byte(x.old.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = (&Activities{}).Validate(ctx, in)
	appErr(t, err, contract.ValidateFailed)
}

// A command's output travels in errors and results (workflow history): a
// check that prints the key must not put it there.
func TestValidateOutputNeverCarriesKey(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	in := pl.validateInput()
	in.Live = true
	in.Target.Config.ValidateCommand = target.Command{"cat", x.tg.Config.KeyPath, filepath.Join(x.dir, "nonexistent")}
	res, err := (&Activities{}).Validate(ctx, in)
	appErr(t, err, contract.ValidateFailed)
	if !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("error lost the command's own message: %v", err)
	}
	if strings.Contains(res.Output, "PRIVATE KEY") || strings.Contains(res.Output, strings.Split(x.s.KeyPEM, "\n")[1]) {
		t.Errorf("result output carries the key: %q", res.Output)
	}
	if strings.Contains(err.Error(), strings.Split(x.s.KeyPEM, "\n")[1]) {
		t.Errorf("error carries key bytes: %v", err)
	}

	in.Target.Config.ValidateCommand = target.Command{"cat", x.tg.Config.KeyPath}
	res, err = (&Activities{}).Validate(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Output, "PRIVATE KEY") || strings.Contains(res.Output, strings.Split(x.s.KeyPEM, "\n")[1]) {
		t.Errorf("result output carries the key: %q", res.Output)
	}
}

// A reload by signal whose pid file names no server process fails Validate,
// before anything live changes.
func TestValidateChecksReloadPIDFile(t *testing.T) {
	x := newFixture(t, empty())
	_, pidFile := startSleep(t)
	tg := newTarget(x.dir)
	tg.TargetType = "signal-test"
	tg.Config.ReloadCommand = nil
	tg.Config.ReloadSignal, tg.Config.PIDFile = "USR2", pidFile
	in := planInput(tg, x.s, newStamp())
	p := mustPlan(t, in)
	a := &Activities{}
	staged, err := a.Stage(ctx, StageInput{PlanInput: in, Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(ctx, ValidateInput{Request: in.Request, Plan: p, Staged: staged}); err != nil {
		t.Fatalf("a pid file naming the server: %v", err)
	}
	self := filepath.Join(x.dir, "self.pid")
	_ = os.WriteFile(self, []byte(fmt.Sprint(os.Getpid())), 0o644)
	in.Target.Config.PIDFile = self
	_, err = a.Validate(ctx, ValidateInput{Request: in.Request, Plan: p, Staged: staged})
	appErr(t, err, contract.ValidateFailed)
	if !strings.Contains(err.Error(), "not signalled") {
		t.Errorf("error %v does not say why", err)
	}
}

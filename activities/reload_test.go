package activities

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

func TestReload(t *testing.T) {
	tg := newTarget(t.TempDir())
	tg.Config.ReloadCommand = target.Command{"false"}
	res, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	appErr(t, err, contract.ReloadFailed)
	if !strings.Contains(err.Error(), "false") || res.Command != "false" {
		t.Errorf("error or result does not name the command: %v, %+v", err, res)
	}
	tg.Config.ReloadCommand = target.Command{"true"}
	res, err = (&Activities{}).Reload(ctx, Request{Target: tg})
	if err != nil || res.Command != "true" {
		t.Errorf("reload true: %+v, %v", res, err)
	}
}

// sleeper connects the reload signal to a process the test owns.
type sleeper struct{ connectors.Connector }

func (sleeper) Defaults() connectors.Defaults {
	return connectors.Defaults{Processes: []string{"sleep"}}
}

func init() {
	nginx, _ := connectors.Get("nginx")
	connectors.Register("signal-test", sleeper{nginx})
}

func startSleep(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cmd, pidFile
}

func TestReloadSignal(t *testing.T) {
	cmd, pidFile := startSleep(t)
	tg := newTarget(t.TempDir())
	tg.TargetType = "signal-test"
	tg.Config.ReloadCommand = nil
	tg.Config.ReloadSignal, tg.Config.PIDFile = "USR1", pidFile
	res, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	if err != nil {
		t.Fatalf("reload by signal: %v", err)
	}
	if !strings.Contains(res.Command, "kill -USR1") || !strings.Contains(res.Output, fmt.Sprint(cmd.Process.Pid)) {
		t.Errorf("result does not say what was signalled: %+v", res)
	}
	// sleep's default action for USR1 is to end: proof the signal arrived.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, state, err := procInfo(cmd.Process.Pid); err != nil || state == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the process did not receive the signal")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloadSignalRefusesOtherProcesses(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "self.pid")
	_ = os.WriteFile(self, []byte(fmt.Sprint(os.Getpid())), 0o644)
	junk := filepath.Join(dir, "junk.pid")
	_ = os.WriteFile(junk, []byte("not a pid"), 0o644)
	init1 := filepath.Join(dir, "init.pid")
	_ = os.WriteFile(init1, []byte("1"), 0o644)
	// A pid that is (almost certainly) free: a process that already ended.
	gone := exec.Command("true")
	_ = gone.Run()
	ended := filepath.Join(dir, "ended.pid")
	_ = os.WriteFile(ended, []byte(fmt.Sprint(gone.Process.Pid)), 0o644)
	for _, tc := range []struct{ pidFile, want string }{
		{self, "not signalled"}, // this test binary is not "sleep"
		{junk, "does not hold a process id"},
		{init1, "does not hold a process id"},
		{ended, "no such process"},
		{filepath.Join(dir, "missing.pid"), "no such file"},
	} {
		tg := newTarget(dir)
		tg.TargetType = "signal-test"
		tg.Config.ReloadCommand = nil
		tg.Config.ReloadSignal, tg.Config.PIDFile = "USR2", tc.pidFile
		_, err := (&Activities{}).Reload(ctx, Request{Target: tg})
		appErr(t, err, contract.ReloadFailed)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.pidFile, err, tc.want)
		}
	}
	// A connector that names no process never signals.
	tg := newTarget(dir)
	tg.TargetType = "postfix"
	tg.Config.ChainPath = ""
	tg.Config.ReloadCommand = nil
	tg.Config.ReloadSignal, tg.Config.PIDFile = "HUP", self
	c, _ := connectors.Get("postfix")
	if r := connectors.ReloadFor(c, tg.Config); r.Signal != "HUP" || len(r.Processes) == 0 {
		t.Fatalf("postfix reload by signal: %+v", r)
	}
	_, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	appErr(t, err, contract.ReloadFailed) // pid is this test, not postfix's master
}

package activities

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// ---- the runner: bounded in time, lifetime and memory ------------------------

// spawner is a command that starts a grandchild in its process group, writes
// "<its pid> <the grandchild's pid>" to pidFile, and waits forever.
func spawner(pidFile string) *exec.Cmd {
	return exec.Command("sh", "-c", `sleep 1000 & echo $$ $! > "$0.tmp"; mv "$0.tmp" "$0"; wait`, pidFile)
}

// waitPIDs waits for the spawner's pid file.
func waitPIDs(t *testing.T, pidFile string) []int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil {
			var pids []int
			for _, f := range strings.Fields(string(b)) {
				n, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("pid file %q", b)
				}
				pids = append(pids, n)
			}
			return pids
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid file %s", pidFile)
	return nil
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	_, state, err := procInfo(pid)
	return err == nil && state != "Z" && state != "X"
}

// assertGone fails unless every pid is dead within a generous bound.
func assertGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			comm, _, _ := procInfo(pid)
			t.Errorf("process %d (%s) of the command survived", pid, comm)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestCommandTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	start := time.Now()
	_, err := runCommand(ctx, spawner(pidFile), time.Second, nil)
	var te *timeoutError
	if !errors.As(err, &te) || te.cancelled {
		t.Fatalf("err %v (%T), want a timeout", err, err)
	}
	if !strings.Contains(err.Error(), "command_timeout (1s)") {
		t.Errorf("error %q does not name the bound", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s with a 1s timeout", d)
	}
	assertGone(t, waitPIDs(t, pidFile)...)
}

func TestCommandCancelKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		waitPIDs(t, pidFile)
		cancel()
	}()
	_, err := runCommand(cctx, spawner(pidFile), time.Hour, nil)
	var te *timeoutError
	if !errors.As(err, &te) || !te.cancelled {
		t.Fatalf("err %v (%T), want cancelled", err, err)
	}
	assertGone(t, waitPIDs(t, pidFile)...)
}

// A command that prints 1 GB costs the worker its ring, not the gigabyte.
func TestCommandOutputMemoryBounded(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := runCommand(ctx, exec.Command("head", "-c", "1073741824", "/dev/zero"), time.Minute, nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("running a command that printed 1 GiB allocated %d MiB", alloc>>20)
	}
	if len(out) > outputTail+len("…") {
		t.Errorf("output tail is %d bytes", len(out))
	}
}

// The output kept is the end of what was printed.
func TestCommandOutputTail(t *testing.T) {
	out, err := runCommand(ctx, exec.Command("sh", "-c", `seq 1 100000; echo the end >&2; exit 3`), time.Minute, nil)
	var ee *exitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("err %v, want exit status 3", err)
	}
	if !strings.HasPrefix(out, "…") || !strings.HasSuffix(out, "99999\n100000\nthe end") || len(out) > outputTail+len("…") {
		t.Errorf("tail %q…%q (%d bytes)", out[:20], out[len(out)-20:], len(out))
	}
}

func TestCommandStartAndSignal(t *testing.T) {
	_, err := runCommand(ctx, exec.Command("certctl-no-such-binary"), time.Minute, nil)
	if !isStartError(err) {
		t.Errorf("missing binary: %v (%T), want a start error", err, err)
	}
	_, err = runCommand(ctx, exec.Command("sh", "-c", "kill -TERM $$"), time.Minute, nil)
	var ee *exitError
	if !errors.As(err, &ee) || ee.sig != syscall.SIGTERM {
		t.Errorf("signalled command: %v", err)
	}
	if out, err := runCommand(ctx, exec.Command("echo", "ok"), time.Minute, nil); err != nil || out != "ok" {
		t.Errorf("echo: %q %v", out, err)
	}
}

const envHelperWorker = "CERTCTL_TEST_HELPER_WORKER"

// TestHelperWorker is not a test: it is the "worker" that
// TestWorkerDeathLeavesNoProcess kills.
func TestHelperWorker(t *testing.T) {
	pidFile := os.Getenv(envHelperWorker)
	if pidFile == "" {
		t.Skip("helper process only")
	}
	_, _ = runCommand(ctx, spawner(pidFile), time.Hour, nil)
	os.Exit(0)
}

// A worker SIGKILLed in the middle of a command leaves no process of it.
func TestWorkerDeathLeavesNoProcess(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	w := exec.Command(os.Args[0], "-test.run=^TestHelperWorker$")
	w.Env = append(os.Environ(), envHelperWorker+"="+pidFile)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	pids := waitPIDs(t, pidFile)
	supervisor := supervisorOf(t, pids[0])
	if err := w.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.Wait()
	assertGone(t, append(pids, supervisor)...)
}

// supervisorOf returns pid's parent, checking it leads pid's process group.
func supervisorOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	if pgid != ppid {
		t.Errorf("command %d: process group %d is not its supervisor %d's", pid, pgid, ppid)
	}
	return ppid
}

func TestRing(t *testing.T) {
	r := newRing(8)
	r.Write([]byte("abc"))
	if r.String() != "abc" {
		t.Errorf("%q", r.String())
	}
	r.Write([]byte("defgh"))
	if r.String() != "abcdefgh" {
		t.Errorf("full, nothing dropped: %q", r.String())
	}
	r.Write([]byte("ij"))
	if r.String() != "…cdefghij" {
		t.Errorf("wrapped: %q", r.String())
	}
	r.Write([]byte("0123456789"))
	if r.String() != "…23456789" {
		t.Errorf("large write: %q", r.String())
	}
}

// ---- the steps: command_timeout, staged view, binaries, scrubbing ---------

// The staged-view check gets the same bounds: timeout kills its group.
func TestValidateStagedViewBounded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	x := newFixture(t)
	pidFile := filepath.Join(x.dir, "pids")
	x.tg.Config.ValidateCommand = target.Command(spawner(pidFile).Args)
	x.tg.Config.CommandTimeout = (*target.Duration)(ptr(2 * time.Second))
	pl := prepare(t, x.tg, x.s, false)
	start := time.Now()
	res, err := (&Activities{}).Validate(ctx, pl.validateInput())
	appErr(t, err, contract.ValidateFailed)
	if res.ServerCheck != CheckStaged || !strings.Contains(err.Error(), "command_timeout (2s)") {
		t.Errorf("check %q, error %v", res.ServerCheck, err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s with a 2s timeout", d)
	}
	assertGone(t, waitPIDs(t, pidFile)...)
	assertFilesHold(t, x.tg, x.old)
}

func ptr[T any](v T) *T { return &v }

func TestReloadTimeout(t *testing.T) {
	x := newFixture(t, empty())
	x.tg.Config.ReloadCommand = target.Command{"sleep", "infinity"}
	x.tg.Config.CommandTimeout = (*target.Duration)(ptr(time.Second))
	start := time.Now()
	_, err := (&Activities{}).Reload(ctx, Request{Target: x.tg, Stamp: newStamp()})
	appErr(t, err, contract.ReloadFailed)
	if !strings.Contains(err.Error(), "command_timeout (1s)") {
		t.Errorf("error %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s", d)
	}
}

// A missing binary is found in Plan, before anything is staged.
func TestPlanResolvesCommands(t *testing.T) {
	x := newFixture(t, empty())
	x.tg.Config.ReloadCommand = target.Command{"certctl-no-such-reload", "now"}
	_, err := (&Activities{}).Plan(ctx, planInput(x.tg, x.s, newStamp()))
	ae := appErr(t, err, contract.ValidateFailed)
	if !strings.Contains(ae.Error(), "target_config.reload_command") || !strings.Contains(ae.Error(), "certctl-no-such-reload") {
		t.Errorf("error does not name the field and binary: %v", ae)
	}
	x.tg = newTarget(x.dir)
	x.tg.Config.ValidateCommand = target.Command{"/nonexistent/nginx", "-t"}
	_, err = (&Activities{}).Plan(ctx, planInput(x.tg, x.s, newStamp()))
	if ae := appErr(t, err, contract.ValidateFailed); !strings.Contains(ae.Error(), "target_config.validate_command") {
		t.Errorf("error: %v", ae)
	}
	// The connector's defaults are resolved too.
	x.tg = newTarget(x.dir)
	x.tg.Config.ValidateCommand, x.tg.Config.ReloadCommand = nil, nil
	t.Setenv("PATH", t.TempDir())
	_, err = (&Activities{}).Plan(ctx, planInput(x.tg, x.s, newStamp()))
	if ae := appErr(t, err, contract.ValidateFailed); !strings.Contains(ae.Error(), "nginx connector's default") {
		t.Errorf("error: %v", ae)
	}
	if entries, _ := os.ReadDir(x.dir); len(entries) != 0 {
		t.Errorf("Plan left files: %v", entries)
	}
}

// A reload that prints the key (base64 body, openssl's hex of the scalar,
// the DER) puts none of it in the result or the error.
func TestReloadOutputScrubbed(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	key := x.tg.Config.KeyPath
	blk, _ := pem.Decode([]byte(x.s.KeyPEM))
	hexText, err := exec.Command("openssl", "pkey", "-text", "-noout", "-in", key).Output()
	if err != nil {
		t.Fatal(err)
	}
	priv := privLines(string(hexText))
	for _, tc := range []struct {
		name string
		argv target.Command
	}{
		{"base64 body", target.Command{"sh", "-c", `grep -v -- ----- "$0"; exit 1`, key}},
		{"base64 one line", target.Command{"sh", "-c", `openssl pkey -in "$0" -outform DER | base64 -w0; exit 1`, key}},
		{"openssl text", target.Command{"sh", "-c", `openssl pkey -text -noout -in "$0"; exit 1`, key}},
		{"raw DER", target.Command{"sh", "-c", `openssl pkey -in "$0" -outform DER; exit 1`, key}},
		{"old key from the backup", target.Command{"sh", "-c", `grep -v -- ----- "$0"; exit 1`, pl.backup.Files[len(pl.backup.Files)-1].Backup}},
	} {
		x.tg.Config.ReloadCommand = tc.argv
		res, err := (&Activities{}).Reload(ctx, Request{Target: x.tg, Stamp: pl.in.Stamp})
		appErr(t, err, contract.ReloadFailed)
		for _, where := range []string{res.Output, err.Error()} {
			for _, secret := range append([]string{base64.StdEncoding.EncodeToString(blk.Bytes)[60:90], strings.Split(x.s.KeyPEM, "\n")[2], strings.Split(x.old.KeyPEM, "\n")[2]}, priv...) {
				if strings.Contains(where, secret) {
					t.Errorf("%s: %q in %q", tc.name, secret, where)
				}
			}
			if bytes.Contains([]byte(where), blk.Bytes[36:60]) {
				t.Errorf("%s: raw DER in %q", tc.name, where)
			}
		}
	}
}

// privLines are the hex lines of the private scalar in `openssl pkey -text`.
func privLines(text string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(l, "priv:"):
			in = true
		case !strings.HasPrefix(l, " "):
			in = false
		case in:
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// caddy's admin endpoint echoing the key (hex of the scalar, base64 of the
// DER) in its error: the HTTP reload's error and output are scrubbed too.
func TestReloadHTTPScrubbed(t *testing.T) {
	x := newFixture(t, holdingNew())
	blk, _ := pem.Decode([]byte(x.s.KeyPEM))
	b64 := base64.StdEncoding.EncodeToString(blk.Bytes)
	scalarHex := fmt.Sprintf("%x", blk.Bytes[36:68]) // a P-256 PKCS#8 key's private scalar
	srv, _ := caddyAdmin(t, http.StatusBadRequest, `{"error":"loading new config: bad key `+b64+` d=`+scalarHex+`"}`)
	tg := caddyAPITarget(x.dir, srv.URL)
	_, err := (&Activities{}).Reload(ctx, Request{Target: tg, Stamp: newStamp()})
	appErr(t, err, contract.ReloadFailed)
	if strings.Contains(err.Error(), b64[40:80]) || strings.Contains(err.Error(), scalarHex[:32]) {
		t.Errorf("the HTTP reload's error carries the key: %v", err)
	}
	if !strings.Contains(err.Error(), "loading new config: bad key") {
		t.Errorf("the error lost caddy's words: %v", err)
	}
}

// A command never sees the worker's credentials: a reload that prints its
// environment prints no codec key and no Temporal API key.
func TestCommandEnvironmentHoldsNoWorkerSecrets(t *testing.T) {
	t.Setenv("CERTCTL_CODEC_KEYS", "k1:c2VjcmV0LWNvZGVjLWtleQ==")
	t.Setenv("TEMPORAL_API_KEY", "secret-api-key")
	t.Setenv("TEMPORAL_TLS_CLIENT_KEY_DATA", "secret-tls-key")
	out, err := runCommand(ctx, exec.Command("env"), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"c2VjcmV0LWNvZGVjLWtleQ", "secret-api-key", "secret-tls-key"} {
		if strings.Contains(out, s) {
			t.Errorf("the command saw the worker's secret %q in its environment:\n%s", s, out)
		}
	}
	if !strings.Contains(out, "PATH=") {
		t.Errorf("the command lost its PATH:\n%s", out)
	}
}

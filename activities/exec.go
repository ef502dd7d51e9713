package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/scrub"
	"github.com/certctl/certctl/target"
)

// Every command of the pipeline (validate, reload, rollback reload; the
// staged-view check too) runs through runCommand, with three bounds:
//
//   - time: at the target's command_timeout, or when the activity is
//     cancelled, the command's whole process group is killed;
//   - lifetime: the command never outlives the worker. A supervisor (this
//     binary re-executed, see supervise) leads the command's process group;
//     the kernel sends it SIGTERM when the worker dies (PR_SET_PDEATHSIG, even
//     on SIGKILL) and it kills the group. The command itself gets SIGKILL if
//     the supervisor dies;
//   - memory: output goes to a fixed ring of outputRing bytes, so a command
//     printing gigabytes costs the worker nothing more.
//
// What the output and errors say is scrubbed of private keys (package
// scrub) before it reaches a result, an error or a log.

// outputRing is how much of a command's output the worker keeps: the last
// bytes, from which the scrubbed tail is cut.
const outputRing = 64 << 10

// outputTail bounds what a command's output contributes to errors and results.
const outputTail = 2048

// envSupervise makes this binary a supervisor (see init); the spec comes on
// its stdin, so no environment size limit applies to it.
const envSupervise = "CERTCTL_SUPERVISE"

// maxSpec bounds the spec a supervisor reads.
const maxSpec = 4 << 20

// waitDelay is how long output may stay open after the command exits (a
// daemon it started that kept the pipe) before the worker stops reading.
const waitDelay = 5 * time.Second

func init() {
	if os.Getenv(envSupervise) == "1" {
		os.Exit(supervise(os.Stdin))
	}
}

// superviseSpec is what the supervisor runs.
type superviseSpec struct {
	Path string   `json:"path"`
	Args []string `json:"args"`
	// Env is the command's environment; nil means the supervisor's own
	// without envSupervise.
	Env []string `json:"env,omitempty"`
	// NewMountNS runs the command in a private mount namespace (the staged
	// view's helper needs one).
	NewMountNS bool `json:"new_mount_ns,omitempty"`
	// Parent is the worker's pid: a supervisor that finds another parent
	// (the worker died before it was ready) runs nothing.
	Parent int `json:"parent"`
}

// superviseStatus is what the supervisor reports on fd 3.
type superviseStatus struct {
	StartError string `json:"start_error,omitempty"`
	Exit       int    `json:"exit"`
	Signal     int    `json:"signal,omitempty"`
}

const statusFD = 3

// supervise is the supervisor's main: it is its process group's leader,
// starts the command in the group, and kills the whole group when the worker
// dies (SIGTERM from PR_SET_PDEATHSIG) or when it is told to stop.
func supervise(specIn io.Reader) int {
	// The command's PR_SET_PDEATHSIG fires when the thread that forked it
	// exits: keep this goroutine on its thread for the command's lifetime.
	runtime.LockOSThread()
	status := os.NewFile(statusFD, "status")
	syscall.CloseOnExec(statusFD)
	report := func(st superviseStatus) int {
		b, _ := json.Marshal(st)
		if status != nil {
			_, _ = status.Write(b)
		}
		return 0
	}
	var sp superviseSpec
	specJSON, err := io.ReadAll(io.LimitReader(specIn, maxSpec))
	if err == nil {
		err = json.Unmarshal(specJSON, &sp)
	}
	if err != nil || len(sp.Args) == 0 {
		return report(superviseStatus{StartError: fmt.Sprintf("certctl supervisor: bad spec: %v", err)})
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if os.Getppid() != sp.Parent {
		return report(superviseStatus{StartError: "certctl supervisor: the worker is gone"})
	}
	cmd := &exec.Cmd{Path: sp.Path, Args: sp.Args, Env: sp.Env, Dir: "/", Stdout: os.Stdout, Stderr: os.Stderr}
	if cmd.Env == nil {
		cmd.Env = withoutEnv(os.Environ(), envSupervise)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if sp.NewMountNS {
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	if err := cmd.Start(); err != nil {
		return report(superviseStatus{StartError: err.Error()})
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-stop:
		_ = syscall.Kill(-syscall.Getpgrp(), syscall.SIGKILL)
		return 1
	case <-done:
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	st := superviseStatus{Exit: cmd.ProcessState.ExitCode()}
	if ws.Signaled() {
		st.Signal = int(ws.Signal())
	}
	return report(st)
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// exitError is a command's unsuccessful end as the supervisor saw it.
type exitError struct {
	code int
	sig  syscall.Signal
}

func (e *exitError) Error() string {
	if e.sig != 0 {
		return "signal: " + e.sig.String()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

// ExitCode is the command's exit code, -1 when a signal ended it.
func (e *exitError) ExitCode() int {
	if e.sig != 0 {
		return -1
	}
	return e.code
}

// timeoutError says a command was stopped at its bound.
type timeoutError struct {
	limit     time.Duration
	cancelled bool
}

func (e *timeoutError) Error() string {
	if e.cancelled {
		return "cancelled: its process group was killed"
	}
	return fmt.Sprintf("still running after command_timeout (%s): its process group was killed", e.limit)
}

// commandErr is a failed command as a step reports it: typed o, the
// command, why it failed and the tail of what it printed, scrubbed.
func commandErr(o string, argv target.Command, out string, err error, sc *scrub.Scrubber) error {
	msg := fmt.Sprintf("%s: %v", argv, err)
	if out != "" {
		msg += ": " + out
	}
	return temporal.NewNonRetryableApplicationError(sc.String(msg), o, nil)
}

type startError struct{ err error }

func (e *startError) Error() string { return "start: " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

func isStartError(err error) bool {
	var se *startError
	return errors.As(err, &se)
}

// runCommand runs cmd (its Path, Args, Env and mount-namespace flag; it is
// never started itself) under a supervisor, within limit, heartbeating while
// it runs, and returns the scrubbed tail of its combined output.
func runCommand(ctx context.Context, cmd *exec.Cmd, limit time.Duration, sc *scrub.Scrubber) (string, error) {
	spec := superviseSpec{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Parent: os.Getpid()}
	if cmd.Err != nil {
		return "", &startError{cmd.Err}
	}
	if spec.Path == "" || len(spec.Args) == 0 {
		return "", &startError{errors.New("empty command")}
	}
	if a := cmd.SysProcAttr; a != nil && a.Unshareflags&syscall.CLONE_NEWNS != 0 {
		spec.NewMountNS = true
	}
	self, err := os.Executable()
	if err != nil {
		return "", &startError{fmt.Errorf("find the supervisor (this binary): %w", err)}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", &startError{err}
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return "", &startError{err}
	}
	defer statusR.Close()

	tctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	out := newRing(outputRing)
	sup := exec.CommandContext(tctx, self)
	sup.Args = []string{"certctl-supervisor", spec.Path}
	sup.Env = append(withoutEnv(os.Environ(), envSupervise), envSupervise+"=1")
	sup.Stdin = bytes.NewReader(b)
	sup.Dir = "/"
	sup.Stdout, sup.Stderr = out, out
	sup.ExtraFiles = []*os.File{statusW}
	sup.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	sup.Cancel = func() error { return syscall.Kill(-sup.Process.Pid, syscall.SIGKILL) }
	sup.WaitDelay = waitDelay

	// PR_SET_PDEATHSIG fires when the forking thread exits, not the
	// process: this goroutine keeps its thread until the supervisor is
	// reaped, so the signal means "the worker died".
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := sup.Start(); err != nil {
		statusW.Close()
		return "", &startError{err}
	}
	statusW.Close()
	stat := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(statusR, 4096))
		stat <- b
	}()
	stop := heartbeat(ctx)
	waitErr := sup.Wait()
	stop()
	var st *superviseStatus
	if b := <-stat; len(b) > 0 {
		st = new(superviseStatus)
		if json.Unmarshal(b, st) != nil {
			st = nil
		}
	}
	text := tail(out.String(), sc)
	switch {
	case st == nil && tctx.Err() != nil:
		// Killed at the bound (the supervisor reports every other end).
		return text, &timeoutError{limit: limit, cancelled: ctx.Err() != nil}
	case st == nil:
		return text, fmt.Errorf("certctl supervisor: %w", waitErr)
	case st.StartError != "":
		return text, &startError{errors.New(st.StartError)}
	case st.Signal != 0:
		return text, &exitError{code: -1, sig: syscall.Signal(st.Signal)}
	case st.Exit != 0:
		return text, &exitError{code: st.Exit}
	}
	// The command succeeded; a process it left behind holding the output
	// (waitDelay expired) is not its failure.
	return text, nil
}

// ring keeps the last n bytes written to it.
type ring struct {
	mu      sync.Mutex
	buf     []byte
	next    int
	full    bool
	dropped bool
}

func newRing(n int) *ring { return &ring{buf: make([]byte, n)} }

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if n >= len(r.buf) {
		r.dropped = r.dropped || r.full || r.next > 0 || n > len(r.buf)
		copy(r.buf, p[n-len(r.buf):])
		r.next, r.full = 0, true
		return n, nil
	}
	if r.full || r.next+n > len(r.buf) {
		r.dropped = true // older bytes are overwritten
	}
	c := copy(r.buf[r.next:], p)
	copy(r.buf, p[c:])
	if r.next+n >= len(r.buf) {
		r.full = true
	}
	r.next = (r.next + n) % len(r.buf)
	return n, nil
}

// String returns what is kept, oldest first, "…" first when bytes were
// dropped.
func (r *ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return string(r.buf[:r.next])
	}
	s := string(r.buf[r.next:]) + string(r.buf[:r.next])
	if r.dropped {
		s = "…" + s
	}
	return s
}

// tail is what a command's or server's output contributes to results and
// errors: scrubbed of keys, then its last outputTail bytes.
func tail(out string, sc *scrub.Scrubber) string {
	out = strings.TrimSpace(sc.String(out))
	if len(out) > outputTail {
		out = "…" + out[len(out)-outputTail:]
	}
	return out
}

// heartbeat records activity heartbeats well inside the heartbeat timeout
// the workflow chose, until the returned stop is called.
func heartbeat(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	every := 5 * time.Second
	if hb := activity.GetInfo(ctx).HeartbeatTimeout; hb > 0 && hb/3 < every {
		every = max(hb/3, 100*time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// resolveCommands finds every binary the pipeline will run (validate and
// reload, the connector's defaults included) before anything is staged: a
// missing one is ValidateFailed naming the field, with nothing live touched.
func resolveCommands(t target.Target) error {
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		return contract.Invalid("target_type", err.Error())
	}
	cfg := t.Config
	for _, cm := range []struct {
		field string
		set   bool
		argv  target.Command
	}{
		{"target_config.validate_command", len(cfg.ValidateCommand) > 0, connectors.ValidateCommand(c, cfg)},
		{"target_config.reload_command", len(cfg.ReloadCommand) > 0, connectors.ReloadFor(c, cfg).Command},
	} {
		if len(cm.argv) == 0 {
			continue
		}
		if _, err := exec.LookPath(cm.argv[0]); err != nil {
			field := cm.field
			if !cm.set {
				field = fmt.Sprintf("%s (not set: the %s connector's default %q)", cm.field, t.TargetType, cm.argv.String())
			}
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"%s: %q cannot be run on host %q (%v): install it, or set %s to the binary that is there; nothing was changed",
				field, cm.argv[0], t.Host, err, cm.field), contract.ValidateFailed, nil)
		}
	}
	return nil
}

// maxKeyFile bounds what is read of a file to learn the keys it holds.
const maxKeyFile = 1 << 20

// scrubberFor knows every private key a command of this deploy could print:
// the material's, when the step has it, and those in the target's files and
// in this deploy's temp and backup files beside them (the old key too).
func scrubberFor(req Request, m *material.Material) *scrub.Scrubber {
	sc := scrub.New()
	if m != nil {
		sc.AddPEM([]byte(m.KeyPEM))
	}
	var ds []connectors.Destination
	if c, err := connectors.Get(req.Target.TargetType); err == nil {
		ds = c.Destinations(req.Target.Config)
	}
	for _, d := range ds {
		p := d.Path
		for _, f := range []string{p, TempPath(p, req.Stamp), BackupPath(p, req.Stamp)} {
			if b := readKeyFile(f); b != nil {
				sc.AddPEM(b)
			}
		}
	}
	return sc
}

// readKeyFile reads a regular file through safefs (no link followed on the
// way or at the name, no FIFO blocked on); nil when there is none.
func readKeyFile(path string) []byte {
	d, err := safefs.OpenDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	defer d.Close()
	f, _, err := d.Open(filepath.Base(path))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil
	}
	return b
}

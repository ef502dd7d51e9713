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
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/scrub"
	"github.com/certctl/certctl/stagedview"
	"github.com/certctl/certctl/supervisor"
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

// waitDelay is how long output may stay open after the command exits (a
// daemon it started that kept the pipe) before the worker stops reading.
const waitDelay = 5 * time.Second

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
	if cmd.Err != nil {
		return "", &startError{cmd.Err}
	}
	return supervise(ctx, supervisor.Spec{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env}, limit, sc)
}

// runInView is runCommand for argv inside the staged view: the supervisor
// mounts binds in a private mount namespace and resolves argv[0] there
// (stagedview.Enter). A view that cannot be had at all is a start error; a
// bind that fails is stagedview.IsHelperFailure.
func runInView(ctx context.Context, binds []stagedview.Bind, argv []string, limit time.Duration, sc *scrub.Scrubber) (string, error) {
	if len(argv) == 0 {
		return "", &startError{errors.New("empty command")}
	}
	if binds == nil {
		binds = []stagedview.Bind{}
	}
	return supervise(ctx, supervisor.Spec{Path: argv[0], Args: argv, Binds: binds}, limit, sc)
}

// supervise runs spec under a supervisor (runCommand).
func supervise(ctx context.Context, spec supervisor.Spec, limit time.Duration, sc *scrub.Scrubber) (string, error) {
	spec.Parent = os.Getpid()
	if spec.Path == "" || len(spec.Args) == 0 {
		return "", &startError{errors.New("empty command")}
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
	sup.Env = append(supervisor.WithoutEnv(os.Environ(), supervisor.EnvVar), supervisor.EnvVar+"=1")
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
	var st *supervisor.Status
	if b := <-stat; len(b) > 0 {
		st = new(supervisor.Status)
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

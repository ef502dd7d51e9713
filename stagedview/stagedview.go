// Package stagedview runs a command in a private mount namespace where staged
// files are bind-mounted over the live paths they will replace. A server's own
// config check (nginx -t, apachectl -t, …) then reads exactly the bytes that
// will be served, through its unchanged configuration, while every other
// process still sees the live files.
//
// The binds must happen between fork and exec, which Go cannot do in-process.
// The supervisor every command already runs under (supervisor/, the worker's
// own binary started again) does it: Enter, on the thread that then forks
// the command, unshares that thread's mount namespace and mounts the binds,
// so the command starts inside the view. (Before, a second copy of the
// worker's binary ran between the supervisor and the command only to mount
// and exec: ~8 ms of CPU a validate, most of it the binary's package inits;
// docs/performance.md.) Like the supervisor, this package imports only the
// standard library, so its code is ready before the heavy packages' inits.
package stagedview

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Bind mounts Src over Dst inside the view.
type Bind struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// ErrUnavailable means this process cannot create a mount namespace (not
// root, no CAP_SYS_ADMIN, not Linux): the caller checks the live files later.
var ErrUnavailable = errors.New("private mount namespace unavailable")

// HelperExit is the exit code reported for a view that could not be set up
// (a bind that failed); its message starts with Prefix.
const HelperExit = 125

// Prefix starts every message about setting up the view.
const Prefix = "certctl stagedview: "

// IsHelperFailure reports whether a run failed in setting up the view (the
// bind mounts), not in the command itself. err is the run's error: an
// *exec.ExitError, or any error with the exit code (a supervisor's report).
func IsHelperFailure(err error, output string) bool {
	var ee interface{ ExitCode() int }
	return errors.As(err, &ee) && ee.ExitCode() == HelperExit && strings.Contains(output, Prefix)
}

// Failure is a view Enter could not set up, or a command not found in it.
type Failure struct {
	// Unavailable: no mount namespace here at all (wraps ErrUnavailable);
	// the command never ran and the caller falls back as at a start error.
	Unavailable bool
	// Exit is the code to report otherwise: HelperExit for a bind that
	// failed, 127 for a command not found in the view.
	Exit int
	Err  error
}

func (f *Failure) Error() string { return Prefix + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// Enter puts the calling OS thread in a private mount namespace ("/"
// recursively private, so nothing propagates back to the host), mounts the
// binds there and resolves argv0 in it. The caller has locked its goroutine
// to the thread (runtime.LockOSThread) and starts the command from it, so
// the command inherits the view; the thread never serves another goroutine.
func Enter(binds []Bind, argv0 string) (string, error) {
	if err := enterNamespace(); err != nil {
		return "", &Failure{Unavailable: true, Err: fmt.Errorf("%w: %v", ErrUnavailable, err)}
	}
	if err := mountAll(binds); err != nil {
		return "", &Failure{Exit: HelperExit, Err: err}
	}
	path, err := lookPath(argv0)
	if err != nil {
		return "", &Failure{Exit: 127, Err: err}
	}
	return path, nil
}

// lookPath is exec.LookPath without os/exec (which the supervisor must not
// import: see its package comment): a name with a slash as it is, else the
// first absolute directory of $PATH holding an executable regular file of
// that name (a relative one is skipped, as exec.LookPath refuses it).
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return name, nil
	}
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if !strings.HasPrefix(dir, "/") {
			continue
		}
		p := strings.TrimSuffix(dir, "/") + "/" + name
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in $PATH", name)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

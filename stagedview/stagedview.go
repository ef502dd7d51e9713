// Package stagedview runs a command in a private mount namespace where staged
// files are bind-mounted over the live paths they will replace. A server's own
// config check (nginx -t, apachectl -t, …) then reads exactly the bytes that
// will be served, through its unchanged configuration, while every other
// process still sees the live files.
//
// The binds must happen between fork and exec, which Go cannot do in-process,
// so the current executable is re-run as a helper: Command sets an environment
// variable that this package's init recognises; the helper mounts and execs.
package stagedview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

const envBinds = "CERTCTL_STAGEDVIEW_BINDS"

// Bind mounts Src over Dst inside the view.
type Bind struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// ErrUnavailable means this process cannot create a mount namespace (not
// root, no CAP_SYS_ADMIN, not Linux): the caller checks the live files later.
var ErrUnavailable = errors.New("private mount namespace unavailable")

func init() {
	if spec := os.Getenv(envBinds); spec != "" {
		os.Exit(helper(spec))
	}
}

// Command returns a command that runs argv with binds applied. The caller
// sets Stdout/Stderr and runs it; a start failure wraps ErrUnavailable.
func Command(ctx context.Context, binds []Bind, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	spec, err := json.Marshal(binds)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, argv...)
	cmd.Env = append(withoutVar(os.Environ()), envBinds+"="+string(spec))
	if err := setNamespace(cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// helperExit is the helper's exit code when it could not set up the view.
const helperExit = 125

// IsHelperFailure reports whether a run failed in setting up the view (the
// bind mounts), not in the command itself. err is the run's error: an
// *exec.ExitError, or any error with the exit code (a supervisor's report).
func IsHelperFailure(err error, output string) bool {
	var ee interface{ ExitCode() int }
	return errors.As(err, &ee) && ee.ExitCode() == helperExit && strings.Contains(output, "certctl stagedview:")
}

func withoutVar(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, envBinds+"=") {
			out = append(out, e)
		}
	}
	return out
}

func helper(spec string) int {
	var binds []Bind
	if err := json.Unmarshal([]byte(spec), &binds); err != nil {
		fmt.Fprintf(os.Stderr, "certctl stagedview: bad bind spec: %v\n", err)
		return helperExit
	}
	argv := os.Args[1:]
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "certctl stagedview: no command")
		return helperExit
	}
	if err := mountAll(binds); err != nil {
		fmt.Fprintf(os.Stderr, "certctl stagedview: %v\n", err)
		return helperExit
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "certctl stagedview: %v\n", err)
		return 127
	}
	err = execve(path, argv, withoutVar(os.Environ()))
	fmt.Fprintf(os.Stderr, "certctl stagedview: exec %s: %v\n", path, err)
	return 126
}

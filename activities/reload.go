package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/scrub"
)

// Reload runs the reload command, sends the reload signal to the pid in the
// pid file, or makes the connector's HTTP reload (connectors.ReloadFor says
// which).
func (a *Activities) Reload(ctx context.Context, req Request) (CommandResult, error) {
	c, err := connectorOf(req.Target)
	if err != nil {
		return CommandResult{}, err
	}
	r := connectors.ReloadFor(c, req.Target.Config)
	res := CommandResult{Command: r.String()}
	fsys, release, err := a.fsFor(ctx, req.Target)
	if err != nil {
		return res, err
	}
	defer release()
	if req.Target.Remote() && (r.Signal != "" || r.HTTP != nil) {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: over SSH a reload is a command: set target_config.reload_command", r), contract.ReloadFailed, nil)
	}
	limit, sc := req.Target.Config.CommandLimit(), scrubberFor(fsys, req, nil)
	if r.Signal != "" {
		res.Output, err = signalPIDFile(r)
		if err != nil {
			return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", r, err), contract.ReloadFailed, nil)
		}
		failpoint.Hit("reload:done")
		return res, nil
	}
	if r.HTTP != nil {
		res.Output, err = reloadHTTP(ctx, r.HTTP, limit, sc)
		if err != nil {
			return res, temporal.NewNonRetryableApplicationError(sc.String(fmt.Sprintf("%s: %v", r, err)), contract.ReloadFailed, nil)
		}
		failpoint.Hit("reload:done")
		return res, nil
	}
	argv := r.Command
	if len(argv) == 0 {
		// Neither the connector nor the target has a reload: nothing runs.
		res.Note = req.Target.TargetType + ": no reload"
		return res, nil
	}
	res.Output, err = fsys.Run(ctx, argv, limit, sc)
	if isTransport(err) {
		return res, err
	}
	if err != nil {
		return res, commandErr(contract.ReloadFailed, argv, res.Output, err, sc)
	}
	failpoint.Hit("reload:done")
	return res, nil
}

// signalPIDFile sends r.Signal to the process whose pid r.PIDFile holds,
// after checking that process is one of r.Processes: a stale pid file that
// names another process is an error, never a signal to it.
func signalPIDFile(r connectors.Reload) (string, error) {
	pid, comm, err := reloadPID(r)
	if err != nil {
		return "", err
	}
	if err := syscall.Kill(pid, reloadSignals[r.Signal]); err != nil {
		return "", fmt.Errorf("signal pid %d: %w", pid, err)
	}
	return fmt.Sprintf("sent SIG%s to pid %d (%s)", r.Signal, pid, comm), nil
}

// reloadPID reads the pid a reload signal would go to and checks it is a
// live process of the connector's server.
func reloadPID(r connectors.Reload) (pid int, comm string, err error) {
	if _, ok := reloadSignals[r.Signal]; !ok {
		return 0, "", fmt.Errorf("signal %q is not a reload signal", r.Signal)
	}
	if len(r.Processes) == 0 {
		return 0, "", errors.New("this connector names no process a reload signal may go to; use reload_command")
	}
	f, err := os.Open(r.PIDFile)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 64))
	f.Close()
	if err != nil {
		return 0, "", err
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, "", fmt.Errorf("%s does not hold a process id", r.PIDFile)
	}
	comm, state, err := procInfo(pid)
	if err != nil {
		return 0, "", fmt.Errorf("pid %d from %s: no such process (a stale pid file?)", pid, r.PIDFile)
	}
	if state == "Z" || state == "X" {
		return 0, "", fmt.Errorf("pid %d from %s has exited", pid, r.PIDFile)
	}
	for _, p := range r.Processes {
		if comm == p {
			return pid, comm, nil
		}
	}
	return 0, "", fmt.Errorf("pid %d from %s is %q, not %s: not signalled (a stale pid file?)", pid, r.PIDFile, comm, strings.Join(r.Processes, " or "))
}

var reloadSignals = map[string]syscall.Signal{"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2}

// procInfo reads a process's command name and state from /proc/PID/stat.
func procInfo(pid int) (comm, state string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", err
	}
	// "PID (COMM) STATE …"; COMM may hold spaces and parentheses.
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+3 > len(s) {
		return "", "", fmt.Errorf("unreadable /proc/%d/stat", pid)
	}
	return s[open+1 : end], s[end+2 : end+3], nil
}

// reloadHTTP makes an HTTP reload (caddy's GET config and POST load) within
// limit, heartbeating while it runs, and returns the scrubbed tail of the
// server's answer.
func reloadHTTP(ctx context.Context, h connectors.HTTPReload, limit time.Duration, sc *scrub.Scrubber) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	stop := heartbeat(ctx)
	out, err := h.Reload(ctx)
	stop()
	return tail(out, sc), err
}

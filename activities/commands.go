package activities

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/scrub"
	"github.com/certctl/certctl/stagedview"
	"github.com/certctl/certctl/target"
)

// settlePauses are the waits before each probe of one verify attempt.
var settlePauses = []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}

// Validate checks what will be served (DESIGN promise 4). First the material
// as it sits in the staged files; then the server's own check, run against
// the staged files through a private mount namespace. Where that cannot be
// done here the result says "deferred": the workflow runs Validate again with
// Live after Commit and before Reload.
func (a *Activities) Validate(ctx context.Context, in ValidateInput) (ValidateResult, error) {
	res, err := a.validate(ctx, in)
	if err == nil {
		failpoint.Hit("validate:done")
	}
	return res, err
}

func (a *Activities) validate(ctx context.Context, in ValidateInput) (ValidateResult, error) {
	c, err := connectors.Get(in.Target.TargetType)
	if err != nil {
		return ValidateResult{}, contract.Invalid("target_type", err.Error())
	}
	if err := checkStaged(in.Request, in.Plan, in.Staged); err != nil {
		return ValidateResult{}, err
	}
	if err := a.checkFiles(in); err != nil {
		return ValidateResult{}, err
	}
	// A reload by signal can be checked without sending it: a pid file that
	// names no live server process fails here, before anything live changes,
	// not at reload time with the new files in place.
	if r := connectors.ReloadFor(c, in.Target.Config); r.Signal != "" {
		if _, _, err := reloadPID(r); err != nil {
			return ValidateResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("reload (%s): %v", r, err), contract.ValidateFailed, nil)
		}
	}
	argv := connectors.ValidateCommand(c, in.Target.Config)
	res := ValidateResult{Command: argv.String()}
	if len(argv) == 0 {
		res.ServerCheck = CheckNone
		return res, nil
	}
	limit, sc := in.Target.Config.CommandLimit(), scrubberFor(in.Request, nil)
	if in.Live {
		res.ServerCheck = CheckLive
		res.Output, err = runCommand(ctx, exec.Command(argv[0], argv[1:]...), limit, sc)
		return res, validateErr(argv, res.Output, err, sc)
	}
	var binds []stagedview.Bind
	for i, s := range in.Staged.Files {
		if !in.Plan.Files[i].Exists {
			res.Note = s.Path + " does not exist yet, so the check cannot see the staged file in its place"
			break
		}
		binds = append(binds, stagedview.Bind{Src: s.Temp, Dst: s.Path})
	}
	if res.Note == "" {
		cmd, err := stagedview.Command(ctx, binds, argv)
		if err == nil {
			res.ServerCheck = CheckStaged
			res.Output, err = runCommand(ctx, cmd, limit, sc)
			if !isStartError(err) && !stagedview.IsHelperFailure(err, res.Output) {
				return res, validateErr(argv, res.Output, err, sc)
			}
		}
		res.Note = fmt.Sprintf("no private mount namespace here (%v)", err)
	}
	if in.DryRun {
		res.ServerCheck = CheckSkipped
		return res, nil
	}
	res.ServerCheck = CheckDeferred
	return res, nil
}

// checkFiles re-reads the files that will be served (staged, or live after
// Commit) and checks them as material: what is on disk is what matters.
func (a *Activities) checkFiles(in ValidateInput) error {
	var all []byte
	for i, f := range in.Plan.Files {
		p := f.Path
		if !in.Live {
			p = in.Staged.Files[i].Temp
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		all = append(append(all, b...), '\n')
	}
	b, err := material.ParseConcatenated("staged files", all)
	if err == nil {
		err = b.Check(in.clock(a.now()), "")
	}
	if err == nil && b.LeafSHA256() != in.Plan.LeafSHA256 {
		err = fmt.Errorf("the staged leaf is not the planned one")
	}
	if err != nil {
		return temporal.NewNonRetryableApplicationError("material check of the files to be served: "+err.Error(), contract.ValidateFailed, nil)
	}
	return nil
}

func validateErr(argv target.Command, out string, err error, sc *scrub.Scrubber) error {
	if err == nil {
		return nil
	}
	return commandErr(contract.ValidateFailed, argv, out, err, sc)
}

// Reload runs the reload command, sends the reload signal to the pid in the
// pid file, or makes the connector's HTTP reload (connectors.ReloadFor says
// which).
func (a *Activities) Reload(ctx context.Context, req Request) (CommandResult, error) {
	c, err := connectors.Get(req.Target.TargetType)
	if err != nil {
		return CommandResult{}, contract.Invalid("target_type", err.Error())
	}
	r := connectors.ReloadFor(c, req.Target.Config)
	res := CommandResult{Command: r.String()}
	limit, sc := req.Target.Config.CommandLimit(), scrubberFor(req, nil)
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
		return res, nil
	}
	res.Output, err = runCommand(ctx, exec.Command(argv[0], argv[1:]...), limit, sc)
	if err != nil {
		return res, commandErr(contract.ReloadFailed, argv, res.Output, err, sc)
	}
	failpoint.Hit("reload:done")
	return res, nil
}

// Verify dials the endpoint and compares the served leaf's SHA-256 with the
// expected one. A mismatch or a failed handshake is retryable: the workflow's
// retry policy gives the server time (1s, 2s, 4s … capped) to pick it up.
func (a *Activities) Verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	cfg := in.Target.Config
	_, _, _, timeout := cfg.VerifyPolicy()
	res := VerifyResult{Endpoint: cfg.PostDeployVerify.Endpoint}
	if activity.IsActivity(ctx) {
		res.Attempt = activity.GetInfo(ctx).Attempt
	}
	// A server swaps certificates a moment after its reload command returns
	// (nginx re-reads on SIGHUP): a few quick probes inside one attempt save
	// the retry policy's first full second in the common case.
	// The whole attempt, quick probes included, stays within the timeout,
	// so a silent endpoint ends the attempt with its own error, not the
	// activity's start-to-close timeout.
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var served string
	var err error
probes:
	for i, pause := range settlePauses {
		if pause > 0 {
			select {
			case <-actx.Done():
				break probes
			case <-time.After(pause):
			}
		}
		if i > 0 && actx.Err() != nil {
			break
		}
		failpoint.Hit("verify:probe")
		served, err = probeTarget(actx, in.Target, timeout)
		metrics.VerifyAttemptsTotal.Inc()
		if err == nil && served == in.Expected {
			break
		}
	}
	if err != nil {
		return res, temporal.NewApplicationError(fmt.Sprintf("verify %s: %v", res.Endpoint, err), contract.VerifyUnreachable)
	}
	res.Served = served
	if served != in.Expected {
		return res, temporal.NewApplicationError(
			fmt.Sprintf("verify %s: serves leaf %s, want %s", res.Endpoint, short(served), short(in.Expected)), contract.VerifyMismatch, res)
	}
	return res, nil
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

// probeTarget probes a target's verify endpoint with its protocol (the
// target's post_deploy_verify.protocol, else its connector's default).
func probeTarget(ctx context.Context, t target.Target, timeout time.Duration) (string, error) {
	c, _ := connectors.Get(t.TargetType)
	v := t.Config.PostDeployVerify
	return probeProtocol(ctx, v.Endpoint, v.ServerName, connectors.VerifyProtocol(c, t.Config), timeout)
}

// probe does one TLS handshake and returns the SHA-256 of the served leaf.
// The chain is not verified: the fingerprint comparison is the check.
func probe(ctx context.Context, endpoint, serverName string, timeout time.Duration) (string, error) {
	return probeProtocol(ctx, endpoint, serverName, target.ProtocolTLS, timeout)
}

// probeProtocol is probe after the protocol's plaintext prelude: nothing for
// "tls", EHLO and STARTTLS for "smtp-starttls", STARTTLS for
// "imap-starttls". The context bounds the whole exchange.
func probeProtocol(ctx context.Context, endpoint, serverName, protocol string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if serverName == "" {
		if h := material.HostOf(endpoint); net.ParseIP(h) == nil {
			serverName = h
		}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return "", err
	}
	defer raw.Close()
	// The plaintext exchange reads and writes the connection directly: its
	// deadline, and closing it when the context ends, keep it in bounds.
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	switch protocol {
	case "", target.ProtocolTLS:
	case target.ProtocolSMTPStartTLS:
		err = smtpStartTLS(raw)
	case target.ProtocolIMAPStartTLS:
		err = imapStartTLS(raw)
	default:
		err = fmt.Errorf("unknown protocol %q", protocol)
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%s: %w", protocol, ctx.Err())
		}
		return "", fmt.Errorf("%s: %w", protocol, err)
	}
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: serverName}) //nolint:gosec // fingerprint compared below
	if err := conn.HandshakeContext(ctx); err != nil {
		return "", err
	}
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", errors.New("no certificate served")
	}
	return material.Fingerprint(certs[0].Raw), nil
}

// Bounds on what a plaintext prelude reads from a server.
const (
	maxReplyLines = 64
	maxLine       = 1024
)

// readLine reads one CRLF- (or LF-) terminated line of at most maxLine bytes.
func readLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxLine {
			return "", fmt.Errorf("server sent a line longer than %d bytes", maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		return strings.TrimRight(string(line), "\r\n"), nil
	}
}

// quote shows a server's reply in an error, cut short.
func quote(s string) string {
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return strconv.Quote(s)
}

// smtpReply reads one SMTP reply (RFC 5321 4.2: "250-…" lines then "250 …")
// and returns its code and the text of each line.
func smtpReply(r *bufio.Reader) (int, []string, error) {
	var lines []string
	for len(lines) < maxReplyLines {
		l, err := readLine(r)
		if err != nil {
			return 0, lines, err
		}
		if len(l) < 3 {
			return 0, lines, fmt.Errorf("not an SMTP reply: %s", quote(l))
		}
		code, err := strconv.Atoi(l[:3])
		if err != nil || code < 200 || code > 599 {
			return 0, lines, fmt.Errorf("not an SMTP reply: %s", quote(l))
		}
		lines = append(lines, strings.TrimSpace(l[min(4, len(l)):]))
		if len(l) == 3 || l[3] == ' ' {
			return code, lines, nil
		}
		if l[3] != '-' {
			return 0, lines, fmt.Errorf("not an SMTP reply: %s", quote(l))
		}
	}
	return 0, lines, fmt.Errorf("SMTP reply longer than %d lines", maxReplyLines)
}

// smtpStartTLS greets the server, checks it offers STARTTLS and asks for it.
func smtpStartTLS(conn net.Conn) error {
	r := bufio.NewReaderSize(conn, maxLine)
	code, lines, err := smtpReply(r)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if code != 220 {
		return fmt.Errorf("greeting: %d %s", code, quote(strings.Join(lines, " ")))
	}
	if _, err := io.WriteString(conn, "EHLO certctl.invalid\r\n"); err != nil {
		return err
	}
	code, lines, err = smtpReply(r)
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if code != 250 {
		return fmt.Errorf("EHLO: %d %s", code, quote(strings.Join(lines, " ")))
	}
	offered := false
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		return errors.New("the server does not offer STARTTLS (postfix stops offering it when it cannot load its certificate or key)")
	}
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return err
	}
	code, lines, err = smtpReply(r)
	if err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	if code != 220 {
		return fmt.Errorf("STARTTLS: %d %s", code, quote(strings.Join(lines, " ")))
	}
	return noPipelinedBytes(r)
}

// imapStartTLS reads the greeting and asks for STARTTLS (RFC 3501 6.2.1).
func imapStartTLS(conn net.Conn) error {
	r := bufio.NewReaderSize(conn, maxLine)
	l, err := readLine(r)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(l, "* OK") {
		return fmt.Errorf("greeting: %s", quote(l))
	}
	if _, err := io.WriteString(conn, "c1 STARTTLS\r\n"); err != nil {
		return err
	}
	for i := 0; ; i++ {
		if i == maxReplyLines {
			return fmt.Errorf("STARTTLS: no tagged reply in %d lines", maxReplyLines)
		}
		l, err := readLine(r)
		if err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
		if strings.HasPrefix(l, "* ") {
			continue
		}
		if !strings.HasPrefix(l, "c1 OK") {
			return fmt.Errorf("STARTTLS refused: %s", quote(l))
		}
		return noPipelinedBytes(r)
	}
}

// noPipelinedBytes refuses plaintext the server sent after its go-ahead: it
// would be read as if it came inside TLS (the STARTTLS injection flaw).
func noPipelinedBytes(r *bufio.Reader) error {
	if r.Buffered() > 0 {
		return errors.New("the server sent plaintext after its STARTTLS go-ahead")
	}
	return nil
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

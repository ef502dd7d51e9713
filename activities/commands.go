package activities

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/outcome"
	"github.com/certctl/certctl/stagedview"
	"github.com/certctl/certctl/target"
)

// settlePauses are the waits before each probe of one verify attempt.
var settlePauses = []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}

// outputTail bounds what a command's output contributes to errors and results.
const outputTail = 2048

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
		return ValidateResult{}, outcome.Invalid("target_type", err.Error())
	}
	if err := a.checkFiles(in); err != nil {
		return ValidateResult{}, err
	}
	argv := connectors.ValidateCommand(c, in.Target.Config)
	res := ValidateResult{Command: argv.String()}
	if len(argv) == 0 {
		res.ServerCheck = CheckNone
		return res, nil
	}
	if in.Live {
		res.ServerCheck = CheckLive
		res.Output, err = runCommand(ctx, exec.CommandContext(ctx, argv[0], argv[1:]...))
		return res, validateErr(argv, res.Output, err)
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
			res.Output, err = runCommand(ctx, cmd)
			if !isStartError(err) && !stagedview.IsHelperFailure(err, res.Output) {
				return res, validateErr(argv, res.Output, err)
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
		err = b.Check(a.now(), "")
	}
	if err == nil && b.LeafSHA256() != in.Plan.LeafSHA256 {
		err = fmt.Errorf("the staged leaf is not the planned one")
	}
	if err != nil {
		return temporal.NewNonRetryableApplicationError("material check of the files to be served: "+err.Error(), outcome.ValidateFailed, nil)
	}
	return nil
}

func validateErr(argv target.Command, out string, err error) error {
	if err == nil {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s: %v: %s", argv, err, out), outcome.ValidateFailed, nil)
}

// Reload runs the reload command.
func (a *Activities) Reload(ctx context.Context, req Request) (CommandResult, error) {
	c, err := connectors.Get(req.Target.TargetType)
	if err != nil {
		return CommandResult{}, outcome.Invalid("target_type", err.Error())
	}
	argv := connectors.ReloadCommand(c, req.Target.Config)
	res := CommandResult{Command: argv.String()}
	if len(argv) == 0 {
		return res, nil
	}
	res.Output, err = runCommand(ctx, exec.CommandContext(ctx, argv[0], argv[1:]...))
	if err != nil {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: %v: %s", argv, err, res.Output), outcome.ReloadFailed, nil)
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
	var served string
	var err error
	for _, pause := range settlePauses {
		if pause > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(pause):
			}
		}
		failpoint.Hit("verify:probe")
		served, err = probe(ctx, cfg.PostDeployVerify.Endpoint, cfg.PostDeployVerify.ServerName, timeout)
		metrics.VerifyAttemptsTotal.Inc()
		if err == nil && served == in.Expected {
			break
		}
	}
	if err != nil {
		return res, temporal.NewApplicationError(fmt.Sprintf("verify %s: %v", res.Endpoint, err), "VerifyUnreachable")
	}
	res.Served = served
	if served != in.Expected {
		return res, temporal.NewApplicationError(
			fmt.Sprintf("verify %s: serves leaf %s, want %s", res.Endpoint, short(served), short(in.Expected)), "VerifyMismatch", res)
	}
	return res, nil
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

// probe does one TLS handshake and returns the SHA-256 of the served leaf.
// The chain is not verified: the fingerprint comparison is the check.
func probe(ctx context.Context, endpoint, serverName string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if serverName == "" {
		if h := material.HostOf(endpoint); net.ParseIP(h) == nil {
			serverName = h
		}
	}
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: serverName}} //nolint:gosec // fingerprint compared below
	conn, err := d.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", errors.New("no certificate served")
	}
	return material.Fingerprint(certs[0].Raw), nil
}

// runCommand runs cmd, heartbeating while it runs, and returns the tail of
// its combined output.
func runCommand(ctx context.Context, cmd *exec.Cmd) (string, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.Dir = "/"
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return "", &startError{err}
	}
	done := make(chan struct{})
	if activity.IsActivity(ctx) {
		// Heartbeat well inside the heartbeat timeout the workflow chose.
		every := 5 * time.Second
		if hb := activity.GetInfo(ctx).HeartbeatTimeout; hb > 0 && hb/3 < every {
			every = max(hb/3, 100*time.Millisecond)
		}
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
	}
	err := cmd.Wait()
	close(done)
	out := strings.TrimSpace(redactKeys(buf.String()))
	if len(out) > outputTail {
		out = "…" + out[len(out)-outputTail:]
	}
	return out, err
}

// privateKeyPEM matches a PEM private key block, or its start when the
// output ends inside it.
var privateKeyPEM = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`)

// redactKeys removes private keys a command printed: its output goes into
// errors and results, and so into the workflow history.
func redactKeys(out string) string {
	return privateKeyPEM.ReplaceAllString(out, "[key material redacted]")
}

type startError struct{ err error }

func (e *startError) Error() string { return "start: " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

func isStartError(err error) bool {
	var se *startError
	return errors.As(err, &se)
}

package sshfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Quote quotes one argument for a POSIX shell: in single quotes, each
// single quote written as '\”. The remote end runs every command through
// the login shell of the SSH user (that is what an SSH "exec" is); quoting
// each argument makes the shell see exactly the argv certctl was given.
func Quote(arg string) string {
	return "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
}

// Join quotes every argument and joins them with spaces.
func Join(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}

// ExitError is a remote command's unsuccessful end.
type ExitError struct {
	Status int
	Signal string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "remote signal: " + e.Signal
	}
	return fmt.Sprintf("remote exit status %d", e.Status)
}

// TimeoutError says a remote command was stopped at its bound: certctl sent
// it SIGKILL and closed its session.
type TimeoutError struct {
	Limit     time.Duration
	Cancelled bool
}

func (e *TimeoutError) Error() string {
	if e.Cancelled {
		return "cancelled: the remote command was sent SIGKILL and its session closed"
	}
	return fmt.Sprintf("still running after command_timeout (%s): the remote command was sent SIGKILL and its session closed", e.Limit)
}

// Run runs argv on the remote host (quoted, see Join) within limit, with
// stdin (nil: none), keeping at most keep bytes of its combined output (the
// last ones; "…" first when bytes were dropped). Past limit, or when ctx
// ends, the command is sent SIGKILL and the session is closed. The session
// runs with no terminal, so a command that reads one fails at once.
func (c *Conn) Run(ctx context.Context, argv []string, stdin []byte, limit time.Duration, keep int) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("empty command")
	}
	return c.runLine(ctx, Join(argv), stdin, limit, keep)
}

func (c *Conn) runLine(ctx context.Context, line string, stdin []byte, limit time.Duration, keep int) (string, error) {
	s, err := c.client.NewSession()
	if err != nil {
		c.kill()
		return "", &UnavailableError{Address: c.cfg.Address, Err: fmt.Errorf("open a session: %w", err)}
	}
	defer s.Close()
	out := &ring{max: keep}
	s.Stdout, s.Stderr = out, out
	if stdin != nil {
		s.Stdin = bytes.NewReader(stdin)
	}
	if err := s.Start(line); err != nil {
		return "", fmt.Errorf("start the remote command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	tctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	select {
	case err := <-done:
		var ee *ssh.ExitError
		var em *ssh.ExitMissingError
		switch {
		case err == nil:
			return out.String(), nil
		case errors.As(err, &ee) && ee.Signal() != "":
			return out.String(), &ExitError{Status: -1, Signal: ee.Signal()}
		case errors.As(err, &ee):
			return out.String(), &ExitError{Status: ee.ExitStatus()}
		case errors.As(err, &em):
			return out.String(), &UnavailableError{Address: c.cfg.Address, Err: errors.New("the session ended without an exit status (connection lost?)")}
		}
		return out.String(), err
	case <-tctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		_ = s.Close()
		return out.String(), &TimeoutError{Limit: limit, Cancelled: ctx.Err() != nil}
	}
}

// ring keeps the last max bytes written to it.
type ring struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.max; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
		r.dropped = true
	}
	return len(p), nil
}

func (r *ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped {
		return "…" + string(r.buf)
	}
	return string(r.buf)
}

var _ io.Writer = (*ring)(nil)

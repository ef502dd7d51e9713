package sshfs

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// helper is one long-lived remote sh on the connection that runs this
// package's own short commands (stat, sync, id, getent, command -v), one at
// a time: a session per command costs a fork of sshd and of the login shell
// each (about 100 ms here), the helper a line. Each command's end is a line
// holding a random sentinel and its exit status, so nothing a command
// prints can end it early. The operator's commands (validate, reload) never
// go through it: each gets a session of its own (Run).
type helper struct {
	s        *ssh.Session
	in       io.WriteCloser
	out      *bufio.Reader
	sentinel string
}

func (c *Conn) startHelper() (*helper, error) {
	s, err := c.client.NewSession()
	if err != nil {
		return nil, &UnavailableError{Address: c.cfg.Address, Err: fmt.Errorf("open a session: %w", err)}
	}
	in, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	out, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Start("exec sh"); err != nil {
		s.Close()
		return nil, fmt.Errorf("start a remote sh: %w", err)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		s.Close()
		return nil, err
	}
	return &helper{s: s, in: in, out: bufio.NewReaderSize(out, 64<<10), sentinel: "certctl-" + hex.EncodeToString(b)}, nil
}

// runFast runs one of this package's own command lines through the helper
// within limit, its stderr folded into its output (at most keep bytes
// kept), and returns an ExitError for a non-zero status.
func (c *Conn) runFast(line string, limit time.Duration, keep int) (string, error) {
	c.helperMu.Lock()
	defer c.helperMu.Unlock()
	if c.helper == nil {
		h, err := c.startHelper()
		if err != nil {
			return "", err
		}
		c.helper = h
	}
	h := c.helper
	type result struct {
		out    string
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		if _, err := fmt.Fprintf(h.in, "{ %s; } 2>&1 </dev/null; s=$?; echo; echo \"%s $s\"\n", line, h.sentinel); err != nil {
			done <- result{err: err}
			return
		}
		var out strings.Builder
		for {
			l, err := h.out.ReadString('\n')
			if err != nil {
				done <- result{err: err}
				return
			}
			if rest, ok := strings.CutPrefix(l, h.sentinel+" "); ok {
				st, err := strconv.Atoi(strings.TrimSpace(rest))
				if err != nil {
					done <- result{err: fmt.Errorf("remote sh: unexpected status %q", rest)}
					return
				}
				text := strings.TrimSuffix(out.String(), "\n") // the echo before the sentinel
				done <- result{out: text, status: st}
				return
			}
			if out.Len() < keep {
				out.WriteString(l)
			}
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			c.dropHelper()
			if errors.Is(r.err, io.EOF) {
				return "", &UnavailableError{Address: c.cfg.Address, Err: errors.New("the remote sh ended (connection lost?)")}
			}
			return "", r.err
		}
		if r.status != 0 {
			return r.out, &ExitError{Status: r.status}
		}
		return r.out, nil
	case <-time.After(limit):
		c.dropHelper()
		return "", &TimeoutError{Limit: limit}
	}
}

// dropHelper ends the helper; the next command starts another.
func (c *Conn) dropHelper() {
	if c.helper != nil {
		_ = c.helper.s.Signal(ssh.SIGKILL)
		_ = c.helper.s.Close()
		c.helper = nil
	}
}

// Package audit is certctl's append-only audit log: one JSON object a line,
// written by the Audit activity for every approval event (requested,
// approved, rejected, expired, bypassed, refused). The file is opened
// O_APPEND and never rewritten; an event carries a stable id (workflow id,
// run id and a sequence number chosen by the workflow) so a retried activity
// finds its line already written and adds nothing.
package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// EnvPath names the audit log file on the worker.
const EnvPath = "CERTCTL_AUDIT_LOG"

// Event names.
const (
	Requested = "requested"
	Approved  = "approved"
	Rejected  = "rejected"
	Expired   = "expired"
	Bypassed  = "bypassed"
	Refused   = "refused"
)

// Event is one line. ID comes first so a line is found by its prefix.
type Event struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Event      string    `json:"event"`
	RequestID  string    `json:"request_id"`
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	ProfileID  string    `json:"profile_id"`
	// State is the request's state after the event.
	State       string `json:"state"`
	RequestedBy string `json:"requested_by"`
	Subject     string `json:"subject,omitempty"`
	CertID      string `json:"cert_id,omitempty"`
	// Actor decided (or tried to); empty for expiry.
	Actor    string `json:"actor,omitempty"`
	Decision string `json:"decision,omitempty"`
	Note     string `json:"note,omitempty"`
	// Via is how the event came: start, update, signal, timer, bypass.
	Via string `json:"via"`
	// Reason says why a decision was refused.
	Reason string `json:"reason,omitempty"`
	// PendingSeconds is the time from the request to the event that closed
	// it (set on the closing event only).
	PendingSeconds float64 `json:"pending_seconds,omitempty"`
}

// Closing reports whether the event ended the request: its name is the
// state it left the request in (an approval that still awaits others leaves
// it "pending").
func (e Event) Closing() bool {
	switch e.Event {
	case Approved, Rejected, Expired, Bypassed:
		return e.State == e.Event
	}
	return false
}

// PathFromEnv is CERTCTL_AUDIT_LOG, else DefaultPath.
func PathFromEnv() string {
	if p := os.Getenv(EnvPath); p != "" {
		return p
	}
	return DefaultPath()
}

// DefaultPath is /var/lib/certctl/audit.jsonl for root, else
// $XDG_STATE_HOME/certctl/audit.jsonl (~/.local/state/certctl/audit.jsonl).
func DefaultPath() string {
	if os.Geteuid() == 0 {
		return "/var/lib/certctl/audit.jsonl"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "certctl", "audit.jsonl")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "certctl", "audit.jsonl")
	}
	return filepath.Join(os.TempDir(), "certctl-audit.jsonl")
}

// Log appends to one file. Appends are serialised in the process by a mutex
// and across processes by flock, so two workers sharing a file never
// interleave or both write one event.
type Log struct {
	Path string
	mu   sync.Mutex
}

// Append writes ev as one line unless a complete line with its id is
// already in the file; it reports whether it wrote. The line is fsynced
// before Append returns.
func (l *Log) Append(ev Event) (bool, error) {
	if ev.ID == "" {
		return false, errors.New("audit: event without id")
	}
	line, err := json.Marshal(ev)
	if err != nil {
		return false, err
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	dir := filepath.Dir(l.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("audit log %s: %w", l.Path, err)
	}
	_, statErr := os.Stat(l.Path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(l.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, fmt.Errorf("audit log %s: lock: %w", l.Path, err)
	}
	defer func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }()
	if created {
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	found, torn, err := scan(f, ev.ID)
	if err != nil {
		return false, fmt.Errorf("audit log %s: %w", l.Path, err)
	}
	if found {
		return false, nil
	}
	if torn {
		// A crash cut the last line short: end it, so this event starts a
		// line of its own. The torn text stays, as everything written does.
		line = append([]byte{'\n'}, line...)
	}
	if _, err := f.Write(line); err != nil {
		return false, fmt.Errorf("audit log %s: %w", l.Path, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("audit log %s: fsync: %w", l.Path, err)
	}
	return true, nil
}

// scan looks for a complete line with id and reports whether the file ends
// without a newline.
func scan(f *os.File, id string) (found, torn bool, err error) {
	needle, err := json.Marshal(id)
	if err != nil {
		return false, false, err
	}
	prefix := append([]byte(`{"id":`), needle...)
	prefix = append(prefix, ',')
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, false, err
	}
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			complete := line[len(line)-1] == '\n'
			if !complete {
				torn = true
			}
			if complete && bytes.HasPrefix(line, prefix) && json.Valid(line) {
				return true, false, nil
			}
		}
		if err == io.EOF {
			return false, torn, nil
		}
		if err != nil {
			return false, false, err
		}
	}
}

// Read returns every complete, well-formed line of the log, in order.
func Read(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var ev Event
			if json.Unmarshal(line, &ev) == nil {
				out = append(out, ev)
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Exclusion on the host (version 3 of "target-lock"). The host run of a
// deploy (its steps on the host's own worker) takes its keys (Keys: its
// target and every file it writes) in the host's lease table, a file in
// the worker's state directory, instead of asking a lock workflow: no
// round trip, no event. Several worker processes of one host share the
// table; each call holds flock(2) on a guard file beside it for its
// read-modify-write.
//
// The rules are FileLockWorkflow's: a lease is granted when no granted
// lease and no older waiting lease shares a key with it (first come, first
// served; disjoint key sets side by side; no deploy waits behind a younger
// one). An owner is a workflow execution: asking again (a local activity
// run again after a workflow task was retried) finds its own lease. A lease
// whose owner no longer runs (terminated, say) is dropped by the next
// deploy its keys block, once Alive says so.

// Owner is the deploy (its workflow execution) that holds or waits for a
// lease.
type Owner struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

// Lease is one owner's keys, granted or waiting its turn.
type Lease struct {
	Owner   Owner     `json:"owner"`
	Keys    []string  `json:"keys"`
	Ticket  uint64    `json:"ticket"`
	Granted bool      `json:"granted"`
	Since   time.Time `json:"since"`
}

// Alive says whether an owner's workflow execution still runs.
type Alive func(ctx context.Context, o Owner) (bool, error)

// Table is a host's lease table: the state file Path (e.g.
// $CERTCTL_STATE_DIR/locks.json) and its guard Path+".lock".
type Table struct {
	Path string
}

type tableState struct {
	Next   uint64  `json:"next_ticket"`
	Leases []Lease `json:"leases"`
}

// Acquire asks for keys for o and returns o's lease: granted, or not yet
// with the leases in its way (o keeps its place in line; ask again later). Owners of conflicting
// leases are checked with alive, outside the guard (an RPC must not hold
// every deploy of the host), and the decision is made again under it; a
// lease whose owner alive says has ended is dropped. An error from alive
// counts as alive.
func (t Table) Acquire(ctx context.Context, o Owner, keys []string, now time.Time, alive Alive) (mine Lease, blockers []Lease, err error) {
	for round := 0; ; round++ {
		var suspects []Lease
		err = t.update(func(s *tableState) {
			me := s.find(o)
			if me < 0 {
				s.Next++
				s.Leases = append(s.Leases, Lease{Owner: o, Keys: append([]string(nil), keys...), Ticket: s.Next, Since: now})
				me = len(s.Leases) - 1
			}
			blockers = nil
			if !s.Leases[me].Granted {
				if blockers = s.blockers(me); len(blockers) == 0 {
					s.Leases[me].Granted = true
				}
			}
			mine, suspects = s.Leases[me], blockers
		})
		if err != nil || mine.Granted || round > 0 || alive == nil {
			return mine, blockers, err
		}
		var dead []Owner
		for _, b := range suspects {
			if ok, aerr := alive(ctx, b.Owner); aerr == nil && !ok {
				dead = append(dead, b.Owner)
			}
		}
		if len(dead) == 0 {
			return mine, blockers, nil
		}
		if err := t.update(func(s *tableState) {
			for _, d := range dead {
				s.remove(d)
			}
		}); err != nil {
			return mine, blockers, err
		}
	}
}

// Release drops o's lease, granted or waiting; an owner without one is no
// error.
func (t Table) Release(o Owner) error {
	return t.update(func(s *tableState) { s.remove(o) })
}

// Leases lists the table, oldest ticket first.
func (t Table) Leases() ([]Lease, error) {
	var out []Lease
	err := t.update(func(s *tableState) { out = append(out, s.Leases...) })
	return out, err
}

func (s *tableState) find(o Owner) int {
	for i, l := range s.Leases {
		if l.Owner == o {
			return i
		}
	}
	return -1
}

func (s *tableState) remove(o Owner) {
	if i := s.find(o); i >= 0 {
		s.Leases = append(s.Leases[:i], s.Leases[i+1:]...)
	}
}

// blockers are the leases in the way of lease i: granted ones sharing a
// key, and older waiting ones sharing a key.
func (s *tableState) blockers(i int) []Lease {
	me := s.Leases[i]
	var out []Lease
	for j, l := range s.Leases {
		if j != i && (l.Granted || l.Ticket < me.Ticket) && overlap(l.Keys, me.Keys) {
			out = append(out, l)
		}
	}
	return out
}

func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// update runs fn on the table's state under the guard, and writes the
// state back (temp file, fsync, rename, fsync of the directory) when fn
// changed it.
func (t Table) update(fn func(*tableState)) error {
	dir := filepath.Dir(t.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lease table: %w", err)
	}
	guard, err := openOwned(t.Path+".lock", unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		return err
	}
	defer guard.Close()
	if err := unix.Flock(int(guard.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lease table %s: lock: %w", t.Path, err)
	}
	defer unix.Flock(int(guard.Fd()), unix.LOCK_UN) //nolint:errcheck // closing releases it too
	var s tableState
	raw, err := t.read()
	if err != nil {
		return err
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("lease table %s is not valid JSON (%v): with no deploy running on this host it is safe to delete", t.Path, err)
		}
	}
	before, _ := json.Marshal(s)
	fn(&s)
	after, err := json.Marshal(s)
	if err != nil || string(after) == string(before) {
		return err
	}
	return t.write(after)
}

func (t Table) read() ([]byte, error) {
	f, err := openOwned(t.Path, unix.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 16<<20))
}

func (t Table) write(data []byte) error {
	tmp := t.Path + ".tmp." + strconv.Itoa(os.Getpid())
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("lease table: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, t.Path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("lease table: %w", err)
	}
	d, err := os.Open(filepath.Dir(t.Path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openOwned opens path without following a symlink and refuses anything
// but a regular file owned by this process's user.
func openOwned(path string, flags int) (*os.File, error) {
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("lease table %s: %w", path, os.ErrNotExist)
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("lease table %s is a symlink: refused (remove it; the worker recreates it)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("lease table %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("lease table %s is not a regular file owned by uid %d (mode %o, owner %d): refused (remove it; the worker recreates it)", path, os.Geteuid(), st.Mode, st.Uid)
	}
	return f, nil
}

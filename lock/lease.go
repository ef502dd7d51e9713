package lock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/certctl/certctl/safefs"
)

// The lease table: exclusion by file without a lock workflow. A deploy whose
// steps run as local activities on its host's worker asks the host's table
// (a JSON file in the state directory, e.g. $CERTCTL_STATE_DIR/locks.json)
// for its keys (Keys: "target:<id>" and every "file:<canonical path>"), and
// releases them in its last step. Several host-worker processes may share
// the state directory: every read-modify-write holds an exclusive flock(2)
// on the guard file (the table's path + ".lock"), and the table is replaced
// whole (temp file, fsync, rename, fsync of the directory), so a crash
// leaves the old table or the new one, never half of either.
//
// The grant rule is FileLockWorkflow's: oldest first, an owner's lease is
// granted when no other granted lease shares a key with it and no older
// waiting lease does. Two deploys sharing a file take turns in request order,
// deploys with files of their own run side by side, and no deploy waits
// behind a younger one. A lease whose owner no longer runs (terminated,
// reset, gone) is removed the first time it stands in someone's way.

// Owner is the deploy (workflow execution) holding or waiting for keys.
type Owner struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

func (o Owner) String() string { return fmt.Sprintf("%s (run %s)", o.WorkflowID, o.RunID) }

// Lease is one owner's keys, granted or waiting (first come, first served by
// Ticket).
type Lease struct {
	Owner   Owner    `json:"owner"`
	Keys    []string `json:"keys"`
	Ticket  uint64   `json:"ticket"`
	Granted bool     `json:"granted"`
	// Since is when the lease entered the line, then when it was granted.
	Since time.Time `json:"since"`
}

// Blocker is a lease in an asking owner's way.
type Blocker struct {
	Lease
	// Shared are its keys that the asking owner also needs.
	Shared []string `json:"shared"`
	// AliveError, when set, is why it could not be told whether its owner
	// still runs: the lease is kept (counted as alive) and the next Acquire
	// asks again.
	AliveError string `json:"alive_error,omitempty"`
}

func (b Blocker) String() string {
	state := "is waiting ahead for"
	if b.Granted {
		state = "holds"
	}
	s := fmt.Sprintf("deploy %s %s %s", b.Owner, state, strings.Join(b.Shared, ", "))
	if b.AliveError != "" {
		s += " (could not check that it still runs: " + b.AliveError + ")"
	}
	return s
}

// Alive reports whether an owner's workflow execution is still running (the
// host worker asks Temporal: DescribeWorkflowExecution). An execution that is
// closed or not found is not alive.
type Alive func(ctx context.Context, o Owner) (bool, error)

// Table is a host's lease table, the JSON file at Path (absolute, or relative
// to the working directory); its guard file is Path+".lock". A Table is only
// a name: any number of values, in any number of processes, share the file.
type Table struct {
	Path string
}

// tableVersion is the state file's format; another version is refused.
const tableVersion = 1

// tableFile is the state file.
type tableFile struct {
	Version int `json:"version"`
	// NextTicket is the ticket of the next new owner: it only grows, so an
	// owner's place in line is never given to a later one.
	NextTicket uint64  `json:"next_ticket"`
	Leases     []Lease `json:"leases"`
}

// aliveRounds bounds the rounds of checks in one Acquire: a lease that still
// turns up unchecked in the way after them counts as alive until the next
// Acquire. (Once an owner's lease is in the table, only leases already in it
// can stand in its way: a younger one sharing a key is never granted before
// it. So the round after the first checks decides, unless the owner's own
// lease was removed meanwhile and it joined the line again.)
const aliveRounds = 2

// Acquire asks for keys on o's behalf and reports whether o holds them now.
//
// An owner already granted gets granted again (a local activity re-executed
// after a workflow-task retry succeeds); an owner already waiting keeps its
// ticket; a new owner gets the next one and joins the line. It must ask for
// the same keys each time. When not granted, o stays in line and blockers
// are the leases in its way, oldest first: ask again later (a timer), or
// Release to leave the line.
//
// Before deciding, alive is asked about the owner of every lease in o's way
// (and only those: an uncontended Acquire makes no call). A lease whose owner
// is not alive is removed; an alive error counts as alive and shows in the
// blocker's AliveError. alive is called outside the flock, so a slow
// Temporal never stalls the host's other deploys; the decision is made again
// under the flock on the table as it is then (removing a lease of an owner
// found dead is right whenever it happens: a closed run never runs again).
func (t Table) Acquire(ctx context.Context, o Owner, keys []string, now time.Time, alive Alive) (granted bool, blockers []Blocker, err error) {
	if err := o.check(); err != nil {
		return false, nil, err
	}
	keys, err = cleanKeys(keys)
	if err != nil {
		return false, nil, err
	}
	if alive == nil {
		return false, nil, errors.New("lease table: Acquire needs an Alive check (the host worker's DescribeWorkflowExecution): without it a terminated deploy would block its files forever")
	}
	checked := map[Owner]string{} // alive or an error: the error, else ""
	dead := map[Owner]bool{}
	for round := 0; ; round++ {
		var ask []Owner
		granted, blockers = false, nil
		err := t.update(ctx, func(st *tableFile) (bool, error) {
			changed := st.remove(func(l Lease) bool { return dead[l.Owner] })
			i := st.find(o)
			if i < 0 {
				st.Leases = append(st.Leases, Lease{Owner: o, Keys: keys, Ticket: st.NextTicket, Since: now})
				st.NextTicket++
				i, changed = len(st.Leases)-1, true
			} else if !sameKeys(st.Leases[i].Keys, keys) {
				return false, fmt.Errorf("lease table %s: deploy %s asks for keys %v but its lease is for %v: a deploy asks for the same keys every time (Keys(target) of its target)",
					t.Path, o, keys, st.Leases[i].Keys)
			}
			me := &st.Leases[i]
			if me.Granted {
				granted = true
				return changed, nil
			}
			blockers, ask = st.blockers(*me, checked)
			if len(ask) > 0 && round < aliveRounds {
				return changed, nil // check them first
			}
			if len(blockers) == 0 {
				me.Granted, me.Since = true, now
				granted = true
				return true, nil
			}
			return changed, nil
		})
		if err != nil {
			return false, nil, err
		}
		if granted || len(ask) == 0 || round >= aliveRounds {
			return granted, blockers, nil
		}
		for _, b := range ask {
			ok, err := alive(ctx, b)
			switch {
			case err != nil:
				checked[b] = err.Error()
				if checked[b] == "" {
					checked[b] = "unknown error"
				}
			case ok:
				checked[b] = ""
			default:
				dead[b] = true
			}
		}
	}
}

// Release removes o's lease, granted or waiting. An owner without a lease
// is no error: a retried release succeeds.
func (t Table) Release(o Owner) error {
	if err := o.check(); err != nil {
		return err
	}
	return t.update(context.Background(), func(st *tableFile) (bool, error) {
		return st.remove(func(l Lease) bool { return l.Owner == o }), nil
	})
}

// Leases is the table's leases, oldest first (for diagnostics and tests).
// It takes no lock and creates nothing: the file is only ever replaced
// whole, so any read of it is a table some writer wrote. A missing table (or
// state directory) has no leases.
func (t Table) Leases() ([]Lease, error) {
	d, err := t.open(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.close()
	st, err := d.read()
	return st.Leases, err
}

func (o Owner) check() error {
	switch {
	case o.WorkflowID == "":
		return errors.New("lease table: owner workflow_id is empty: pass the deploy's workflow execution (workflow.GetInfo(ctx).WorkflowExecution)")
	case o.RunID == "":
		return fmt.Errorf("lease table: owner %q has an empty run_id: pass the deploy's workflow execution (workflow.GetInfo(ctx).WorkflowExecution); without a run a reset deploy could not be told from the old one", o.WorkflowID)
	}
	return nil
}

// cleanKeys is keys without repeats, in their order.
func cleanKeys(keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, errors.New("lease table: no keys asked for: pass Keys(target) (the target's key at least)")
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("lease table: an empty key in %q: pass Keys(target)", keys)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

func sameKeys(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// shared is a's keys that b has too, in a's order.
func shared(a, b []string) []string {
	var out []string
	for _, k := range a {
		if slices.Contains(b, k) {
			out = append(out, k)
		}
	}
	return out
}

func (st *tableFile) find(o Owner) int {
	return slices.IndexFunc(st.Leases, func(l Lease) bool { return l.Owner == o })
}

// remove drops the leases drop says, reporting whether there were any.
func (st *tableFile) remove(drop func(Lease) bool) bool {
	n := len(st.Leases)
	st.Leases = slices.DeleteFunc(st.Leases, drop)
	return len(st.Leases) != n
}

// blockers is the leases in me's way: every other granted lease, and every
// other waiting lease with a smaller ticket, that shares a key with it. ask
// is their owners not in checked (not asked yet).
func (st *tableFile) blockers(me Lease, checked map[Owner]string) (blockers []Blocker, ask []Owner) {
	for _, l := range st.Leases {
		if l.Owner == me.Owner || (!l.Granted && l.Ticket > me.Ticket) {
			continue
		}
		common := shared(me.Keys, l.Keys)
		if len(common) == 0 {
			continue
		}
		aliveErr, seen := checked[l.Owner]
		if !seen {
			ask = append(ask, l.Owner)
		}
		blockers = append(blockers, Blocker{Lease: l, Shared: common, AliveError: aliveErr})
	}
	return blockers, ask
}

// check refuses a table that no writer of this version wrote: a lease
// without owner or keys, a ticket not below next_ticket or given twice, an
// owner twice, two granted leases sharing a key.
func (st *tableFile) check() error {
	if st.Version != tableVersion {
		return fmt.Errorf("version %d, this certctl reads version %d only: was it written by another certctl?", st.Version, tableVersion)
	}
	if st.NextTicket == 0 {
		return errors.New("next_ticket is 0")
	}
	owners := map[Owner]bool{}
	tickets := map[uint64]bool{}
	held := map[string]Owner{}
	for _, l := range st.Leases {
		if err := l.Owner.check(); err != nil {
			return err
		}
		switch {
		case owners[l.Owner]:
			return fmt.Errorf("owner %s has two leases", l.Owner)
		case len(l.Keys) == 0 || slices.Contains(l.Keys, ""):
			return fmt.Errorf("the lease of %s has no keys or an empty one", l.Owner)
		case l.Ticket == 0 || l.Ticket >= st.NextTicket:
			return fmt.Errorf("the lease of %s has ticket %d, not in 1..next_ticket-1 (next_ticket %d)", l.Owner, l.Ticket, st.NextTicket)
		case tickets[l.Ticket]:
			return fmt.Errorf("ticket %d is given twice", l.Ticket)
		}
		owners[l.Owner], tickets[l.Ticket] = true, true
		if !l.Granted {
			continue
		}
		for _, k := range l.Keys {
			if other, ok := held[k]; ok {
				return fmt.Errorf("%s and %s are both granted %s", other, l.Owner, k)
			}
			held[k] = l.Owner
		}
	}
	slices.SortFunc(st.Leases, func(a, b Lease) int {
		switch {
		case a.Ticket < b.Ticket:
			return -1
		case a.Ticket > b.Ticket:
			return 1
		}
		return 0
	})
	return nil
}

// update runs fn on the table under the guard's exclusive flock and, when fn
// reports a change, replaces the file.
func (t Table) update(ctx context.Context, fn func(st *tableFile) (changed bool, err error)) error {
	d, err := t.open(true)
	if err != nil {
		return err
	}
	defer d.close()
	unlock, err := d.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := d.read()
	if err != nil {
		return err
	}
	changed, err := fn(&st)
	if err != nil || !changed {
		return err
	}
	return d.write(st)
}

// tableDir is the table's directory, opened without following links, and
// the names in it.
type tableDir struct {
	dir               *safefs.Dir
	path              string // the state file's absolute path
	name, guard, temp string
}

// open opens the table's directory (creating it 0700 when create is set)
// once it is checked to be writable only by root and this user, like every
// file of the state directory: whoever can rename in it could swap the table.
func (t Table) open(create bool) (*tableDir, error) {
	if t.Path == "" {
		return nil, errors.New("lease table: the path is empty: set it to a file in the host worker's state directory ($CERTCTL_STATE_DIR/locks.json)")
	}
	abs, err := filepath.Abs(t.Path)
	if err != nil {
		return nil, fmt.Errorf("lease table %s: %w", t.Path, err)
	}
	dir, name := filepath.Dir(abs), filepath.Base(abs)
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("lease table %s: create its directory: %w", abs, err)
		}
	}
	if err := safefs.CheckSecure(dir, os.Geteuid()); err != nil {
		return nil, fmt.Errorf("lease table %s: %w", abs, err)
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("lease table %s: %w", abs, err)
	}
	return &tableDir{dir: d, path: abs, name: name, guard: name + ".lock", temp: name + ".tmp"}, nil
}

func (d *tableDir) close() { _ = d.dir.Close() }

// lock takes the guard's exclusive flock, creating the guard (0600) when
// missing, and returns the func that releases it. The guard is never
// removed by certctl; should someone replace it while we wait, the lock is
// taken again on the new one, so two processes never hold different guards.
func (d *tableDir) lock(ctx context.Context) (unlock func(), err error) {
	for attempt := 0; ; attempt++ {
		f, id, err := d.openGuard()
		if err != nil {
			return nil, err
		}
		fd := int(f.Fd())
		if err := flock(ctx, fd); err != nil {
			f.Close()
			return nil, fmt.Errorf("lease table %s: lock %s: %w", d.path, d.dir.Join(d.guard), err)
		}
		now, err := d.dir.Lstat(d.guard)
		if err == nil && now.ID == id {
			return func() {
				_ = unix.Flock(fd, unix.LOCK_UN)
				f.Close()
			}, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("lease table %s: %w", d.path, err)
		}
		if attempt >= 3 {
			return nil, fmt.Errorf("lease table %s: the guard %s keeps being replaced while it is locked: stop whatever removes it (certctl never does)", d.path, d.dir.Join(d.guard))
		}
	}
}

// openGuard opens the guard (a regular file of this user's, no link),
// creating it when missing, and returns its identity.
func (d *tableDir) openGuard() (*os.File, safefs.ID, error) {
	for {
		f, info, err := d.dir.Open(d.guard)
		if errors.Is(err, fs.ErrNotExist) {
			_, err := d.dir.CreateExcl(d.guard, nil, 0o600, os.Geteuid(), os.Getegid())
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, safefs.ID{}, fmt.Errorf("lease table %s: create its guard: %w", d.path, err)
			}
			continue // ours or another process's: open it
		}
		if err == nil {
			err = d.checkOwn("guard", d.guard, info)
		} else {
			err = d.refuse("guard", d.guard, info, err)
		}
		if err != nil {
			if f != nil {
				f.Close()
			}
			return nil, safefs.ID{}, err
		}
		return f, info.ID, nil
	}
}

// flock takes fd's exclusive flock, polling so that ctx can end the wait
// (a blocked flock(2) cannot be interrupted).
func flock(ctx context.Context, fd int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case !errors.Is(err, unix.EWOULDBLOCK):
			return err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		wait = min(2*wait, 16*time.Millisecond)
	}
}

// read reads the state file: a missing one is an empty table.
func (d *tableDir) read() (tableFile, error) {
	empty := tableFile{Version: tableVersion, NextTicket: 1}
	b, info, err := d.dir.ReadFile(d.name)
	if errors.Is(err, fs.ErrNotExist) {
		return empty, nil
	}
	if err != nil {
		return empty, d.refuse("file", d.name, info, err)
	}
	if err := d.checkOwn("file", d.name, info); err != nil {
		return empty, err
	}
	var st tableFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(&st)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("data after the table")
	}
	if err == nil {
		err = st.check()
	}
	if err != nil {
		return empty, fmt.Errorf("lease table %s is corrupt (%v): none of its leases can be trusted, so no deploy on this host is granted its files; "+
			"once no deploy runs on this host (stop its host workers, or wait until no deploy of it is running), delete the file: the next deploy starts a new table", d.path, err)
	}
	return st, nil
}

// write replaces the state file with st: a new temp file (O_CREAT|O_EXCL|
// O_NOFOLLOW, 0600, fsynced), renamed over it, the directory fsynced.
func (d *tableDir) write(st tableFile) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("lease table %s: %w", d.path, err)
	}
	b = append(b, '\n')
	// A temp file left by a writer that died: only a holder of the flock
	// writes one, and we hold it.
	if err := d.dir.Remove(d.temp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lease table %s: remove the leftover %s: %w (remove it by hand)", d.path, d.dir.Join(d.temp), err)
	}
	if _, err := d.dir.CreateExcl(d.temp, b, 0o600, os.Geteuid(), os.Getegid()); err != nil {
		return fmt.Errorf("lease table %s: %w", d.path, err)
	}
	if err := d.dir.Rename(d.temp, d.name); err != nil {
		_ = d.dir.Remove(d.temp)
		return fmt.Errorf("lease table %s: %w", d.path, err)
	}
	if err := d.dir.Sync(); err != nil {
		return fmt.Errorf("lease table %s: %w", d.path, err)
	}
	return nil
}

// refuse explains why the table's file or guard (what) at name did not open.
func (d *tableDir) refuse(what, name string, info safefs.Info, err error) error {
	p := d.dir.Join(name)
	switch {
	case errors.Is(err, safefs.ErrSymlink):
		return fmt.Errorf("lease table %s: %s %s is a symbolic link, refused (it could point the host's exclusion by file at another file): "+
			"remove the link once no deploy runs on this host; certctl creates the file again", d.path, what, p)
	case errors.Is(err, safefs.ErrNotRegular):
		return fmt.Errorf("lease table %s: %s %s is not a regular file (%s), refused: "+
			"remove it once no deploy runs on this host; certctl creates the file again", d.path, what, p, fileType(info))
	}
	return fmt.Errorf("lease table %s: %s: %w", d.path, what, err)
}

// checkOwn refuses a file that is not this user's alone: another user could
// rewrite who holds which file, or (the guard) hold its lock forever.
func (d *tableDir) checkOwn(what, name string, info safefs.Info) error {
	p := d.dir.Join(name)
	if uid := os.Geteuid(); info.UID != uid {
		return fmt.Errorf("lease table %s: %s %s is owned by uid %d, not uid %d this worker runs as, refused (that user could rewrite who holds which file): "+
			"remove it once no deploy runs on this host, or chown %d %s", d.path, what, p, info.UID, uid, uid, p)
	}
	if info.Perm()&0o077 != 0 {
		return fmt.Errorf("lease table %s: %s %s has mode %s, open to group or others, refused (they could rewrite it or hold its lock forever): chmod 600 %s",
			d.path, what, p, info.ModeString(), p)
	}
	return nil
}

func fileType(info safefs.Info) string {
	switch {
	case info.IsDir():
		return "a directory"
	case info.Mode&unix.S_IFMT == unix.S_IFIFO:
		return "a FIFO"
	case info.Mode&unix.S_IFMT == unix.S_IFSOCK:
		return "a socket"
	case info.Mode&unix.S_IFMT == unix.S_IFCHR || info.Mode&unix.S_IFMT == unix.S_IFBLK:
		return "a device"
	}
	return fmt.Sprintf("type %o", info.Mode&unix.S_IFMT)
}

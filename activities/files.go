package activities

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/sshfs"
)

// File name markers. A temp or backup file is "<path><marker><unix-nanos>".
const (
	TempMarker   = ".certctl-tmp."
	BackupMarker = ".certctl-bak."
)

// TempPath and BackupPath name this deploy's files for path.
func TempPath(path string, stamp int64) string {
	return path + TempMarker + strconv.FormatInt(stamp, 10)
}

// BackupPath names the backup of path taken by the deploy with stamp.
func BackupPath(path string, stamp int64) string {
	return path + BackupMarker + strconv.FormatInt(stamp, 10)
}

// openPlanned opens the directory of a planned destination for a writing
// step: still safe (CheckSecure, as in Plan) and still the very directory
// Plan saw (its device and inode), so a directory swapped since Plan, for a
// link or another directory, is ConcurrentChange with nothing written.
func openPlanned(fsys FS, pf PlannedFile) (Dir, string, error) {
	dir, base := filepath.Dir(pf.Path), filepath.Base(pf.Path)
	if pf.DirID == (safefs.ID{}) {
		return nil, "", mismatch("%s: the plan has no identity for directory %s (planned by an older worker?): deploy again", pf.Path, dir)
	}
	if err := fsys.CheckSecure(dir, pf.UID); err != nil {
		var ie *safefs.InsecureError
		if errors.As(err, &ie) {
			return nil, "", insecure(err)
		}
		if isTransport(err) {
			return nil, "", err
		}
		return nil, "", concurrent("%s: directory %s is no longer the one planned: %v; nothing written", pf.Path, dir, err)
	}
	d, err := fsys.OpenDir(dir)
	if isTransport(err) {
		return nil, "", err
	}
	if err != nil {
		return nil, "", concurrent("%s: directory %s is no longer the one planned: %v; nothing written", pf.Path, dir, err)
	}
	if d.ID() != pf.DirID {
		d.Close()
		return nil, "", concurrent("%s: directory %s was replaced since Plan (%s, planned %s); nothing written", pf.Path, dir, d.ID(), pf.DirID)
	}
	return d, base, nil
}

// clearName makes name free for an exclusive create: a regular file there
// is a torn copy from an earlier attempt of this step (the name carries this
// deploy's stamp) and is removed; anything else (a planted link, a
// directory, a FIFO) is ConcurrentChange and is left alone.
func clearName(d Dir, name, what string) error {
	info, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.IsRegular() {
		return concurrent("%s %s is not a regular file this deploy wrote (a %s, owner uid %d): someone who can write %s planted it; nothing written through it",
			what, d.Join(name), fileType(info), info.UID, d.Path())
	}
	return d.Remove(name)
}

func fileType(i safefs.Info) string {
	switch {
	case i.IsSymlink():
		return "symbolic link"
	case i.IsDir():
		return "directory"
	case i.IsRegular():
		return "regular file"
	}
	return "special file"
}

// createExcl creates name in d exclusively; a name taken between clearName
// and the create is ConcurrentChange.
func createExcl(d Dir, name, what string, data []byte, mode os.FileMode, uid, gid int) (safefs.ID, error) {
	id, err := d.CreateExcl(name, data, mode, uid, gid)
	if errors.Is(err, sshfs.ErrUmask) {
		return id, sshErr(err)
	}
	if errors.Is(err, fs.ErrExist) {
		return id, concurrent("%s %s appeared while this deploy was creating it: someone who can write %s is interfering; nothing written through it", what, d.Join(name), d.Path())
	}
	return id, err
}

// holds reports the SHA-256 of name's bytes, "" when it does not exist, or
// an error (a link or non-regular file included).
func holds(d Dir, name string) (string, error) {
	sum, _, err := d.SHA256(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return sum, err
}

// checkStaged refuses staged files that are not the ones this deploy derives
// from its plan and stamp: a Temp that is not TempPath(Path, Stamp) (or, in a
// dry run, a file of this worker's private directory for the deploy) is
// PlanMismatch.
func checkStaged(req Request, plan Plan, st Staged) error {
	if len(st.Files) != len(plan.Files) {
		return mismatch("staged %d files, the plan has %d", len(st.Files), len(plan.Files))
	}
	if st.PrivateDir != "" && (!req.DryRun || st.PrivateDir != dryRunDir(req) || !ownPrivateDir(st.PrivateDir)) {
		return mismatch("staged private directory %s is not this worker's private directory for the deploy", st.PrivateDir)
	}
	for i, s := range st.Files {
		pf := plan.Files[i]
		want := TempPath(pf.Path, req.Stamp)
		if st.PrivateDir != "" {
			want = filepath.Join(st.PrivateDir, dryRunName(i, pf.Path))
		}
		if s.Path != pf.Path || s.Temp != want || s.SHA256 != pf.SHA256 {
			return mismatch("staged file %s (temp %s) is not the planned %s (temp %s)", s.Path, s.Temp, pf.Path, want)
		}
	}
	return nil
}

func dryRunName(i int, path string) string { return fmt.Sprintf("%d-%s", i, filepath.Base(path)) }

// dryRunDir is where a dry run stages. It is named by the deploy, so a
// retried Stage reuses it and Cleanup finds it even when Stage's result was
// lost (a failed activity returns none to the workflow).
func dryRunDir(req Request) string {
	id := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return '_'
	}, req.Target.TargetID)
	return filepath.Join(os.TempDir(), fmt.Sprintf("certctl-dryrun-%s-%d", id, req.Stamp))
}

// makeDryRunDir creates dryRunDir, or reuses it when it is already this
// process's own private directory.
func makeDryRunDir(req Request) (string, error) {
	dir := dryRunDir(req)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if !ownPrivateDir(dir) {
		return "", fmt.Errorf("%s exists and is not this worker's private directory", dir)
	}
	return dir, nil
}

// ownPrivateDir reports whether dir is a directory (not a link) owned by this
// process's user that no one else can enter.
func ownPrivateDir(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// checkPlan refuses a plan naming a file that is not one of the target's
// destinations (or naming one twice). Every step after Plan takes the plan
// from its input, and the host policy checks only the target: without this,
// anyone who can schedule an activity could name any file on the host, and
// Backup, Rollback or Commit would read, replace, chown or remove it as root.
func checkPlan(req Request, plan Plan) error {
	c, err := connectorOf(req.Target)
	if err != nil {
		return err
	}
	dests := map[string]bool{}
	for _, d := range c.Destinations(req.Target.Config) {
		dests[filepath.Clean(d.Path)] = true
	}
	seen := map[string]bool{}
	for _, f := range plan.Files {
		if !dests[f.Path] || filepath.Clean(f.Path) != f.Path {
			return mismatch("plan file %q is not one of target %q's destinations; nothing done", f.Path, req.Target.TargetID)
		}
		if seen[f.Path] {
			return mismatch("plan names %q twice; nothing done", f.Path)
		}
		seen[f.Path] = true
	}
	return nil
}

// maxFileRead bounds what a step reads back of a file it wrote: more than
// any layout holds (each material field is at most 64 KiB).
const maxFileRead = 1 << 20

// readRegular reads path through its directory opened without following
// links: only a regular file (never a link, a FIFO or a device), at most
// maxFileRead bytes.
func readRegular(fsys FS, path string) ([]byte, error) {
	d, err := fsys.OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	b, _, err := d.ReadLimited(filepath.Base(path), maxFileRead)
	return b, err
}

// isTransport reports an error of the way to a remote host (it is down, or
// its key is not trusted): the step fails as such, never as a change of
// the files.
func isTransport(err error) bool {
	switch contract.Of(err) {
	case contract.HostUnavailable, contract.HostKeyMismatch:
		return true
	}
	return false
}

package sshfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certctl/certctl/safefs"
)

// What SFTP cannot do, and how this package stands in for it:
//
//   - SFTP names files by path, not through a directory descriptor: the
//     server resolves every path anew and follows a link in a directory on
//     the way. So every step first walks the path (one remote lstat of each
//     component, no link allowed) and refuses a directory others can write
//     (safefs.CheckChain, the local rules); a swap between that walk and the
//     operation can only come from root or the file's owner.
//   - SFTP stat has no device, inode or link count: Lstat runs stat(1) on the
//     remote host (lstat: the last component is never followed).
//   - An SFTP open sends no mode (github.com/pkg/sftp), so a new file gets
//     the server's umask: CreateExcl refuses a server whose SFTP umask lets
//     group or others read a new file (set "Subsystem sftp internal-sftp -u
//     077" in its sshd_config), before a byte is written.
//   - A directory cannot be opened for fsync over SFTP: Sync runs sync(1) on
//     the directory (coreutils fsyncs the named file).
//   - Renames need posix-rename@openssh.com (atomic replace); a server
//     without it is refused, never served by a non-atomic rename.

// statTimeout bounds one of this package's own remote commands.
const statTimeout = 30 * time.Second

// maxRead bounds what is read of one remote file.
const maxRead = 1 << 20

// ErrTooLarge says a remote file is larger than the read allows.
var ErrTooLarge = errors.New("is larger than the read allows: not a file certctl wrote")

// ErrUmask says the server's SFTP umask would let others read a new file.
var ErrUmask = errors.New("the server's SFTP umask leaves new files readable by group or others")

// statFormat is stat(1)'s raw mode (hex), uid, gid, size, device, inode and
// link count.
const statFormat = "%f %u %g %s %d %i %h"

// lstat runs stat(1) on the remote paths (never following the last
// component) and returns one Info each; a missing path is fs.ErrNotExist.
func (c *Conn) lstat(paths ...string) ([]safefs.Info, error) {
	argv := append([]string{"stat", "-c", statFormat, "--"}, paths...)
	out, err := c.runFast("LC_ALL=C "+Join(argv), statTimeout, 64<<10)
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			switch {
			case strings.Contains(out, "No such file or directory"):
				return nil, &fs.PathError{Op: "lstat", Path: paths[len(paths)-1], Err: fs.ErrNotExist}
			case strings.Contains(out, "Not a directory"):
				return nil, &fs.PathError{Op: "lstat", Path: paths[len(paths)-1], Err: syscall.ENOTDIR}
			}
			return nil, fmt.Errorf("remote stat %s: %v: %s", strings.Join(paths, " "), err, strings.TrimSpace(out))
		}
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(paths) {
		return nil, fmt.Errorf("remote stat %s: unexpected answer %q", strings.Join(paths, " "), out)
	}
	infos := make([]safefs.Info, len(paths))
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 7 {
			return nil, fmt.Errorf("remote stat %s: unexpected answer %q", paths[i], l)
		}
		var n [7]uint64
		for j := range f {
			base := 10
			if j == 0 {
				base = 16
			}
			if n[j], err = strconv.ParseUint(f[j], base, 64); err != nil {
				return nil, fmt.Errorf("remote stat %s: unexpected answer %q", paths[i], l)
			}
		}
		infos[i] = safefs.Info{ID: safefs.ID{Dev: n[4], Ino: n[5]}, Mode: uint32(n[0]), UID: int(n[1]), GID: int(n[2]), Size: int64(n[3]), Nlink: n[6]}
	}
	return infos, nil
}

// walk lstats every directory from "/" to p and refuses a link among them.
func (c *Conn) walk(p string) ([]string, []safefs.Info, error) {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return nil, nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("not an absolute, clean path")}
	}
	dirs := []string{"/"}
	if p != "/" {
		parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
		for i := range parts {
			dirs = append(dirs, "/"+strings.Join(parts[:i+1], "/"))
		}
	}
	infos, err := c.lstat(dirs...)
	if err != nil {
		return nil, nil, err
	}
	for i, in := range infos {
		switch {
		case in.IsSymlink():
			return nil, nil, &fs.PathError{Op: "open", Path: dirs[i], Err: safefs.ErrSymlink}
		case !in.IsDir():
			return nil, nil, &fs.PathError{Op: "open", Path: dirs[i], Err: syscall.ENOTDIR}
		}
	}
	return dirs, infos, nil
}

// CheckSecure is safefs.CheckSecure on the remote host (see the package's
// notes for what a path-based protocol cannot promise).
func (c *Conn) CheckSecure(dir string, owner int) error {
	dirs, infos, err := c.walk(dir)
	if err != nil {
		return err
	}
	return safefs.CheckChain(dirs, infos, owner)
}

// Dir is a remote directory, walked without links when opened.
type Dir struct {
	c    *Conn
	path string
	id   safefs.ID
}

// OpenDir walks path on the remote host (no link on the way) and returns it.
func (c *Conn) OpenDir(p string) (*Dir, error) {
	_, infos, err := c.walk(p)
	if err != nil {
		return nil, err
	}
	return &Dir{c: c, path: p, id: infos[len(infos)-1].ID}, nil
}

// Path is the directory's path; Join names a file in it; ID is its
// identity (device, inode) when opened.
func (d *Dir) Path() string             { return d.path }
func (d *Dir) Join(name string) string  { return path.Join(d.path, name) }
func (d *Dir) ID() safefs.ID            { return d.id }
func (d *Dir) Close() error             { return nil }
func (d *Dir) where(name string) string { return d.c.Address() + ":" + d.Join(name) }

func (d *Dir) checkName(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
		return &fs.PathError{Op: op, Path: d.Join(name), Err: errors.New("not a single file name")}
	}
	return nil
}

// Lstat is name's Info, not following a link.
func (d *Dir) Lstat(name string) (safefs.Info, error) {
	if err := d.checkName("lstat", name); err != nil {
		return safefs.Info{}, err
	}
	infos, err := d.c.lstat(d.Join(name))
	if err != nil {
		return safefs.Info{}, err
	}
	return infos[0], nil
}

// ReadLimited reads the regular file name, at most limit bytes (more is an
// error); a link or anything but a regular file is refused before it is
// opened.
func (d *Dir) ReadLimited(name string, limit int64) ([]byte, safefs.Info, error) {
	info, err := d.Lstat(name)
	if err != nil {
		return nil, info, err
	}
	switch {
	case info.IsSymlink():
		return nil, info, &fs.PathError{Op: "open", Path: d.Join(name), Err: safefs.ErrSymlink}
	case !info.IsRegular():
		return nil, info, &fs.PathError{Op: "open", Path: d.Join(name), Err: safefs.ErrNotRegular}
	}
	f, err := d.c.sftp.OpenFile(d.Join(name), os.O_RDONLY)
	if err != nil {
		return nil, info, fmt.Errorf("open %s: %w", d.where(name), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, info, fmt.Errorf("read %s: %w", d.where(name), err)
	}
	if int64(len(b)) > limit {
		return nil, info, fmt.Errorf("%s (over %d bytes) %w", d.where(name), limit, ErrTooLarge)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(b)) {
		return nil, info, fmt.Errorf("%s changed while it was read", d.where(name))
	}
	return b, info, nil
}

// ReadFile reads the regular file name (see ReadLimited).
func (d *Dir) ReadFile(name string) ([]byte, safefs.Info, error) {
	return d.ReadLimited(name, maxRead)
}

// SHA256 hashes the regular file name, hex-encoded.
func (d *Dir) SHA256(name string) (string, safefs.Info, error) {
	b, info, err := d.ReadFile(name)
	if err != nil {
		return "", info, err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), info, nil
}

// CreateExcl creates name exclusively (SFTP CREAT|EXCL: an existing entry
// of any kind, a planted link included, is fs.ErrExist and left alone),
// sets its owner and mode, writes data and fsyncs it (fsync@openssh.com,
// when the server offers it). The new file must come out of the open
// readable by its owner only (the server's SFTP umask, see ErrUmask): the
// bytes go in after owner and mode are set. On failure the file is removed.
func (d *Dir) CreateExcl(name string, data []byte, mode os.FileMode, uid, gid int) (safefs.ID, error) {
	if err := d.checkName("create", name); err != nil {
		return safefs.ID{}, err
	}
	p := d.Join(name)
	f, err := d.c.sftp.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		if _, lerr := d.Lstat(name); lerr == nil {
			return safefs.ID{}, &fs.PathError{Op: "create", Path: p, Err: fs.ErrExist}
		}
		return safefs.ID{}, fmt.Errorf("create %s: %w", d.where(name), err)
	}
	err = func() error {
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("create %s: %w (it was created mode %04o): nothing was written to it; set \"Subsystem sftp internal-sftp -u 077\" in that host's sshd_config", d.where(name), ErrUmask, fi.Mode().Perm())
		}
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", d.where(name), err)
		}
		if err := f.Chmod(mode.Perm()); err != nil {
			return fmt.Errorf("chmod %s: %w", d.where(name), err)
		}
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", d.where(name), err)
		}
		if d.c.fsyncFiles {
			return f.Sync()
		}
		return nil
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var info safefs.Info
	if err == nil {
		info, err = d.Lstat(name)
		if err == nil && (!info.IsRegular() || info.Size != int64(len(data)) || info.UID != uid || info.Nlink != 1) {
			err = fmt.Errorf("create %s: the file is not the one written (someone who can write %s is interfering)", d.where(name), d.path)
		}
	}
	if err != nil {
		if info.ID != (safefs.ID{}) {
			_ = d.RemoveIf(name, info.ID)
		} else {
			_ = d.c.sftp.Remove(p)
		}
		return safefs.ID{}, err
	}
	return info.ID, nil
}

// ErrNoPosixRename says the server does not offer posix-rename@openssh.com:
// certctl never falls back to SFTP's plain rename, which fails on an
// existing destination or is not atomic.
var ErrNoPosixRename = errors.New("the SFTP server does not offer posix-rename@openssh.com (atomic replace): certctl does not fall back to a non-atomic rename")

// Capable reports whether the server offers what every deploy needs: an
// atomic rename (posix-rename@openssh.com).
func (c *Conn) Capable() error {
	if !c.posixRename {
		return fmt.Errorf("ssh %s: %w", c.cfg.Address, ErrNoPosixRename)
	}
	return nil
}

// Rename renames old to new in this directory, atomically replacing new
// (posix-rename@openssh.com).
func (d *Dir) Rename(old, new string) error {
	if err := d.checkName("rename", old); err != nil {
		return err
	}
	if err := d.checkName("rename", new); err != nil {
		return err
	}
	if !d.c.posixRename {
		return fmt.Errorf("rename %s: %w", d.where(new), ErrNoPosixRename)
	}
	if err := d.c.sftp.PosixRename(d.Join(old), d.Join(new)); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(old), New: d.Join(new), Err: err}
	}
	return nil
}

// Remove unlinks name (a link itself, never what it points to; never a
// directory).
func (d *Dir) Remove(name string) error {
	info, err := d.Lstat(name)
	if err != nil {
		return err
	}
	if info.IsDir() {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: syscall.EISDIR}
	}
	if err := d.c.sftp.Remove(d.Join(name)); err != nil {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	return nil
}

// RemoveIf unlinks name only while it is the file id.
func (d *Dir) RemoveIf(name string, id safefs.ID) error {
	info, err := d.Lstat(name)
	if err != nil {
		return err
	}
	if info.ID != id {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: fmt.Errorf("is no longer the file created (%s, want %s)", info.ID, id)}
	}
	return d.Remove(name)
}

// Sync fsyncs the directory on the remote host (sync(1) on it), making
// renames and removals in it durable.
func (d *Dir) Sync() error {
	out, err := d.c.runFast(Join([]string{"sync", "--", d.path}), statTimeout, 4096)
	if err != nil {
		return fmt.Errorf("fsync %s: %v: %s", d.where(""), err, strings.TrimSpace(out))
	}
	return nil
}

// Owner facts of the remote host.

// Process is the remote user's uid and gid: the owner of a new file no
// setting names.
func (c *Conn) Process() (uid, gid int, err error) {
	c.factsMu.Lock()
	defer c.factsMu.Unlock()
	if c.factsKnown {
		return c.uid, c.gid, nil
	}
	out, err := c.runFast("id -u && id -g", statTimeout, 4096)
	if err != nil {
		return 0, 0, fmt.Errorf("remote id: %v: %s", err, strings.TrimSpace(out))
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("remote id: unexpected answer %q", out)
	}
	uid, err1 := strconv.Atoi(f[0])
	gid, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("remote id: unexpected answer %q", out)
	}
	c.uid, c.gid, c.factsKnown = uid, gid, true
	return uid, gid, nil
}

// ErrNoSuchName says the remote host has no such user or group.
var ErrNoSuchName = errors.New("no such name on the remote host")

// LookupUser is the uid and primary gid of a user (name or number) on the
// remote host (getent passwd).
func (c *Conn) LookupUser(name string) (uid, gid int, err error) {
	f, err := c.getent("passwd", name)
	if err != nil {
		return 0, 0, err
	}
	if len(f) < 4 {
		return 0, 0, fmt.Errorf("remote getent passwd %s: unexpected answer", name)
	}
	uid, err1 := strconv.Atoi(f[2])
	gid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("remote getent passwd %s: unexpected answer", name)
	}
	return uid, gid, nil
}

// LookupGroup is the gid of a group (name or number) on the remote host.
func (c *Conn) LookupGroup(name string) (int, error) {
	f, err := c.getent("group", name)
	if err != nil {
		return 0, err
	}
	if len(f) < 3 {
		return 0, fmt.Errorf("remote getent group %s: unexpected answer", name)
	}
	return strconv.Atoi(f[2])
}

func (c *Conn) getent(db, name string) ([]string, error) {
	out, err := c.runFast(Join([]string{"getent", db, name}), statTimeout, 4096)
	var ee *ExitError
	if errors.As(err, &ee) && ee.Status == 2 {
		return nil, ErrNoSuchName
	}
	if err != nil {
		return nil, fmt.Errorf("remote getent %s %s: %v: %s", db, name, err, strings.TrimSpace(out))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return strings.Split(line, ":"), nil
}

// LookPath reports whether the remote user's shell finds the command name.
func (c *Conn) LookPath(name string) error {
	out, err := c.runFast("command -v "+Quote(name)+" >/dev/null", statTimeout, 4096)
	var ee *ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("not found on %s", c.cfg.Address)
	}
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
	}
	return nil
}

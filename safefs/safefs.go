// Package safefs does file operations that a local user cannot redirect with
// symbolic links or renames. A directory is opened once, from "/", without
// following any link on the way (openat2 with RESOLVE_NO_SYMLINKS where the
// kernel has it, else a walk component by component with O_NOFOLLOW); every
// later open, create, rename and remove is relative to that descriptor, so
// swapping a path component afterwards changes nothing about where the
// bytes go. Files are created O_CREAT|O_EXCL|O_NOFOLLOW and read O_NOFOLLOW,
// refusing anything but a regular file.
//
// The package is Linux-only, like the host worker.
package safefs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ErrSymlink is returned (wrapped) when a path component or a file is a
// symbolic link.
var ErrSymlink = errors.New("is a symbolic link")

// ErrNotRegular is returned (wrapped) when a file to read is not a regular
// file (a directory, a device, a FIFO ...).
var ErrNotRegular = errors.New("is not a regular file")

// ID identifies a directory or file: its device and inode numbers.
type ID struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
}

func (i ID) String() string { return fmt.Sprintf("dev %d inode %d", i.Dev, i.Ino) }

// Info is what fstat or fstatat (without following links) says.
type Info struct {
	ID
	Mode  uint32 // st_mode: type and permission bits
	UID   int
	GID   int
	Size  int64
	Nlink uint64
}

func infoOf(st *unix.Stat_t) Info {
	return Info{ID: ID{Dev: uint64(st.Dev), Ino: st.Ino}, Mode: st.Mode, UID: int(st.Uid), GID: int(st.Gid), Size: st.Size, Nlink: uint64(st.Nlink)}
}

// IsRegular, IsDir and IsSymlink report the file type.
func (i Info) IsRegular() bool { return i.Mode&unix.S_IFMT == unix.S_IFREG }
func (i Info) IsDir() bool     { return i.Mode&unix.S_IFMT == unix.S_IFDIR }
func (i Info) IsSymlink() bool { return i.Mode&unix.S_IFMT == unix.S_IFLNK }

// Perm is the permission bits (0777).
func (i Info) Perm() os.FileMode { return os.FileMode(i.Mode & 0o777) }

// Sticky reports the sticky bit.
func (i Info) Sticky() bool { return i.Mode&unix.S_ISVTX != 0 }

// ModeString is the mode as ls -ld shows it in octal, sticky bit included
// ("1777", "0755").
func (i Info) ModeString() string { return fmt.Sprintf("%04o", i.Mode&0o7777) }

// openat2 is off after the kernel (or a seccomp filter) refused it once, or
// when a test turns it off.
var noOpenat2 atomic.Bool

// Dir is a directory opened without following links. Its methods take a
// single name within it (no "/", not "." or "..").
type Dir struct {
	fd   int
	path string
	id   ID
}

// OpenDir opens the absolute, clean path as a directory without following a
// symbolic link anywhere on the way. A link on the way is ErrSymlink naming
// it (when the walk can tell which).
func OpenDir(path string) (*Dir, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errors.New("not an absolute, clean path")}
	}
	fd, err := openDirFD(path)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path, id: infoOf(&st).ID}, nil
}

func openDirFD(path string) (int, error) {
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM):
			// No openat2 here (old kernel, or a seccomp filter): walk.
			noOpenat2.Store(true)
		default:
			// A link somewhere (ELOOP, or ENOTDIR for the last component):
			// the walk names it.
			fd, werr := walk(path, nil)
			if werr != nil {
				return -1, werr
			}
			unix.Close(fd)
			if errors.Is(err, unix.ELOOP) {
				err = ErrSymlink
			}
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
	}
	return walk(path, nil)
}

// walk opens path from "/" one component at a time, never following a link,
// and returns a readable descriptor of the last directory. visit, when not
// nil, sees each directory's Info and the next component's name ("" for the
// last) before the walk goes on.
func walk(path string, visit func(dir string, info Info, next string, nextInfo *Info) error) (int, error) {
	cur, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if path == "/" {
		parts = nil
	}
	here := "/"
	for i, name := range parts {
		next := filepath.Join(here, name)
		var st unix.Stat_t
		if err := unix.Fstatat(cur, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Close(cur)
			return -1, &fs.PathError{Op: "lstat", Path: next, Err: err}
		}
		ni := infoOf(&st)
		if visit != nil {
			var hs unix.Stat_t
			if err := unix.Fstat(cur, &hs); err != nil {
				unix.Close(cur)
				return -1, &fs.PathError{Op: "fstat", Path: here, Err: err}
			}
			if err := visit(here, infoOf(&hs), name, &ni); err != nil {
				unix.Close(cur)
				return -1, err
			}
		}
		if ni.IsSymlink() {
			unix.Close(cur)
			return -1, &fs.PathError{Op: "open", Path: next, Err: ErrSymlink}
		}
		flags := unix.O_PATH | unix.O_NOFOLLOW | unix.O_DIRECTORY | unix.O_CLOEXEC
		if i == len(parts)-1 {
			flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_DIRECTORY | unix.O_CLOEXEC
		}
		fd, err := unix.Openat(cur, name, flags, 0)
		unix.Close(cur)
		if err != nil {
			if errors.Is(err, unix.ELOOP) {
				err = ErrSymlink
			}
			return -1, &fs.PathError{Op: "open", Path: next, Err: err}
		}
		cur, here = fd, next
	}
	if len(parts) == 0 {
		fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: "/", Err: err}
		}
		cur = fd
	}
	if visit != nil {
		var hs unix.Stat_t
		if err := unix.Fstat(cur, &hs); err != nil {
			unix.Close(cur)
			return -1, &fs.PathError{Op: "fstat", Path: here, Err: err}
		}
		if err := visit(here, infoOf(&hs), "", nil); err != nil {
			unix.Close(cur)
			return -1, err
		}
	}
	return cur, nil
}

// Close closes the directory.
func (d *Dir) Close() error { return unix.Close(d.fd) }

// Path is the path the directory was opened by.
func (d *Dir) Path() string { return d.path }

// ID is the directory's identity when it was opened.
func (d *Dir) ID() ID { return d.id }

// Join names a file of the directory, for messages.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

func (d *Dir) checkName(op, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) {
		return &fs.PathError{Op: op, Path: d.Join(name), Err: errors.New("not a single file name")}
	}
	return nil
}

// Stat is the directory's own Info now.
func (d *Dir) Stat() (Info, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return Info{}, &fs.PathError{Op: "fstat", Path: d.path, Err: err}
	}
	return infoOf(&st), nil
}

// Lstat is name's Info, not following a link (fstatat AT_SYMLINK_NOFOLLOW).
// A missing file is an error satisfying errors.Is(err, fs.ErrNotExist).
func (d *Dir) Lstat(name string) (Info, error) {
	if err := d.checkName("lstat", name); err != nil {
		return Info{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Info{}, &fs.PathError{Op: "lstat", Path: d.Join(name), Err: err}
	}
	return infoOf(&st), nil
}

// Open opens name for reading without following a link and refuses
// anything but a regular file (checked on the open descriptor).
func (d *Dir) Open(name string) (*os.File, Info, error) {
	if err := d.checkName("open", name); err != nil {
		return nil, Info{}, err
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = ErrSymlink
		}
		return nil, Info{}, &fs.PathError{Op: "open", Path: d.Join(name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, Info{}, &fs.PathError{Op: "fstat", Path: d.Join(name), Err: err}
	}
	info := infoOf(&st)
	if !info.IsRegular() {
		unix.Close(fd)
		return nil, info, &fs.PathError{Op: "open", Path: d.Join(name), Err: ErrNotRegular}
	}
	return os.NewFile(uintptr(fd), d.Join(name)), info, nil
}

// ReadFile reads the regular file name (see Open).
func (d *Dir) ReadFile(name string) ([]byte, Info, error) {
	f, info, err := d.Open(name)
	if err != nil {
		return nil, info, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return b, info, err
}

// SHA256 hashes the regular file name (see Open), hex-encoded.
func (d *Dir) SHA256(name string) (string, Info, error) {
	f, info, err := d.Open(name)
	if err != nil {
		return "", info, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", info, err
	}
	return hex.EncodeToString(h.Sum(nil)), info, nil
}

// CreateExcl creates name (O_CREAT|O_EXCL|O_NOFOLLOW, 0600 so nothing can
// read it before its owner and mode are set), sets its owner and mode, writes
// data and fsyncs it. An existing entry of any kind at name (a planted link
// included) is fs.ErrExist and is left alone. On any later failure the new
// file is removed. It returns the new file's identity.
func (d *Dir) CreateExcl(name string, data []byte, mode os.FileMode, uid, gid int) (ID, error) {
	if err := d.checkName("create", name); err != nil {
		return ID{}, err
	}
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
	if err != nil {
		return ID{}, &fs.PathError{Op: "create", Path: d.Join(name), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.Join(name))
	var id ID
	err = func() error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err
		}
		id = infoOf(&st).ID
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", d.Join(name), err)
		}
		if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
			return fmt.Errorf("chmod %s: %w", d.Join(name), err)
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = d.RemoveIf(name, id)
		return ID{}, err
	}
	return id, nil
}

// Rename renames old to new, both in this directory (renameat).
func (d *Dir) Rename(old, new string) error {
	if err := d.checkName("rename", old); err != nil {
		return err
	}
	if err := d.checkName("rename", new); err != nil {
		return err
	}
	if err := unix.Renameat(d.fd, old, d.fd, new); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(old), New: d.Join(new), Err: err}
	}
	return nil
}

// Remove unlinks name (a link itself, never what it points to).
func (d *Dir) Remove(name string) error {
	if err := d.checkName("remove", name); err != nil {
		return err
	}
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	return nil
}

// RemoveIf unlinks name only while it is the file id (same device and inode);
// another file at that name is left alone and is an error.
func (d *Dir) RemoveIf(name string, id ID) error {
	info, err := d.Lstat(name)
	if err != nil {
		return err
	}
	if info.ID != id {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: fmt.Errorf("is no longer the file created (%s, want %s)", info.ID, id)}
	}
	return d.Remove(name)
}

// Sync fsyncs the directory, making renames and removals in it durable.
func (d *Dir) Sync() error {
	if err := unix.Fsync(d.fd); err != nil && !errors.Is(err, unix.EINVAL) {
		return &fs.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// Names lists the directory's entries (not "." and "..").
func (d *Dir) Names() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

// Unchanged reports an error unless path still opens (without links) as the
// directory d: nothing was swapped in its place since d was opened.
func (d *Dir) Unchanged() error {
	return CheckID(d.path, d.id)
}

// CheckID reports an error unless path opens, without following links, as
// the directory with identity want.
func CheckID(path string, want ID) error {
	now, err := OpenDir(path)
	if err != nil {
		return &ChangedError{Path: path, Want: want, Err: err}
	}
	defer now.Close()
	if now.id != want {
		return &ChangedError{Path: path, Want: want, Got: now.id}
	}
	return nil
}

// ChangedError says a directory is not the one seen before.
type ChangedError struct {
	Path string
	Want ID
	Got  ID
	Err  error
}

func (e *ChangedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("directory %s is no longer the one planned (%s): %v", e.Path, e.Want, e.Err)
	}
	return fmt.Sprintf("directory %s was replaced since it was planned (%s, now %s)", e.Path, e.Want, e.Got)
}

func (e *ChangedError) Unwrap() error { return e.Err }

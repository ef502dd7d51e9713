package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/scrub"
	"github.com/certctl/certctl/sshfs"
	"github.com/certctl/certctl/target"
)

// The steps are written once, against FS and Dir: what a step needs of the
// machine a target's files are on. localFS is this machine, through package
// safefs (directory descriptors, no link followed) and runCommand (the
// supervised, bounded command); sshFS is another machine reached over
// SSH/SFTP (package sshfs), for a target with target_config.ssh.

// Dir is one destination directory, opened without following links. Its
// methods take a single name within it.
type Dir interface {
	Path() string
	Join(name string) string
	// ID is the directory's identity (device, inode) when opened.
	ID() safefs.ID
	Lstat(name string) (safefs.Info, error)
	// ReadLimited reads the regular file name (never a link, a FIFO or a
	// device), at most limit bytes: more is an error.
	ReadLimited(name string, limit int64) ([]byte, safefs.Info, error)
	ReadFile(name string) ([]byte, safefs.Info, error)
	SHA256(name string) (string, safefs.Info, error)
	// CreateExcl creates name exclusively with its owner and mode set
	// before the bytes go in, fsynced; an existing entry is fs.ErrExist.
	CreateExcl(name string, data []byte, mode os.FileMode, uid, gid int) (safefs.ID, error)
	// Rename atomically replaces new with old.
	Rename(old, new string) error
	Remove(name string) error
	RemoveIf(name string, id safefs.ID) error
	// Sync makes renames and removals in the directory durable.
	Sync() error
	Close() error
}

// FS is the machine a target's files are on.
type FS interface {
	// Where names the machine in the backup ledger and in messages: "" for
	// this one, "ssh://user@host:port" for a remote one.
	Where() string
	OpenDir(path string) (Dir, error)
	// CheckSecure refuses a directory someone other than root and owner
	// could redirect writes in (safefs.CheckSecure's rules).
	CheckSecure(dir string, owner int) error
	// Run runs argv within limit and returns the scrubbed tail of its
	// output.
	Run(ctx context.Context, argv target.Command, limit time.Duration, sc *scrub.Scrubber) (string, error)
	// LookPath reports whether the command name can be run there.
	LookPath(name string) error
	// LookupUser and LookupGroup resolve names or numeric ids.
	LookupUser(name string) (uid, gid int, err error)
	LookupGroup(name string) (gid int, err error)
	// Process is the uid and gid new files get when nothing else says.
	Process() (uid, gid int, err error)
}

// fsFor is the machine t's files are on, and the release to call when the
// step is done with it. An SSH target's connection comes from the worker's
// pool; an unreachable host is HostUnavailable, an unknown or changed host
// key HostKeyMismatch.
func (a *Activities) fsFor(ctx context.Context, t target.Target) (FS, func(), error) {
	if !t.Remote() {
		return localFS{}, func() {}, nil
	}
	pool := sshfs.Default
	if a != nil && a.SSH != nil {
		pool = a.SSH
	}
	c, err := pool.Get(ctx, t.Config.SSH)
	if err != nil {
		return nil, func() {}, sshErr(err)
	}
	if err := c.Capable(); err != nil {
		c.Release()
		return nil, func() {}, temporal.NewNonRetryableApplicationError(err.Error()+"; nothing was written", contract.ValidateFailed, nil)
	}
	return sshFS{c}, c.Release, nil
}

// sshErr types the transport's errors for the workflow.
func sshErr(err error) error {
	var he *sshfs.HostKeyError
	var ue *sshfs.UnavailableError
	var ce *sshfs.ConfigError
	switch {
	case errors.As(err, &he):
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.HostKeyMismatch, nil)
	case errors.As(err, &ue):
		return temporal.NewNonRetryableApplicationError(err.Error()+"; nothing was written", contract.HostUnavailable, nil)
	case errors.As(err, &ce):
		return contract.Invalid("target_config.ssh", err.Error()+" (on the certctl worker)")
	case errors.Is(err, sshfs.ErrUmask):
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.InsecurePath, nil)
	}
	return err
}

// localFS is this machine, through package safefs.
type localFS struct{}

func (localFS) Where() string { return "" }

func (localFS) OpenDir(path string) (Dir, error) {
	d, err := safefs.OpenDir(path)
	if err != nil {
		return nil, err
	}
	return localDir{d}, nil
}

func (localFS) CheckSecure(dir string, owner int) error { return safefs.CheckSecure(dir, owner) }

func (localFS) Run(ctx context.Context, argv target.Command, limit time.Duration, sc *scrub.Scrubber) (string, error) {
	return runCommand(ctx, exec.Command(argv[0], argv[1:]...), limit, sc)
}

func (localFS) LookPath(name string) error {
	_, err := exec.LookPath(name)
	return err
}

func (localFS) LookupUser(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return 0, 0, err
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func (localFS) LookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if g, err = user.LookupGroupId(name); err != nil {
			return 0, err
		}
	}
	return strconv.Atoi(g.Gid)
}

func (localFS) Process() (uid, gid int, err error) { return os.Getuid(), os.Getgid(), nil }

// localDir is a safefs.Dir with a bounded read.
type localDir struct{ *safefs.Dir }

func (d localDir) ReadLimited(name string, limit int64) ([]byte, safefs.Info, error) {
	f, info, err := d.Open(name)
	if err != nil {
		return nil, info, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes: not a file this deploy wrote", d.Join(name), limit)
	}
	return b, info, err
}

// sshFS is a host reached over SSH/SFTP (package sshfs).
type sshFS struct{ c *sshfs.Conn }

func (s sshFS) Where() string { return "ssh://" + s.c.Address() }

func (s sshFS) OpenDir(path string) (Dir, error) {
	d, err := s.c.OpenDir(path)
	if err != nil {
		return nil, sshErr(err)
	}
	return d, nil
}

func (s sshFS) CheckSecure(dir string, owner int) error { return sshErr(s.c.CheckSecure(dir, owner)) }

// Run runs argv on the remote host, each argument quoted for its shell,
// within limit (past it the command gets SIGKILL and its session is
// closed), keeping outputRing bytes of its output.
func (s sshFS) Run(ctx context.Context, argv target.Command, limit time.Duration, sc *scrub.Scrubber) (string, error) {
	stop := heartbeat(ctx)
	out, err := s.c.Run(ctx, argv, nil, limit, outputRing)
	stop()
	return tail(out, sc), sshErr(err)
}

func (s sshFS) LookPath(name string) error               { return sshErr(s.c.LookPath(name)) }
func (s sshFS) LookupUser(name string) (int, int, error) { return s.c.LookupUser(name) }
func (s sshFS) LookupGroup(name string) (int, error)     { return s.c.LookupGroup(name) }
func (s sshFS) Process() (uid, gid int, err error)       { return s.c.Process() }

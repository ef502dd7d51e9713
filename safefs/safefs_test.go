package safefs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// both runs fn with openat2 and with the component-by-component walk.
func both(t *testing.T, fn func(t *testing.T)) {
	t.Run("openat2", func(t *testing.T) {
		if noOpenat2.Load() {
			t.Fatal("openat2 is unavailable here: the openat2 path is not tested")
		}
		fn(t)
	})
	t.Run("walk", func(t *testing.T) {
		defer withoutOpenat2()()
		fn(t)
	})
}

func open(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := OpenDir(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestOpenDirRefusesLinkOnTheWay(t *testing.T) {
	both(t, func(t *testing.T) {
		base := t.TempDir()
		real := filepath.Join(base, "real")
		if err := os.MkdirAll(filepath.Join(real, "certs"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, filepath.Join(base, "link")); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{filepath.Join(base, "link"), filepath.Join(base, "link", "certs")} {
			_, err := OpenDir(p)
			if !errors.Is(err, ErrSymlink) {
				t.Errorf("OpenDir(%s) = %v, want ErrSymlink", p, err)
			}
			if err != nil && !strings.Contains(err.Error(), filepath.Join(base, "link")) {
				t.Errorf("error does not name the link: %v", err)
			}
		}
		if _, err := OpenDir("relative/dir"); err == nil {
			t.Error("a relative path was opened")
		}
		if _, err := OpenDir(base + "/real/../real"); err == nil {
			t.Error("an unclean path was opened")
		}
		d := open(t, filepath.Join(real, "certs"))
		fi, _ := os.Stat(filepath.Join(real, "certs"))
		st := fi.Sys().(*syscall.Stat_t)
		if d.ID() != (ID{Dev: uint64(st.Dev), Ino: st.Ino}) {
			t.Errorf("ID %v is not the directory's", d.ID())
		}
	})
}

func TestCreateExclNeverWritesThroughALink(t *testing.T) {
	both(t, func(t *testing.T) {
		dir := t.TempDir()
		victim := filepath.Join(t.TempDir(), "victim")
		if err := os.WriteFile(victim, []byte("root only"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(victim, filepath.Join(dir, "tmp")); err != nil {
			t.Fatal(err)
		}
		d := open(t, dir)
		_, err := d.CreateExcl("tmp", []byte("KEY"), 0o644, 0, 0)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("CreateExcl over a link = %v, want ErrExist", err)
		}
		if got, _ := os.ReadFile(victim); string(got) != "root only" {
			t.Errorf("victim now holds %q", got)
		}
		if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
			t.Errorf("victim mode changed to %v", fi.Mode())
		}
		if _, err := os.Lstat(filepath.Join(dir, "tmp")); err != nil {
			t.Errorf("the planted link was removed: %v", err)
		}
	})
}

func TestCreateExclSetsOwnerModeAndBytes(t *testing.T) {
	both(t, func(t *testing.T) {
		dir := t.TempDir()
		d := open(t, dir)
		id, err := d.CreateExcl("f", []byte("data"), 0o640, 65534, 65534)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(dir, "f"))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o640 || st.Uid != 65534 || st.Gid != 65534 || id.Ino != st.Ino {
			t.Errorf("mode %v owner %d:%d ino %d, want 0640 65534:65534 ino %d", fi.Mode(), st.Uid, st.Gid, st.Ino, id.Ino)
		}
		if b, info, err := d.ReadFile("f"); err != nil || string(b) != "data" || info.ID != id {
			t.Errorf("ReadFile = %q %v %v", b, info, err)
		}
		if _, err := d.CreateExcl("f", []byte("again"), 0o600, 0, 0); !errors.Is(err, fs.ErrExist) {
			t.Errorf("second CreateExcl = %v, want ErrExist", err)
		}
	})
}

func TestOpenRefusesLinksAndSpecialFiles(t *testing.T) {
	both(t, func(t *testing.T) {
		dir := t.TempDir()
		secret := filepath.Join(t.TempDir(), "secret")
		os.WriteFile(secret, []byte("s"), 0o600)
		os.Symlink(secret, filepath.Join(dir, "link"))
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(filepath.Join(dir, "sub"), 0o700)
		d := open(t, dir)
		if _, _, err := d.ReadFile("link"); !errors.Is(err, ErrSymlink) {
			t.Errorf("ReadFile(link) = %v, want ErrSymlink", err)
		}
		for _, n := range []string{"fifo", "sub"} {
			if _, _, err := d.ReadFile(n); !errors.Is(err, ErrNotRegular) {
				t.Errorf("ReadFile(%s) = %v, want ErrNotRegular", n, err)
			}
		}
		if info, err := d.Lstat("link"); err != nil || !info.IsSymlink() {
			t.Errorf("Lstat(link) = %v %v, want the link itself", info, err)
		}
		for _, n := range []string{"../x", "a/b", ".", "..", ""} {
			if _, err := d.Lstat(n); err == nil {
				t.Errorf("Lstat(%q) accepted", n)
			}
		}
	})
}

// A directory swapped (for a link or another directory) after it was opened
// does not redirect what is written through the descriptor, and CheckID sees
// the swap.
func TestSwappedDirectoryDoesNotRedirect(t *testing.T) {
	both(t, func(t *testing.T) {
		base := t.TempDir()
		certs, elsewhere := filepath.Join(base, "certs"), filepath.Join(base, "elsewhere")
		os.Mkdir(certs, 0o755)
		os.Mkdir(elsewhere, 0o755)
		d := open(t, certs)
		if err := os.Rename(certs, filepath.Join(base, "moved")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(elsewhere, certs); err != nil {
			t.Fatal(err)
		}
		if err := CheckID(certs, d.ID()); err == nil {
			t.Error("CheckID accepted a directory swapped for a link")
		}
		if _, err := d.CreateExcl("f.tmp", []byte("x"), 0o600, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := d.Rename("f.tmp", "f"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(elsewhere, "f")); err == nil {
			t.Error("the write followed the swapped link")
		}
		if b, _ := os.ReadFile(filepath.Join(base, "moved", "f")); !bytes.Equal(b, []byte("x")) {
			t.Error("the file is not in the directory that was opened")
		}
		os.Remove(certs)
		os.Mkdir(certs, 0o755)
		var cerr *ChangedError
		if err := CheckID(certs, d.ID()); !errors.As(err, &cerr) {
			t.Errorf("CheckID accepted another directory at the same path: %v", err)
		}
		if err := CheckID(filepath.Join(base, "moved"), d.ID()); err != nil {
			t.Errorf("CheckID refused the same directory: %v", err)
		}
	})
}

func TestRemoveIfOnlyRemovesTheSameFile(t *testing.T) {
	dir := t.TempDir()
	d := open(t, dir)
	id, err := d.CreateExcl("b", []byte("1"), 0o600, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Moved away, not removed, so the planted file cannot reuse its inode.
	os.Rename(filepath.Join(dir, "b"), filepath.Join(dir, "a"))
	os.WriteFile(filepath.Join(dir, "b"), []byte("planted"), 0o600)
	if err := d.RemoveIf("b", id); err == nil {
		t.Error("RemoveIf removed a file planted at the name")
	}
	if _, err := os.Lstat(filepath.Join(dir, "b")); err != nil {
		t.Error("the planted file is gone")
	}
	if err := d.RemoveIf("a", id); err != nil {
		t.Errorf("RemoveIf refused the file it created: %v", err)
	}
	if names, err := d.Names(); err != nil || len(names) != 1 || names[0] != "b" {
		t.Errorf("Names = %v %v", names, err)
	}
}

func TestCheckSecure(t *testing.T) {
	both(t, func(t *testing.T) {
		base := t.TempDir() // under /tmp (root 1777), itself root-owned 0700
		mk := func(name string, mode os.FileMode, uid int) string {
			p := filepath.Join(base, name)
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Chmod(p, uint32(mode)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, uid, uid); err != nil {
				t.Fatal(err)
			}
			return p
		}
		ok := []struct {
			dir   string
			owner int
		}{
			{mk("root700", 0o700, 0), 0},
			{mk("root755", 0o755, 0), 0},
			{mk("nobody755", 0o755, 65534), 65534}, // the file's own owner
			{mk("root755/sub", 0o755, 0), 0},
			{mk("sticky/rootchild", 0o755, 0), 0},
			{mk("ownerown/sub", 0o755, 65534), 65534}, // an ancestor owned by the file's owner
		}
		mk("ownerown", 0o755, 65534)
		mk("sticky", 0o1777, 0)
		for _, c := range ok {
			if err := CheckSecure(c.dir, c.owner); err != nil {
				t.Errorf("CheckSecure(%s, %d) = %v, want nil", c.dir, c.owner, err)
			}
		}
		bad := []struct {
			dir, fault string
			owner      int
		}{
			{"/tmp", "/tmp", 0},
			{mk("world1777", 0o1777, 0), "world1777", 0},
			{mk("group775", 0o775, 0), "group775", 0},
			{mk("other", 0o700, 65534), "other", 0},
			{mk("sticky2/nobodychild", 0o755, 65534), "sticky2", 65534},
			{mk("open777/sub", 0o755, 0), "open777", 0},
			{mk("userown/sub", 0o755, 0), "userown", 0},
		}
		mk("sticky2", 0o1777, 0)
		mk("open777", 0o777, 0)
		mk("userown", 0o755, 65534)
		for _, c := range bad {
			err := CheckSecure(c.dir, c.owner)
			var ie *InsecureError
			if !errors.As(err, &ie) {
				t.Errorf("CheckSecure(%s) = %v, want InsecureError", c.dir, err)
				continue
			}
			want := c.fault
			if !filepath.IsAbs(want) {
				want = filepath.Join(base, want)
			}
			if ie.Dir != want || !strings.Contains(err.Error(), "chmod go-w") || !strings.Contains(err.Error(), "mode ") {
				t.Errorf("CheckSecure(%s): %v, want it to name %s, its mode and the fix", c.dir, err, want)
			}
		}
		os.Symlink(filepath.Join(base, "root755"), filepath.Join(base, "ln"))
		if err := CheckSecure(filepath.Join(base, "ln", "sub"), 0); !errors.Is(err, ErrSymlink) {
			t.Errorf("CheckSecure through a link = %v, want ErrSymlink", err)
		}
	})
}

package safefs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// InsecureError says a directory on the way to a destination lets someone
// other than root (and the file's owner) replace what root writes there.
type InsecureError struct {
	Dir    string // the directory at fault
	UID    int    // its owner
	Mode   string // its mode, octal, sticky bit included
	Reason string // what is wrong with it
	Fix    string // what to do
}

func (e *InsecureError) Error() string {
	return fmt.Sprintf("directory %s (owner uid %d, mode %s) %s; %s", e.Dir, e.UID, e.Mode, e.Reason, e.Fix)
}

// CheckSecure walks dir from "/" without following links and refuses it
// unless only root, and the user owner (the uid the file written there gets),
// can change what its names point to:
//
//   - dir itself must be owned by root or owner and writable by neither group
//     nor others (sticky or not: the sticky bit does not stop a writer from
//     planting names this deploy will create);
//   - every ancestor must be owned by root or owner and writable by neither
//     group nor others, unless it is sticky and the entry beneath it is owned
//     by root (/tmp/x owned by root is fine, /tmp itself is not). A swap the
//     owner makes beneath its own directory does not redirect a write (every
//     step works through the directory descriptor and checks its identity).
//
// A symbolic link on the way is ErrSymlink (wrapped).
func CheckSecure(dir string, owner int) error {
	fd, err := walk(dir, func(here string, info Info, next string, nextInfo *Info) error {
		if next == "" {
			return checkOwnDir(here, info, owner)
		}
		return checkAncestor(here, info, nextInfo, owner)
	})
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// CheckChain applies CheckSecure's rules to a walk made elsewhere (over
// SFTP, say): dirs[i] is the i-th directory from "/" to the destination's
// own directory (the last), infos[i] its Info, none of them a link.
func CheckChain(dirs []string, infos []Info, owner int) error {
	if len(dirs) == 0 || len(dirs) != len(infos) {
		return fmt.Errorf("check %v: no walk to check", dirs)
	}
	for i := range dirs {
		if infos[i].IsSymlink() {
			return fmt.Errorf("%s: %w", dirs[i], ErrSymlink)
		}
		if i == len(dirs)-1 {
			return checkOwnDir(dirs[i], infos[i], owner)
		}
		if err := checkAncestor(dirs[i], infos[i], &infos[i+1], owner); err != nil {
			return err
		}
	}
	return nil
}

func checkOwnDir(dir string, info Info, owner int) error {
	fail := func(reason string) error {
		return &InsecureError{Dir: dir, UID: info.UID, Mode: info.ModeString(), Reason: reason,
			Fix: fmt.Sprintf("make it writable only by root and the file's owner: chown root %s; chmod go-w %s", dir, dir)}
	}
	switch {
	case info.UID != 0 && info.UID != owner:
		return fail(fmt.Sprintf("is owned by uid %d, neither root nor the file's owner (uid %d): that user can replace what root writes there", info.UID, owner))
	case info.Mode&0o022 != 0:
		return fail("is writable by group or others: they can plant links and files where root writes")
	}
	return nil
}

func checkAncestor(dir string, info Info, child *Info, owner int) error {
	fail := func(reason string) error {
		return &InsecureError{Dir: dir, UID: info.UID, Mode: info.ModeString(), Reason: reason,
			Fix: fmt.Sprintf("put the certificate directory under directories only root can write: chown root %s; chmod go-w %s", dir, dir)}
	}
	switch {
	case info.UID != 0 && info.UID != owner:
		return fail(fmt.Sprintf("is an ancestor of the destination owned by uid %d, neither root nor the file's owner (uid %d): that user can swap the directories beneath it", info.UID, owner))
	case info.Mode&0o022 == 0:
		return nil
	case info.Sticky() && child.UID == 0:
		return nil // like /tmp/x owned by root: no one else can rename x
	case info.Sticky():
		return fail(fmt.Sprintf("is writable by others and its entry beneath, on the way to the destination, is owned by uid %d, not root", child.UID))
	}
	return fail("is an ancestor of the destination writable by group or others without the sticky bit: they can swap the directories beneath it")
}

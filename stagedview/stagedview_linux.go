package stagedview

import (
	"fmt"
	"syscall"
)

// enterNamespace unshares the calling thread's mount namespace and makes
// "/" recursively private in it, as the runtime does for a child started
// with Unshareflags CLONE_NEWNS.
func enterNamespace() error {
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return err
	}
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	return nil
}

func mountAll(binds []Bind) error {
	for _, b := range binds {
		if err := syscall.Mount(b.Src, b.Dst, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", b.Src, b.Dst, err)
		}
	}
	return nil
}

package stagedview

import (
	"fmt"
	"os/exec"
	"syscall"
)

func setNamespace(cmd *exec.Cmd) error {
	// With CLONE_NEWNS the runtime also makes "/" recursively private in the
	// child, so the binds never propagate back to the host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
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

func execve(path string, argv, env []string) error { return syscall.Exec(path, argv, env) }

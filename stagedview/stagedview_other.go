//go:build !linux

package stagedview

import (
	"os/exec"
	"syscall"
)

func setNamespace(*exec.Cmd) error { return ErrUnavailable }

func mountAll([]Bind) error { return ErrUnavailable }

func execve(path string, argv, env []string) error { return syscall.Exec(path, argv, env) }

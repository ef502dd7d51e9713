//go:build !linux

package stagedview

func enterNamespace() error { return ErrUnavailable }

func mountAll([]Bind) error { return ErrUnavailable }

package connectors

import (
	"os"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Separate is a connector for a server that reads separate cert, chain and
// key files (nginx, apache, caddy's file mode, postfix, dovecot): what
// differs between them is data — the new key's mode and the defaults.
type Separate struct {
	Name string
	// KeyMode is the mode of a key file that does not exist yet; cert and
	// chain files are 0644.
	KeyMode os.FileMode
	Default Defaults
}

// Files writes cert (with the chain appended when there is no chain_path),
// chain (when chain_path is set) and key.
func (s Separate) Files(cfg target.Config, m material.Material) ([]File, error) {
	return SeparateFiles(cfg, m, 0o644, 0o644, s.KeyMode)
}

// Check needs cert_path and key_path, and refuses fields this layout ignores.
func (s Separate) Check(cfg target.Config) error {
	if cfg.CertPath == "" {
		return &target.FieldError{Field: "target_config.cert_path", Msg: "is required for " + s.Name}
	}
	if cfg.KeyPath == "" {
		return &target.FieldError{Field: "target_config.key_path", Msg: "is required for " + s.Name}
	}
	return RefuseUnused(cfg, s.Name)
}

// Defaults are the server's commands, users and verify protocol.
func (s Separate) Defaults() Defaults { return s.Default }

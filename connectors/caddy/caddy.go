// Package caddy is the connector for Caddy serving certificates it does not
// manage (`tls CERT KEY` in a Caddyfile): separate cert and key files, the
// chain appended to the cert unless chain_path is set. Checked with
// `caddy validate`, which loads the certificate and key (it refuses a pair
// that does not match); reloaded with `caddy reload --force` through the
// admin endpoint: without --force caddy sees an unchanged config and does
// nothing, whatever changed in the files.
//
// Both files are renamed into place before the reload, so caddy loads them
// together. Caddy's admin-API mode (certificates pushed through the API, no
// files) is not implemented.
package caddy

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "caddy"

// DefaultConfig is the Caddyfile Debian's package runs.
const DefaultConfig = "/etc/caddy/Caddyfile"

func init() { connectors.Register(Name, Connector{}) }

// Connector implements connectors.Connector for caddy in file mode.
type Connector struct{}

// Files writes cert (with the chain appended when there is no chain_path),
// chain (when chain_path is set) and key.
func (Connector) Files(cfg target.Config, m material.Material) ([]connectors.File, error) {
	return connectors.SeparateFiles(cfg, m, 0o644, 0o644, 0o600)
}

// Check needs cert_path and key_path.
func (Connector) Check(cfg target.Config) error {
	if cfg.CertPath == "" {
		return &target.FieldError{Field: "target_config.cert_path", Msg: "is required for caddy"}
	}
	if cfg.KeyPath == "" {
		return &target.FieldError{Field: "target_config.key_path", Msg: "is required for caddy"}
	}
	return connectors.RefuseUnused(cfg, Name)
}

// Defaults are the packaged Caddyfile's validate and forced reload through
// the default admin endpoint (localhost:2019), and the packaged caddy user.
func (Connector) Defaults() connectors.Defaults {
	return connectors.Defaults{
		ValidateCommand: target.Command{"caddy", "validate", "--config", DefaultConfig, "--adapter", "caddyfile"},
		ReloadCommand:   target.Command{"caddy", "reload", "--config", DefaultConfig, "--adapter", "caddyfile", "--force"},
		Owners:          []string{"caddy"},
		Processes:       []string{"caddy"},
	}
}

// Package nginx is the connector for nginx: separate cert, chain and key
// files, checked with `nginx -t` and reloaded with `nginx -s reload`.
//
// nginx's master process reads the files as root, so the key's default mode
// 0640 with the nginx (or www-data) group is for tools run as that group.
package nginx

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "nginx"

func init() { connectors.Register(Name, Connector{}) }

// Connector implements connectors.Connector for nginx.
type Connector struct{}

// Files writes cert, chain (when chain_path is set) and key.
func (Connector) Files(cfg target.Config, m material.Material) ([]connectors.File, error) {
	return connectors.SeparateFiles(cfg, m, 0o644, 0o644, 0o640)
}

// Check needs cert_path and key_path.
func (Connector) Check(cfg target.Config) error {
	if cfg.CertPath == "" {
		return &target.FieldError{Field: "target_config.cert_path", Msg: "is required for nginx"}
	}
	if cfg.KeyPath == "" {
		return &target.FieldError{Field: "target_config.key_path", Msg: "is required for nginx"}
	}
	return connectors.RefuseUnused(cfg, Name)
}

// Defaults are nginx's own commands and its distro users.
func (Connector) Defaults() connectors.Defaults {
	return connectors.Defaults{
		ValidateCommand: target.Command{"nginx", "-t"},
		ReloadCommand:   target.Command{"nginx", "-s", "reload"},
		Owners:          []string{"nginx", "www-data"},
		Processes:       []string{"nginx"},
	}
}

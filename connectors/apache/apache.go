// Package apache is the connector for the Apache HTTP Server (Debian's
// apache2, RHEL's httpd): separate cert, chain and key files
// (SSLCertificateFile, SSLCertificateChainFile, SSLCertificateKeyFile),
// checked with `apachectl configtest` and reloaded with `apachectl graceful`.
//
// `apachectl configtest` passes a key that does not match the certificate,
// and `graceful` then stops the server. The material check every deploy runs
// before anything is written (and again on the staged files) is what keeps
// such a pair away from apache; this connector adds no check of its own.
package apache

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "apache"

func init() { connectors.Register(Name, Connector{}) }

// Connector implements connectors.Connector for apache.
type Connector struct{}

// Files writes cert, chain (when chain_path is set; without it the chain
// follows the leaf in cert_path, which apache 2.4.8+ sends) and key. New
// keys are 0600: apache reads them as root before its children start.
func (Connector) Files(cfg target.Config, m material.Material) ([]connectors.File, error) {
	return connectors.SeparateFiles(cfg, m, 0o644, 0o644, 0o600)
}

// Check needs cert_path and key_path.
func (Connector) Check(cfg target.Config) error {
	if cfg.CertPath == "" {
		return &target.FieldError{Field: "target_config.cert_path", Msg: "is required for apache"}
	}
	if cfg.KeyPath == "" {
		return &target.FieldError{Field: "target_config.key_path", Msg: "is required for apache"}
	}
	return connectors.RefuseUnused(cfg, Name)
}

// Defaults are apachectl's check and graceful restart, and the distro users
// (RHEL's apache, Debian's www-data).
func (Connector) Defaults() connectors.Defaults {
	return connectors.Defaults{
		ValidateCommand: target.Command{"apachectl", "configtest"},
		ReloadCommand:   target.Command{"apachectl", "graceful"},
		Owners:          []string{"apache", "www-data"},
		Processes:       []string{"apache2", "httpd"},
	}
}

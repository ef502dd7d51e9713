// Package traefik is the connector for Traefik (v3) serving a certificate
// from its file provider. Traefik has no check command and no reload
// command: its file provider watches the dynamic configuration and applies
// it when it changes. It does not notice a certificate file rewritten at the
// same path, though, until the dynamic configuration file itself changes. So
// a deploy writes three files: the certificate (with its chain), the key, and
// last the dynamic configuration file (dynamic_config_path) naming them,
// whose first line carries the leaf's SHA-256. That file's bytes change with
// every new leaf: its rename is what the watcher sees, after the certificate
// and key are already in place. The verify then waits for the watcher.
package traefik

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "traefik"

// RoleDynamicConfig is the role of the dynamic configuration file; errors
// about it name target_config.dynamic_config_path.
const RoleDynamicConfig = "dynamic_config"

const field = "target_config.dynamic_config_path"

func init() { connectors.Register(Name, Connector{connectors.Owned[Config]{Name: Name}}) }

// Config is traefik's own field of target_config: the file-provider file
// the connector writes, a dynamic TLS configuration naming cert_path and
// key_path. Rewriting it is what makes traefik's watcher re-read them.
type Config struct {
	DynamicConfigPath string `json:"dynamic_config_path,omitempty" yaml:"dynamic_config_path,omitempty"`
}

// Validate checks the field's form.
func (c *Config) Validate() error {
	return target.CheckFields(target.OwnField{Field: field, Value: c.DynamicConfigPath, Check: target.CheckPath})
}

// Connector implements connectors.Connector for traefik; its own fields are
// Config.
type Connector struct{ connectors.Owned[Config] }

// Files writes the certificate with its chain appended (traefik sends what
// certFile holds), the key, then the dynamic configuration naming them.
func (c Connector) Files(cfg target.Config, b *material.Bundle) ([]connectors.File, error) {
	if err := c.Check(cfg); err != nil {
		return nil, err
	}
	o, _ := c.Of(cfg)
	return connectors.WithIndexFile(cfg, b, RoleDynamicConfig, o.DynamicConfigPath, DynamicConfig)
}

// Destinations are cert_path (the leaf), key_path and dynamic_config_path.
func (c Connector) Destinations(cfg target.Config) []connectors.Destination {
	o, _ := c.Of(cfg)
	return connectors.With(connectors.SeparateDestinations(cfg), field, o.DynamicConfigPath)
}

// DynamicConfig is the dynamic configuration file: the certificate in the
// TLS certificates (picked by SNI) and as the default store's default
// certificate (served to clients that send no SNI, or one no certificate
// names). Its first line names the leaf, so its bytes change with it.
func DynamicConfig(certPath, keyPath, leafSHA256 string) []byte {
	// JSON strings are YAML flow scalars: any path is quoted safely.
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return []byte(fmt.Sprintf(`# Written by certctl for traefik's file provider; rewritten on every deploy.
# leaf sha256: %s
tls:
  certificates:
    - certFile: %s
      keyFile: %s
  stores:
    default:
      defaultCertificate:
        certFile: %s
        keyFile: %s
`, leafSHA256, q(certPath), q(keyPath), q(certPath), q(keyPath)))
}

// Check needs cert_path, key_path and dynamic_config_path (a .yml or .yaml
// file apart from both), and refuses what traefik would never read.
func (c Connector) Check(cfg target.Config) error {
	o, err := c.Of(cfg)
	if err != nil {
		return err
	}
	p := o.DynamicConfigPath
	if err := connectors.CheckIndexed(cfg, Name, field, p, "the file-provider file certctl rewrites so traefik re-reads the certificate (e.g. /etc/traefik/dynamic/certctl-site.yml)"); err != nil {
		return err
	}
	if ext := strings.ToLower(filepath.Ext(p)); ext != ".yml" && ext != ".yaml" {
		return &contract.FieldError{Field: field, Msg: "must end in .yml or .yaml: traefik's file provider reads the format from the extension, and certctl writes YAML"}
	}
	return nil
}

// Defaults: no validate command and no reload command (traefik has neither:
// its file provider's watcher applies the change), so the pipeline reports
// "server check none" and its reload step does nothing. A target may still
// give validate_command and reload_command of its own, or reload_signal: HUP
// with a pid_file (traefik's file provider re-reads its files on SIGHUP; the
// signal goes only to a process named traefik). New files go to the
// `traefik` user where it exists.
func (Connector) Defaults() connectors.Defaults {
	return connectors.Defaults{Owners: []string{"traefik"}, Processes: []string{"traefik"}}
}

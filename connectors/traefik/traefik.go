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
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "traefik"

// RoleDynamicConfig is the role of the dynamic configuration file; errors
// about it name target_config.dynamic_config_path.
const RoleDynamicConfig = "dynamic_config"

func init() { connectors.Register(Name, Connector{}) }

// Connector implements connectors.Connector for traefik.
type Connector struct{}

// Files writes the certificate with its chain appended (traefik sends what
// certFile holds), the key, then the dynamic configuration naming them.
func (Connector) Files(cfg target.Config, m material.Material) ([]connectors.File, error) {
	if err := (Connector{}).Check(cfg); err != nil {
		return nil, err
	}
	return connectors.WithIndexFile(cfg, m, RoleDynamicConfig, cfg.DynamicConfigPath, DynamicConfig)
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
func (Connector) Check(cfg target.Config) error {
	switch {
	case cfg.CertPath == "":
		return &target.FieldError{Field: "target_config.cert_path", Msg: "is required for traefik"}
	case cfg.KeyPath == "":
		return &target.FieldError{Field: "target_config.key_path", Msg: "is required for traefik"}
	case cfg.ChainPath != "" || cfg.ChainFileMode != nil || cfg.ChainOwner != "":
		return &target.FieldError{Field: "target_config.chain_path", Msg: "is not used by traefik: it sends the chain from the certFile, so certctl appends it to cert_path"}
	case cfg.DynamicConfigPath == "":
		return &target.FieldError{Field: "target_config.dynamic_config_path", Msg: "is required for traefik: the file-provider file certctl rewrites so traefik re-reads the certificate (e.g. /etc/traefik/dynamic/certctl-site.yml)"}
	case cfg.SDSPath != "" || cfg.SDSSecretName != "":
		return &target.FieldError{Field: "target_config.sds_path", Msg: "is not used by traefik (sds_path and sds_secret_name are envoy's)"}
	}
	if ext := strings.ToLower(filepath.Ext(cfg.DynamicConfigPath)); ext != ".yml" && ext != ".yaml" {
		return &target.FieldError{Field: "target_config.dynamic_config_path", Msg: "must end in .yml or .yaml: traefik's file provider reads the format from the extension, and certctl writes YAML"}
	}
	if cfg.DynamicConfigPath == cfg.CertPath || cfg.DynamicConfigPath == cfg.KeyPath {
		return &target.FieldError{Field: "target_config.dynamic_config_path", Msg: "must be a file of its own, apart from cert_path and key_path"}
	}
	return connectors.RefuseUnused(cfg, Name, connectors.FieldDynamicConfig)
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

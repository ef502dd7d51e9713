// Package envoy is the connector for Envoy reading its server certificate
// through file-based SDS: a listener's tls_certificate_sds_secret_configs
// name a Secret whose sds_config is a path_config_source, the SDS file
// (sds_path). That file is one DiscoveryResponse-shaped YAML document whose
// resources hold one envoy.extensions.transport_sockets.tls.v3.Secret with
// a tls_certificate naming the certificate and key files by filename, as
// envoy's own file-based SDS example does.
//
// A deploy writes the certificate (chain appended), the key, and last the
// SDS file, whose first line carries the leaf's SHA-256 so its bytes change
// with every leaf. Every file is staged beside its destination and renamed
// over it by the shared pipeline; envoy watches the SDS file, and the
// directories of the files it names, for such moves. There is no check and
// no reload command.
//
// Not run against a real envoy here: envoy cannot be had on these machines
// (no Debian package, nothing on the Go module proxy). The file's format is
// tested against envoy's documented one, and the atomic replacement against
// the shared activities; nothing more.
package envoy

import (
	"encoding/json"
	"fmt"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "envoy"

// RoleSDS is the role of the SDS file; errors about it name
// target_config.sds_path.
const RoleSDS = "sds"

// SecretType is the @type of an SDS Secret resource.
const SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

func init() { connectors.Register(Name, Connector{}) }

// Connector implements connectors.Connector for envoy.
type Connector struct{}

// Files writes the certificate with its chain appended (certificate_chain is
// one data source), the key, then the SDS file naming them.
func (Connector) Files(cfg target.Config, m material.Material) ([]connectors.File, error) {
	if err := (Connector{}).Check(cfg); err != nil {
		return nil, err
	}
	return connectors.WithIndexFile(cfg, m, RoleSDS, cfg.SDSPath, func(cert, key, leaf string) []byte {
		return SDSFile(cfg.SDSSecretName, cert, key, leaf)
	})
}

// SDSFile is the file-based SDS resource file: one Secret named name whose
// tls_certificate reads the chain and the key from their files.
func SDSFile(name, certPath, keyPath, leafSHA256 string) []byte {
	// JSON strings are YAML flow scalars: names and paths are quoted safely.
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return []byte(fmt.Sprintf(`# Written by certctl for envoy's file-based SDS; rewritten on every deploy.
# leaf sha256: %s
resources:
  - "@type": %s
    name: %s
    tls_certificate:
      certificate_chain:
        filename: %s
      private_key:
        filename: %s
`, leafSHA256, q(SecretType), q(name), q(certPath), q(keyPath)))
}

// Check needs cert_path, key_path, sds_path and sds_secret_name, and refuses
// what envoy would never read.
func (Connector) Check(cfg target.Config) error {
	switch {
	case cfg.CertPath == "":
		return &target.FieldError{Field: "target_config.cert_path", Msg: "is required for envoy"}
	case cfg.KeyPath == "":
		return &target.FieldError{Field: "target_config.key_path", Msg: "is required for envoy"}
	case cfg.ChainPath != "" || cfg.ChainFileMode != nil || cfg.ChainOwner != "":
		return &target.FieldError{Field: "target_config.chain_path", Msg: "is not used by envoy: certificate_chain is one file, so certctl appends the chain to cert_path"}
	case cfg.SDSPath == "":
		return &target.FieldError{Field: "target_config.sds_path", Msg: "is required for envoy: the file a path_config_source names (e.g. /etc/envoy/sds/site.yaml)"}
	case cfg.SDSSecretName == "":
		return &target.FieldError{Field: "target_config.sds_secret_name", Msg: "is required for envoy: the name tls_certificate_sds_secret_configs gives the secret"}
	case cfg.SDSPath == cfg.CertPath || cfg.SDSPath == cfg.KeyPath:
		return &target.FieldError{Field: "target_config.sds_path", Msg: "must be a file of its own, apart from cert_path and key_path"}
	case cfg.DynamicConfigPath != "":
		return &target.FieldError{Field: "target_config.dynamic_config_path", Msg: "is not used by envoy (it is traefik's)"}
	}
	return connectors.RefuseUnused(cfg, Name, connectors.FieldSDS)
}

// Defaults: no validate command and no reload command (envoy re-reads the
// SDS file when it is moved into place), so the pipeline reports "server
// check none" and its reload step does nothing. New files go to the `envoy`
// user where it exists.
func (Connector) Defaults() connectors.Defaults {
	return connectors.Defaults{Owners: []string{"envoy"}}
}

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
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
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

const (
	fieldPath   = "target_config.sds_path"
	fieldSecret = "target_config.sds_secret_name"
)

func init() { connectors.Register(Name, Connector{connectors.Owned[Config]{Name: Name}}) }

// Config is envoy's own fields of target_config: SDSPath is the file-based
// SDS resource file the connector writes (the path of a
// path_config_source); SDSSecretName is the name of the Secret in it, as
// envoy's tls_certificate_sds_secret_configs names it.
type Config struct {
	SDSPath       string `json:"sds_path,omitempty" yaml:"sds_path,omitempty"`
	SDSSecretName string `json:"sds_secret_name,omitempty" yaml:"sds_secret_name,omitempty"`
}

// Validate checks the fields' form.
func (c *Config) Validate() error {
	return target.CheckFields(
		target.OwnField{Field: fieldPath, Value: c.SDSPath, Check: target.CheckPath},
		target.OwnField{Field: fieldSecret, Value: c.SDSSecretName, Check: func(n string) error {
			if strings.TrimSpace(n) != n || strings.IndexFunc(n, unicode.IsControl) >= 0 {
				return errors.New("must not hold control characters or surrounding spaces")
			}
			return nil
		}},
	)
}

// Connector implements connectors.Connector for envoy; its own fields are
// Config.
type Connector struct{ connectors.Owned[Config] }

// Files writes the certificate with its chain appended (certificate_chain is
// one data source), the key, then the SDS file naming them.
func (c Connector) Files(cfg target.Config, b *material.Bundle) ([]connectors.File, error) {
	if err := c.Check(cfg); err != nil {
		return nil, err
	}
	o, _ := c.Of(cfg)
	return connectors.WithIndexFile(cfg, b, RoleSDS, o.SDSPath, func(cert, key, leaf string) []byte {
		return SDSFile(o.SDSSecretName, cert, key, leaf)
	})
}

// Destinations are cert_path (the leaf), key_path and sds_path.
func (c Connector) Destinations(cfg target.Config) []connectors.Destination {
	o, _ := c.Of(cfg)
	return connectors.With(connectors.SeparateDestinations(cfg), fieldPath, o.SDSPath)
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

// Check needs cert_path, key_path, sds_path and sds_secret_name, and
// refuses what envoy would never read.
func (c Connector) Check(cfg target.Config) error {
	o, err := c.Of(cfg)
	if err != nil {
		return err
	}
	if err := connectors.CheckIndexed(cfg, Name, fieldPath, o.SDSPath, "the file a path_config_source names (e.g. /etc/envoy/sds/site.yaml)"); err != nil {
		return err
	}
	if o.SDSSecretName == "" {
		return &contract.FieldError{Field: fieldSecret, Msg: "is required for envoy: the name tls_certificate_sds_secret_configs gives the secret"}
	}
	return nil
}

// Defaults: no validate command and no reload command (envoy re-reads the
// SDS file when it is moved into place), so the pipeline reports "server
// check none" and its reload step does nothing. New files go to the `envoy`
// user where it exists.
func (Connector) Defaults() connectors.Defaults {
	return connectors.Defaults{Owners: []string{"envoy"}}
}

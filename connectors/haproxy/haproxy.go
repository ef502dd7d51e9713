// Package haproxy is the connector for HAProxy: one PEM file (pem_path)
// holding the leaf, its chain and the key, as `bind … ssl crt FILE` reads
// it, written and swapped as one file. Checked with `haproxy -c -f CONFIG`;
// reloaded without systemd by sending USR2 to the master of a master-worker
// haproxy (`haproxy -W … -p PIDFILE`), whose pid the pid file holds.
package haproxy

import (
	"fmt"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "haproxy"

// Debian's and RHEL's defaults: the packaged config, and the pid file the
// packaged unit passes with -p.
const (
	DefaultConfig  = "/etc/haproxy/haproxy.cfg"
	DefaultPIDFile = "/run/haproxy.pid"
)

func init() { connectors.Register(Name, Connector{connectors.Owned[Config]{Name: Name}}) }

// Config is haproxy's own fields of target_config. PEMPath is the one file
// holding leaf, chain and key (haproxy's `crt`); it holds a key, so its
// mode follows the key rules.
type Config struct {
	PEMPath     string       `json:"pem_path,omitempty" yaml:"pem_path,omitempty"`
	PEMFileMode *target.Mode `json:"pem_file_mode,omitempty" yaml:"pem_file_mode,omitempty"`
	PEMOwner    string       `json:"pem_owner,omitempty" yaml:"pem_owner,omitempty"`
}

// Validate checks the fields' form.
func (c *Config) Validate() error {
	if c.PEMFileMode != nil {
		if err := target.CheckMode("target_config.pem_file_mode", *c.PEMFileMode, true); err != nil {
			return err
		}
	}
	return target.CheckFields(
		target.OwnField{Field: "target_config.pem_path", Value: c.PEMPath, Check: target.CheckPath},
		target.OwnField{Field: "target_config.pem_owner", Value: c.PEMOwner, Check: target.CheckOwner},
	)
}

// Connector implements connectors.Connector for haproxy; its own fields are
// Config.
type Connector struct{ connectors.Owned[Config] }

// Files writes one file: leaf, chain (issuer first), key.
func (c Connector) Files(cfg target.Config, b *material.Bundle) ([]connectors.File, error) {
	o, err := c.Of(cfg)
	if err != nil {
		return nil, err
	}
	if o.PEMPath == "" {
		return nil, &contract.FieldError{Field: "target_config.pem_path", Msg: "is required for haproxy"}
	}
	return []connectors.File{{
		Role: "pem", Path: o.PEMPath, Bytes: CombinedPEM(b), HoldsKey: true,
		Mode: o.PEMFileMode, Owner: o.PEMOwner, DefaultMode: 0o600,
	}}, nil
}

// Destinations is pem_path, which holds the leaf.
func (c Connector) Destinations(cfg target.Config) []connectors.Destination {
	o, _ := c.Of(cfg)
	if o.PEMPath == "" {
		return nil
	}
	return []connectors.Destination{{Field: "target_config.pem_path", Path: o.PEMPath, Leaf: true}}
}

// CombinedPEM is the leaf, then the chain (issuer first), then the key, each
// block re-encoded: the file haproxy's `crt` reads.
func CombinedPEM(b *material.Bundle) []byte {
	return append(append(b.LeafPEM(), b.ChainPEM()...), b.KeyPEM()...)
}

// Check needs pem_path and refuses the separate-file fields, which haproxy
// does not read.
func (c Connector) Check(cfg target.Config) error {
	o, err := c.Of(cfg)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		field string
		set   bool
		msg   string
	}{
		{"cert_path", cfg.CertPath != "", "pem_path"}, {"chain_path", cfg.ChainPath != "", "pem_path"}, {"key_path", cfg.KeyPath != "", "pem_path"},
		{"cert_owner", cfg.CertOwner != "", "pem_path"}, {"chain_owner", cfg.ChainOwner != "", "pem_path"}, {"key_owner", cfg.KeyOwner != "", "pem_path"},
		{"cert_file_mode", cfg.CertFileMode != nil, "pem_path: set pem_file_mode"}, {"chain_file_mode", cfg.ChainFileMode != nil, "pem_path: set pem_file_mode"}, {"key_file_mode", cfg.KeyFileMode != nil, "pem_path: set pem_file_mode"},
	} {
		if f.set {
			return &contract.FieldError{Field: "target_config." + f.field, Msg: "is not used by haproxy: it reads leaf, chain and key from one file, " + f.msg}
		}
	}
	if o.PEMPath == "" {
		return &contract.FieldError{Field: "target_config.pem_path", Msg: fmt.Sprintf("is required for haproxy (the file `crt` names in %s)", DefaultConfig)}
	}
	return nil
}

// Defaults: `haproxy -c -f /etc/haproxy/haproxy.cfg`; reload by USR2 to the
// master whose pid /run/haproxy.pid holds (what Debian's unit does).
func (Connector) Defaults() connectors.Defaults {
	return connectors.Defaults{
		ValidateCommand: target.Command{"haproxy", "-c", "-f", DefaultConfig},
		ReloadSignal:    "USR2",
		PIDFile:         DefaultPIDFile,
		Owners:          []string{"haproxy"},
		Processes:       []string{"haproxy"},
	}
}

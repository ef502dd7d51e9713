// Package haproxy is the connector for HAProxy: one PEM file (pem_path)
// holding the leaf, its chain and the key, as `bind … ssl crt FILE` reads
// it, written and swapped as one file. Checked with `haproxy -c -f CONFIG`;
// reloaded without systemd by sending USR2 to the master of a master-worker
// haproxy (`haproxy -W … -p PIDFILE`), whose pid the pid file holds.
package haproxy

import (
	"fmt"

	"github.com/certctl/certctl/connectors"
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

func init() { connectors.Register(Name, Connector{}) }

// Connector implements connectors.Connector for haproxy.
type Connector struct{}

// Files writes one file: leaf, chain (issuer first), key.
func (Connector) Files(cfg target.Config, m material.Material) ([]connectors.File, error) {
	if cfg.PEMPath == "" {
		return nil, &target.FieldError{Field: "target_config.pem_path", Msg: "is required for haproxy"}
	}
	b, err := material.Parse(m)
	if err != nil {
		return nil, err
	}
	return []connectors.File{{
		Role: "pem", Path: cfg.PEMPath, Bytes: CombinedPEM(b), HoldsKey: true,
		Mode: cfg.PEMFileMode, Owner: cfg.PEMOwner, DefaultMode: 0o600,
	}}, nil
}

// CombinedPEM is the leaf, then the chain (issuer first), then the key, each
// block re-encoded: the file haproxy's `crt` reads.
func CombinedPEM(b *material.Bundle) []byte {
	return append(append(b.LeafPEM(), b.ChainPEM()...), b.KeyPEM()...)
}

// Check needs pem_path and refuses the separate-file fields, which haproxy
// does not read.
func (Connector) Check(cfg target.Config) error {
	for _, f := range []struct{ field, v string }{
		{"cert_path", cfg.CertPath}, {"chain_path", cfg.ChainPath}, {"key_path", cfg.KeyPath},
		{"cert_owner", cfg.CertOwner}, {"chain_owner", cfg.ChainOwner}, {"key_owner", cfg.KeyOwner},
	} {
		if f.v != "" {
			return &target.FieldError{Field: "target_config." + f.field, Msg: "is not used by haproxy: it reads leaf, chain and key from one file, pem_path"}
		}
	}
	for _, f := range []struct {
		field string
		m     *target.Mode
	}{{"cert_file_mode", cfg.CertFileMode}, {"chain_file_mode", cfg.ChainFileMode}, {"key_file_mode", cfg.KeyFileMode}} {
		if f.m != nil {
			return &target.FieldError{Field: "target_config." + f.field, Msg: "is not used by haproxy: set pem_file_mode"}
		}
	}
	if cfg.PEMPath == "" {
		return &target.FieldError{Field: "target_config.pem_path", Msg: fmt.Sprintf("is required for haproxy (the file `crt` names in %s)", DefaultConfig)}
	}
	return connectors.RefuseUnused(cfg, Name, connectors.FieldPEM)
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

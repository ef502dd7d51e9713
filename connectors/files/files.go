// Package files is the connector for an application that watches a
// directory for its certificate: a deploy writes the files and nothing else.
// It runs no command at all: no server check (validate says "files: no
// server check"), no reload ("files: no reload"); the application picks the
// new files up itself.
//
// The layout is the common one (cert_path, optional chain_path, key_path:
// without a chain_path the chain follows the leaf in cert_path), plus an
// optional fullchain_path, certbot's fullchain.pem: the leaf then the chain.
// With fullchain_path set, cert_path holds the leaf alone. Every file is
// staged beside its destination and renamed over it, in the order cert,
// chain, key, fullchain: the last rename is that of fullchain_path when set,
// else key_path.
//
// Nothing serves the files over the network, so a handshake cannot show what
// was deployed: the verify reads the files back (connectors.ReadBackVerifier).
// It parses the first certificate of cert_path on disk, read without
// following a link, and compares its SHA-256 with the leaf the deploy wrote
// (after a rollback, the one it replaced). post_deploy_verify.endpoint is not
// needed, and refused.
package files

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "files"

// RoleFullchain is the role of the fullchain file; errors about it name
// target_config.fullchain_path (and fullchain_owner).
const RoleFullchain = "fullchain"

// Default modes of new files: the key 0600, the certificate files 0644. No
// default owner: new files keep the worker's user (root).
const (
	CertMode = 0o644
	KeyMode  = 0o600
)

const (
	fieldPath  = "target_config.fullchain_path"
	fieldMode  = "target_config.fullchain_file_mode"
	fieldOwner = "target_config.fullchain_owner"
)

func init() { connectors.Register(Name, Connector{connectors.Owned[Config]{Name: Name}}) }

// Config is the files connector's own fields of target_config: the optional
// fullchain file (the leaf then its chain) with its mode and owner, which
// work as cert_file_mode and cert_owner do for cert_path.
type Config struct {
	FullchainPath     string       `json:"fullchain_path,omitempty" yaml:"fullchain_path,omitempty"`
	FullchainFileMode *target.Mode `json:"fullchain_file_mode,omitempty" yaml:"fullchain_file_mode,omitempty"`
	FullchainOwner    string       `json:"fullchain_owner,omitempty" yaml:"fullchain_owner,omitempty"`
}

// Validate checks the fields' form.
func (c *Config) Validate() error {
	if c.FullchainFileMode != nil {
		if err := target.CheckMode(fieldMode, *c.FullchainFileMode, false); err != nil {
			return err
		}
	}
	return target.CheckFields(
		target.OwnField{Field: fieldPath, Value: c.FullchainPath, Check: target.CheckPath},
		target.OwnField{Field: fieldOwner, Value: c.FullchainOwner, Check: target.CheckOwner},
	)
}

// Connector implements connectors.Connector for files; its own fields are
// Config.
type Connector struct{ connectors.Owned[Config] }

// Files writes cert_path (the leaf, with the chain appended when neither
// chain_path nor fullchain_path is set), chain_path when set, key_path, and
// fullchain_path when set.
func (c Connector) Files(cfg target.Config, b *material.Bundle) ([]connectors.File, error) {
	o, err := c.check(cfg)
	if err != nil {
		return nil, err
	}
	files, err := connectors.SeparateFiles(cfg, b, CertMode, CertMode, KeyMode)
	if err != nil || o.FullchainPath == "" {
		return files, err
	}
	for i := range files {
		if files[i].Role == "cert" {
			files[i].Bytes = b.LeafPEM() // the chain is in fullchain_path
		}
	}
	return append(files, connectors.File{
		Role: RoleFullchain, Path: o.FullchainPath, Bytes: append(b.LeafPEM(), b.ChainPEM()...),
		Mode: o.FullchainFileMode, Owner: o.FullchainOwner, DefaultMode: CertMode,
	}), nil
}

// Destinations are cert_path (the leaf), key_path, chain_path and
// fullchain_path, those that are set.
func (c Connector) Destinations(cfg target.Config) []connectors.Destination {
	o, _ := c.Of(cfg)
	return connectors.With(connectors.SeparateDestinations(cfg), fieldPath, o.FullchainPath)
}

// Check needs cert_path and key_path; it refuses every field that would run
// a command or probe an endpoint (a files deploy does neither), the fields
// of other connectors, and a fullchain_path that is another destination.
func (c Connector) Check(cfg target.Config) error {
	_, err := c.check(cfg)
	return err
}

func (c Connector) check(cfg target.Config) (Config, error) {
	o, err := c.Of(cfg)
	if err != nil {
		return o, err
	}
	if err := connectors.RequirePaths(cfg, Name); err != nil {
		return o, err
	}
	const noCommand = "is not used by files: a files deploy writes the files and runs no command (no server check, no reload): remove it"
	const readBack = "is not used by files: its verify reads the files back from disk and probes no endpoint: remove it"
	for _, f := range []struct {
		field string
		set   bool
		msg   string
	}{
		{"validate_command", len(cfg.ValidateCommand) > 0, noCommand},
		{"reload_command", len(cfg.ReloadCommand) > 0, noCommand},
		{"reload_signal", cfg.ReloadSignal != "", noCommand},
		{"pid_file", cfg.PIDFile != "", noCommand},
		{"command_timeout", cfg.CommandTimeout != nil, noCommand},
		{"post_deploy_verify.endpoint", cfg.PostDeployVerify.Endpoint != "", readBack},
		{"post_deploy_verify.server_name", cfg.PostDeployVerify.ServerName != "", readBack},
		{"post_deploy_verify.protocol", cfg.PostDeployVerify.Protocol != "", readBack},
	} {
		if f.set {
			return o, &contract.FieldError{Field: "target_config." + f.field, Msg: f.msg}
		}
	}
	if o.FullchainPath == "" {
		switch {
		case o.FullchainFileMode != nil:
			return o, &contract.FieldError{Field: fieldMode, Msg: "is set without fullchain_path: set fullchain_path too, or remove it"}
		case o.FullchainOwner != "":
			return o, &contract.FieldError{Field: fieldOwner, Msg: "is set without fullchain_path: set fullchain_path too, or remove it"}
		}
		return o, nil
	}
	for _, other := range []struct{ role, path string }{{"cert", cfg.CertPath}, {"chain", cfg.ChainPath}, {"key", cfg.KeyPath}} {
		if other.path == o.FullchainPath {
			return o, &contract.FieldError{Field: fieldPath, Msg: "is the same file as " + other.role + "_path: give the fullchain a file of its own"}
		}
	}
	return o, nil
}

// Defaults: no validate command, no reload, no default owner (new files keep
// the worker's user), and no process a reload signal could go to.
func (Connector) Defaults() connectors.Defaults { return connectors.Defaults{} }

// VerifiesByReadBack is true: nothing serves the files, so the verify reads
// the leaf back from cert_path (connectors.ReadBackVerifier).
func (Connector) VerifiesByReadBack() bool { return true }

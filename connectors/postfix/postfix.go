// Package postfix is the connector for mail servers, in two modes registered
// as two target types: "postfix" (smtpd_tls_cert_file, smtpd_tls_key_file;
// `postfix check`, `postfix reload`) and "dovecot" (ssl_cert, ssl_key;
// `doveconf -n`, `doveadm reload`). Both read a certificate file that holds
// the chain after the leaf, so without a chain_path the chain is appended to
// cert_path.
//
// Neither server's check notices a key that does not match the certificate,
// and neither fails its reload on one: postfix then silently stops offering
// STARTTLS, dovecot fails every handshake. The material check before anything
// is written, and a verify after every reload that speaks the server's
// protocol (post_deploy_verify.protocol, smtp-starttls by default for
// postfix), are what catch it.
//
// Both servers read the key as root before dropping privileges, so new files
// keep root as owner; the key is 0600.
package postfix

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// The target types.
const (
	Postfix = "postfix"
	Dovecot = "dovecot"
)

func init() {
	connectors.Register(Postfix, Connector{mode: Postfix})
	connectors.Register(Dovecot, Connector{mode: Dovecot})
}

// Connector implements connectors.Connector for one mode.
type Connector struct{ mode string }

// Files writes cert (with the chain appended when there is no chain_path),
// chain (when chain_path is set) and key.
func (c Connector) Files(cfg target.Config, m material.Material) ([]connectors.File, error) {
	return connectors.SeparateFiles(cfg, m, 0o644, 0o644, 0o600)
}

// Check needs cert_path and key_path.
func (c Connector) Check(cfg target.Config) error {
	if cfg.CertPath == "" {
		return &target.FieldError{Field: "target_config.cert_path", Msg: "is required for " + c.mode}
	}
	if cfg.KeyPath == "" {
		return &target.FieldError{Field: "target_config.key_path", Msg: "is required for " + c.mode}
	}
	return connectors.RefuseUnused(cfg, c.mode)
}

// Defaults are per mode.
func (c Connector) Defaults() connectors.Defaults {
	if c.mode == Dovecot {
		return connectors.Defaults{
			ValidateCommand: target.Command{"doveconf", "-n"},
			ReloadCommand:   target.Command{"doveadm", "reload"},
			Processes:       []string{"dovecot"},
			VerifyProtocol:  target.ProtocolTLS, // imaps, 993
		}
	}
	return connectors.Defaults{
		ValidateCommand: target.Command{"postfix", "check"},
		ReloadCommand:   target.Command{"postfix", "reload"},
		Processes:       []string{"master"},
		VerifyProtocol:  target.ProtocolSMTPStartTLS, // 25 and 587
	}
}

// Package postfix is the connector for mail servers, in two modes registered
// as two target types: "postfix" (smtpd_tls_cert_file, smtpd_tls_key_file;
// `postfix check`, `postfix reload`) and "dovecot" (ssl_cert, ssl_key;
// `doveconf -n`, `doveadm reload`). Both send clients only what the
// certificate file holds, so the chain always follows the leaf in cert_path
// (connectors.Separate's ChainInCert); a chain_path, if set, gets the chain
// too (for smtpd_tls_CAfile or ssl_ca), never instead.
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
	"github.com/certctl/certctl/target"
)

// The target types.
const (
	Postfix = "postfix"
	Dovecot = "dovecot"
)

// Both modes keep keys 0600 and owned by root: both servers read them as
// root. Dovecot verifies over implicit TLS (993) by default, postfix over
// SMTP STARTTLS (25, 587).
func init() {
	connectors.Register(Postfix, connectors.Separate{
		Name:        Postfix,
		KeyMode:     0o600,
		ChainInCert: true,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"postfix", "check"},
			ReloadCommand:   target.Command{"postfix", "reload"},
			Processes:       []string{"master"},
			VerifyProtocol:  target.ProtocolSMTPStartTLS,
		},
	})
	connectors.Register(Dovecot, connectors.Separate{
		Name:        Dovecot,
		KeyMode:     0o600,
		ChainInCert: true,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"doveconf", "-n"},
			ReloadCommand:   target.Command{"doveadm", "reload"},
			Processes:       []string{"dovecot"},
			VerifyProtocol:  target.ProtocolTLS,
		},
	})
}

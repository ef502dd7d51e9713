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
		Name:    Postfix,
		KeyMode: 0o600,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"postfix", "check"},
			ReloadCommand:   target.Command{"postfix", "reload"},
			Processes:       []string{"master"},
			VerifyProtocol:  target.ProtocolSMTPStartTLS,
		},
	})
	connectors.Register(Dovecot, connectors.Separate{
		Name:    Dovecot,
		KeyMode: 0o600,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"doveconf", "-n"},
			ReloadCommand:   target.Command{"doveadm", "reload"},
			Processes:       []string{"dovecot"},
			VerifyProtocol:  target.ProtocolTLS,
		},
	})
}

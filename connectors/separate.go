package connectors

import (
	"os"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Separate is a connector for a server that reads separate cert, chain and
// key files (nginx, apache, caddy's file mode, postfix, dovecot): what
// differs between them is data — the new key's mode and the defaults. It
// has no fields of its own: the target's decoders refuse every other
// connector's.
type Separate struct {
	Name string
	// KeyMode is the mode of a key file that does not exist yet; cert and
	// chain files are 0644.
	KeyMode os.FileMode
	Default Defaults
	// ChainInCert: the server sends clients only what cert_path holds
	// (nginx's ssl_certificate, postfix's smtpd_tls_cert_file, dovecot's
	// ssl_cert, caddy's tls CERT): the chain always follows the leaf there.
	// A chain_path, when the target sets one, gets the chain as well (for
	// the server's own trust settings, such as nginx's
	// ssl_trusted_certificate), never instead. Without it (apache, which
	// sends SSLCertificateChainFile), a chain_path holds the chain alone.
	ChainInCert bool
}

// Files writes cert (with the chain appended when there is no chain_path,
// or always with ChainInCert), chain (when chain_path is set) and key.
func (s Separate) Files(cfg target.Config, b *material.Bundle) ([]File, error) {
	files, err := SeparateFiles(cfg, b, 0o644, 0o644, s.KeyMode)
	if err != nil || !s.ChainInCert {
		return files, err
	}
	for i := range files {
		if files[i].Role == "cert" {
			files[i].Bytes = append(b.LeafPEM(), b.ChainPEM()...)
		}
	}
	return files, nil
}

// Destinations are cert_path, chain_path and key_path.
func (s Separate) Destinations(cfg target.Config) []Destination {
	return SeparateDestinations(cfg)
}

// Check needs cert_path and key_path, and refuses fields of other
// connectors.
func (s Separate) Check(cfg target.Config) error {
	if _, err := target.DecodeOwn[struct{}](cfg, s.Name); err != nil {
		return err
	}
	return RequirePaths(cfg, s.Name)
}

// RequirePaths needs cert_path and key_path, as a connector named name
// reads them.
func RequirePaths(cfg target.Config, name string) error {
	if cfg.CertPath == "" {
		return &contract.FieldError{Field: "target_config.cert_path", Msg: "is required for " + name}
	}
	if cfg.KeyPath == "" {
		return &contract.FieldError{Field: "target_config.key_path", Msg: "is required for " + name}
	}
	return nil
}

// Defaults are the server's commands, users and verify protocol.
func (s Separate) Defaults() Defaults { return s.Default }

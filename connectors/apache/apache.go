// Package apache is the connector for the Apache HTTP Server (Debian's
// apache2, RHEL's httpd): separate cert, chain and key files
// (SSLCertificateFile, SSLCertificateChainFile, SSLCertificateKeyFile),
// checked with `apachectl configtest` and reloaded with `apachectl graceful`.
//
// `apachectl configtest` passes a key that does not match the certificate,
// and `graceful` then stops the server. The material check every deploy runs
// before anything is written (and again on the staged files) is what keeps
// such a pair away from apache; this connector adds no check of its own.
package apache

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "apache"

// New keys are 0600: apache reads them as root before its children start.
// Without a chain_path the chain follows the leaf in cert_path, which
// apache 2.4.8+ sends. The users are RHEL's apache and Debian's www-data.
func init() {
	connectors.Register(Name, connectors.Separate{
		Name:    Name,
		KeyMode: 0o600,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"apachectl", "configtest"},
			ReloadCommand:   target.Command{"apachectl", "graceful"},
			Owners:          []string{"apache", "www-data"},
			Processes:       []string{"apache2", "httpd"},
		},
	})
}

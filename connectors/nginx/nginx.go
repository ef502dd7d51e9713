// Package nginx is the connector for nginx: cert and key files, checked with
// `nginx -t` and reloaded with `nginx -s reload`.
//
// nginx sends clients only what ssl_certificate holds: there is no directive
// for a chain file to send. So cert_path always holds the leaf followed by
// its chain; a chain_path, when the target sets one, gets the chain too, for
// ssl_trusted_certificate (OCSP stapling), never for clients.
//
// nginx's master process reads the files as root, so the key's default mode
// 0640 with the nginx (or www-data) group is for tools run as that group.
package nginx

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "nginx"

// Connector is nginx's: connectors.Separate's files, destinations, defaults
// and check, with the chain always after the leaf in cert_path
// (ChainInCert).
type Connector struct {
	connectors.Separate
}

func init() {
	connectors.Register(Name, Connector{connectors.Separate{
		Name:        Name,
		KeyMode:     0o640,
		ChainInCert: true,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"nginx", "-t"},
			ReloadCommand:   target.Command{"nginx", "-s", "reload"},
			Owners:          []string{"nginx", "www-data"},
			Processes:       []string{"nginx"},
		},
	}})
}

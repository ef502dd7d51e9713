// Package caddy is the connector for Caddy serving certificates it does not
// manage (`tls CERT KEY` in a Caddyfile): separate cert and key files, the
// chain appended to the cert unless chain_path is set. Checked with
// `caddy validate`, which loads the certificate and key (it refuses a pair
// that does not match); reloaded with `caddy reload --force` through the
// admin endpoint: without --force caddy sees an unchanged config and does
// nothing, whatever changed in the files.
//
// Both files are renamed into place before the reload, so caddy loads them
// together. Caddy's admin-API mode (certificates pushed through the API, no
// files) is not implemented.
package caddy

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "caddy"

// DefaultConfig is the Caddyfile Debian's package runs.
const DefaultConfig = "/etc/caddy/Caddyfile"

// The defaults are the packaged Caddyfile's validate and forced reload
// through the default admin endpoint (localhost:2019), and the packaged
// caddy user.
func init() {
	connectors.Register(Name, connectors.Separate{
		Name:    Name,
		KeyMode: 0o600,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"caddy", "validate", "--config", DefaultConfig, "--adapter", "caddyfile"},
			ReloadCommand:   target.Command{"caddy", "reload", "--config", DefaultConfig, "--adapter", "caddyfile", "--force"},
			Owners:          []string{"caddy"},
			Processes:       []string{"caddy"},
		},
	})
}

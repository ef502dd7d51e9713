// Package caddy is the connector for Caddy serving certificates it does not
// manage (`tls CERT KEY` in a Caddyfile): separate cert and key files, the
// chain always after the leaf in the cert file, the only one caddy sends
// (connectors.Separate's ChainInCert; a chain_path, if set, gets the chain
// too).
//
// File mode (the default): checked with `caddy validate`, which loads the
// certificate and key (it refuses a pair that does not match); reloaded with
// `caddy reload --force` through the admin endpoint: without --force caddy
// sees an unchanged config and does nothing, whatever changed in the files.
//
// Admin-API mode (target_config.caddy_admin set): the same files, but the
// reload talks HTTP to caddy's admin endpoint, as `caddy reload --force`
// does (GET /config/, then POST /load with that config and
// `Cache-Control: must-revalidate`), so the worker needs no caddy binary.
// Caddy's API has no dry-run endpoint: validate is the material check, plus
// the target's validate_command if it gives one.
//
// Both files are renamed into place before the reload, so caddy loads them
// together.
package caddy

import (
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "caddy"

// DefaultConfig is the Caddyfile Debian's package runs.
const DefaultConfig = "/etc/caddy/Caddyfile"

// Connector is caddy's: connectors.Separate for the files, with its own
// field (Config) and defaults that depend on the mode.
type Connector struct {
	connectors.Separate
	connectors.Owned[Config]
}

// The defaults are the packaged Caddyfile's validate and forced reload
// through the default admin endpoint (localhost:2019), and the packaged
// caddy user.
func init() {
	connectors.Register(Name, Connector{connectors.Separate{
		Name:        Name,
		KeyMode:     0o600,
		ChainInCert: true,
		Default: connectors.Defaults{
			ValidateCommand: target.Command{"caddy", "validate", "--config", DefaultConfig, "--adapter", "caddyfile"},
			ReloadCommand:   target.Command{"caddy", "reload", "--config", DefaultConfig, "--adapter", "caddyfile", "--force"},
			Owners:          []string{"caddy"},
			Processes:       []string{"caddy"},
		},
	}, connectors.Owned[Config]{Name: Name}})
}

// Config is caddy's own field of target_config: CaddyAdmin is caddy's
// admin endpoint ("http://127.0.0.1:2019"); when set, the connector reloads
// through it (admin-API mode) instead of running the caddy binary.
type Config struct {
	CaddyAdmin string `json:"caddy_admin,omitempty" yaml:"caddy_admin,omitempty"`
}

// Validate checks the field's form.
func (c *Config) Validate() error {
	return target.CheckFields(target.OwnField{Field: "target_config.caddy_admin", Value: c.CaddyAdmin, Check: target.CheckAdminURL})
}

// Check is Separate's, with caddy_admin allowed (and checked).
func (c Connector) Check(cfg target.Config) error {
	if _, err := c.Of(cfg); err != nil {
		return err
	}
	return connectors.RequirePaths(cfg, Name)
}

// DefaultsFor is file mode's defaults, or admin-API mode's when the target
// sets caddy_admin: no default validate command, and the reload through the
// admin endpoint.
func (c Connector) DefaultsFor(cfg target.Config) connectors.Defaults {
	d := c.Defaults()
	o, _ := c.Of(cfg)
	if o.CaddyAdmin == "" {
		return d
	}
	d.ValidateCommand, d.ReloadCommand = nil, nil
	d.ReloadHTTP = AdminReload{Admin: o.CaddyAdmin}
	return d
}

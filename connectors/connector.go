// Package connectors says what differs between kinds of target: which files a
// deploy writes, in what layout, with which defaults, and how the server is
// checked and reloaded. The steps themselves (plan, backup, stage, commit,
// rollback) are written once, in package activities.
package connectors

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// File is one destination a deploy writes.
type File struct {
	Role     string // "cert", "chain", "key", or a connector's own ("pem")
	Path     string
	Bytes    []byte
	HoldsKey bool
	// Explicit settings from target_config; nil / "" when not set.
	Mode  *target.Mode
	Owner string
	// DefaultMode applies to a file that does not exist yet.
	DefaultMode os.FileMode
}

// Defaults are a connector's settings for what a target leaves unset.
type Defaults struct {
	ValidateCommand target.Command
	ReloadCommand   target.Command
	// Owners are candidate users for new files, first present wins; the
	// group is the user's own. None present: the file keeps root.
	Owners []string

	// ReloadSignal and PIDFile, when both set, are the default reload: the
	// signal goes to the pid in the file (haproxy: USR2 to its master). A
	// target's reload_command or reload_signal replaces it.
	ReloadSignal string
	PIDFile      string
	// Processes are the executable names (as /proc/PID/comm shows them) a
	// reload signal may be sent to: a stale pid file naming another process
	// is refused, never signalled. Empty: this connector reloads by command
	// only.
	Processes []string
	// VerifyProtocol is post_deploy_verify.protocol when the target leaves
	// it empty; "" means tls.
	VerifyProtocol string

	// ReloadHTTP, when set, is the default reload: a request to the
	// server's API (caddy's admin endpoint) instead of a command. A
	// target's reload_command or reload_signal replaces it.
	ReloadHTTP HTTPReload
}

// HTTPReload is a reload through a server's HTTP API.
type HTTPReload interface {
	// String says what the reload does, for results and errors.
	String() string
	// Reload makes the server re-read its files; it returns what the
	// server answered, and an error carrying the server's message when it
	// refused.
	Reload(ctx context.Context) (string, error)
}

// TargetDefaults is implemented by a connector whose defaults depend on the
// target (caddy: admin-API mode when caddy_admin is set). The functions of
// this package that resolve a target's commands use DefaultsFor when a
// connector has it, and Defaults otherwise.
type TargetDefaults interface {
	DefaultsFor(cfg target.Config) Defaults
}

// DefaultsFor is c's defaults for the target cfg.
func DefaultsFor(c Connector, cfg target.Config) Defaults {
	if td, ok := c.(TargetDefaults); ok {
		return td.DefaultsFor(cfg)
	}
	return c.Defaults()
}

// Connector is one kind of target.
type Connector interface {
	// Files lays out the material for this target. It is called on the
	// target's host and must be a pure function of its inputs.
	Files(cfg target.Config, m material.Material) ([]File, error)
	// Check validates a target's connector-specific fields.
	Check(cfg target.Config) error
	Defaults() Defaults
}

var (
	mu       sync.RWMutex
	registry = map[string]Connector{}
)

// Register makes a connector available under name. Connector packages call it
// from init.
func Register(name string, c Connector) {
	mu.Lock()
	defer mu.Unlock()
	registry[name] = c
}

// Get returns the connector for a target_type.
func Get(name string) (Connector, error) {
	mu.RLock()
	defer mu.RUnlock()
	c, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown target_type %q (known: %v)", name, namesLocked())
	}
	return c, nil
}

// Names lists the registered connectors.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	var n []string
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ValidateCommand is the target's command, else the connector's default.
func ValidateCommand(c Connector, cfg target.Config) target.Command {
	if len(cfg.ValidateCommand) > 0 {
		return cfg.ValidateCommand
	}
	return DefaultsFor(c, cfg).ValidateCommand
}

// ReloadCommand is the target's command, else the connector's default.
func ReloadCommand(c Connector, cfg target.Config) target.Command {
	if len(cfg.ReloadCommand) > 0 {
		return cfg.ReloadCommand
	}
	return DefaultsFor(c, cfg).ReloadCommand
}

// Reload is how a target's server is told to re-read its files: a command,
// or a signal to the process whose pid a file holds, or a request to the
// server's HTTP API. None: no reload.
type Reload struct {
	Command   target.Command
	Signal    string
	PIDFile   string
	Processes []string
	HTTP      HTTPReload
}

// String says what the reload does, for results and errors.
func (r Reload) String() string {
	if r.HTTP != nil {
		return r.HTTP.String()
	}
	if r.Signal != "" {
		return "kill -" + r.Signal + " $(cat " + r.PIDFile + ")"
	}
	return r.Command.String()
}

// ReloadFor resolves a target's reload: its reload_command, else its
// reload_signal and pid_file, else the connector's default signal, else the
// connector's default HTTP reload, else the connector's default command.
func ReloadFor(c Connector, cfg target.Config) Reload {
	d := DefaultsFor(c, cfg)
	switch {
	case len(cfg.ReloadCommand) > 0:
		return Reload{Command: cfg.ReloadCommand}
	case cfg.ReloadSignal != "":
		return Reload{Signal: cfg.ReloadSignal, PIDFile: cfg.PIDFile, Processes: d.Processes}
	case d.ReloadSignal != "" && d.PIDFile != "":
		return Reload{Signal: d.ReloadSignal, PIDFile: d.PIDFile, Processes: d.Processes}
	case d.ReloadHTTP != nil:
		return Reload{HTTP: d.ReloadHTTP}
	}
	return Reload{Command: d.ReloadCommand}
}

// VerifyProtocol is the target's post_deploy_verify.protocol, else the
// connector's default, else tls.
func VerifyProtocol(c Connector, cfg target.Config) string {
	switch {
	case cfg.PostDeployVerify.Protocol != "":
		return cfg.PostDeployVerify.Protocol
	case c != nil && c.Defaults().VerifyProtocol != "":
		return c.Defaults().VerifyProtocol
	}
	return target.ProtocolTLS
}

// Fields that only some connectors read. A connector that does not read one
// refuses it, so a target never silently ignores what its operator wrote.
const (
	FieldPEM           = "pem_path"            // pem_path, pem_file_mode, pem_owner
	FieldDynamicConfig = "dynamic_config_path" // traefik
	FieldSDS           = "sds_path"            // sds_path, sds_secret_name (envoy)
	FieldCaddyAdmin    = "caddy_admin"         // caddy's admin-API mode
)

// RefuseUnused returns an error naming the first connector-specific field
// the target sets that connector name does not read (uses lists the ones it
// does).
func RefuseUnused(cfg target.Config, name string, uses ...string) error {
	used := map[string]bool{}
	for _, u := range uses {
		used[u] = true
	}
	for _, f := range []struct {
		group, field string
		set          bool
	}{
		{FieldPEM, "pem_path", cfg.PEMPath != ""},
		{FieldPEM, "pem_file_mode", cfg.PEMFileMode != nil},
		{FieldPEM, "pem_owner", cfg.PEMOwner != ""},
		{FieldDynamicConfig, "dynamic_config_path", cfg.DynamicConfigPath != ""},
		{FieldSDS, "sds_path", cfg.SDSPath != ""},
		{FieldSDS, "sds_secret_name", cfg.SDSSecretName != ""},
		{FieldCaddyAdmin, "caddy_admin", cfg.CaddyAdmin != ""},
	} {
		if f.set && !used[f.group] {
			return &target.FieldError{Field: "target_config." + f.field, Msg: "is not used by " + name}
		}
	}
	return nil
}

// WithIndexFile is SeparateFiles plus one more file, written last, that
// names the cert and key for a server that watches it (traefik's dynamic
// config, envoy's SDS file). index gets the cert path, key path and the leaf's
// SHA-256, so its bytes change with every certificate and the watcher fires.
func WithIndexFile(cfg target.Config, m material.Material, role, path string, index func(certPath, keyPath, leafSHA256 string) []byte) ([]File, error) {
	files, err := SeparateFiles(cfg, m, 0o644, 0o644, 0o600)
	if err != nil {
		return nil, err
	}
	b, err := material.Parse(m)
	if err != nil {
		return nil, err
	}
	return append(files, File{Role: role, Path: path, Bytes: index(cfg.CertPath, cfg.KeyPath, b.LeafSHA256()), DefaultMode: 0o644}), nil
}

// SeparateFiles is the common layout: the leaf in cert_path, the chain in
// chain_path, the key in key_path. Without a chain_path the chain follows the
// leaf in cert_path, so the server still sends it.
//
// Like every connector's Files, it writes only what material.Bundle's
// LeafPEM, ChainPEM and KeyPEM encode, never the operator's text: comments,
// headers and junk around the blocks stay out of live files.
func SeparateFiles(cfg target.Config, m material.Material, certMode, chainMode, keyMode os.FileMode) ([]File, error) {
	if cfg.CertPath == "" {
		return nil, &target.FieldError{Field: "target_config.cert_path", Msg: "is required"}
	}
	if cfg.KeyPath == "" {
		return nil, &target.FieldError{Field: "target_config.key_path", Msg: "is required"}
	}
	b, err := material.Parse(m)
	if err != nil {
		return nil, err
	}
	leaf, chain := b.LeafPEM(), b.ChainPEM()
	files := []File{}
	if cfg.ChainPath == "" {
		files = append(files, File{Role: "cert", Path: cfg.CertPath, Bytes: append(leaf, chain...), Mode: cfg.CertFileMode, Owner: cfg.CertOwner, DefaultMode: certMode})
	} else {
		files = append(files,
			File{Role: "cert", Path: cfg.CertPath, Bytes: leaf, Mode: cfg.CertFileMode, Owner: cfg.CertOwner, DefaultMode: certMode},
			File{Role: "chain", Path: cfg.ChainPath, Bytes: chain, Mode: cfg.ChainFileMode, Owner: cfg.ChainOwner, DefaultMode: chainMode})
	}
	files = append(files, File{Role: "key", Path: cfg.KeyPath, Bytes: b.KeyPEM(), HoldsKey: true, Mode: cfg.KeyFileMode, Owner: cfg.KeyOwner, DefaultMode: keyMode})
	seen := map[string]string{}
	for _, f := range files {
		if r, dup := seen[f.Path]; dup {
			return nil, &target.FieldError{Field: "target_config." + f.Role + "_path", Msg: fmt.Sprintf("is the same file as %s_path", r)}
		}
		seen[f.Path] = f.Role
	}
	return files, nil
}

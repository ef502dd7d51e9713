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

// Connector is one kind of target. It answers every question the pipeline
// asks about a target of its kind; the pipeline reads none of its fields.
type Connector interface {
	// Files lays out the material for this target. It is called on the
	// target's host and must be a pure function of its inputs.
	Files(cfg target.Config, b *material.Bundle) ([]File, error)
	// Destinations lists every file a deploy of cfg may write, without
	// material: a worker's policy checks them before any step runs, and
	// renewal reads the one marked Leaf.
	Destinations(cfg target.Config) []Destination
	// Check validates a target's connector-specific fields, its own
	// (target.DecodeOwn) and the common ones it requires or refuses.
	Check(cfg target.Config) error
	Defaults() Defaults
}

// ReadBackVerifier is implemented by a connector whose files are the whole
// deploy: nothing serves them over the network (an app that watches a
// directory for its certificate), so no handshake can show what was
// deployed. When VerifiesByReadBack is true, Plan and Verify read the leaf
// from the destination marked Leaf on disk, through package safefs (no link
// followed), instead of probing post_deploy_verify.endpoint, which such a
// target does not need: Register tells package target so.
type ReadBackVerifier interface {
	VerifiesByReadBack() bool
}

// VerifiesByReadBack reports whether c verifies a deploy by reading its
// files back (ReadBackVerifier).
func VerifiesByReadBack(c Connector) bool {
	rb, ok := c.(ReadBackVerifier)
	return ok && rb.VerifiesByReadBack()
}

// Owner is implemented by a connector with fields of its own in
// target_config: Own returns its typed config's zero value (a struct whose
// json and yaml tags name them). Register records it with target.RegisterOwn,
// so a target's decoders read those fields and refuse every other one.
type Owner interface {
	Own() any
}

var (
	mu       sync.RWMutex
	registry = map[string]Connector{}
)

// Register makes a connector available under name, with its own fields
// (Owner) and whether it verifies by reading back (ReadBackVerifier)
// recorded in package target. Connector packages call it from init.
func Register(name string, c Connector) {
	var own any
	if o, ok := c.(Owner); ok {
		own = o.Own()
	}
	target.RegisterOwn(name, own)
	target.RegisterReadBack(name, VerifiesByReadBack(c))
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

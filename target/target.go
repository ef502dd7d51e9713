// Package target holds the description of one deploy target: the YAML an
// operator writes (and the JSON the workflow carries), parsed strictly and
// checked before anything starts.
package target

import (
	"io"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/strictyaml"
)

// MaxFileSize bounds a target file: anything larger is a mistake, not a target.
const MaxFileSize = 64 << 10

// Target is one place a certificate lands.
type Target struct {
	TargetID   string `json:"target_id" yaml:"target_id"`
	TargetType string `json:"target_type" yaml:"target_type"`
	// Host names the worker whose queue ("certctl-host-<host>") runs the file
	// steps. Empty for agentless kinds.
	Host   string `json:"host,omitempty" yaml:"host,omitempty"`
	Config Config `json:"target_config" yaml:"target_config"`
}

// Config is target_config, with the operator reference's field names.
type Config struct {
	CertPath  string `json:"cert_path,omitempty" yaml:"cert_path,omitempty"`
	KeyPath   string `json:"key_path,omitempty" yaml:"key_path,omitempty"`
	ChainPath string `json:"chain_path,omitempty" yaml:"chain_path,omitempty"`

	ValidateCommand Command `json:"validate_command,omitempty" yaml:"validate_command,omitempty"`
	ReloadCommand   Command `json:"reload_command,omitempty" yaml:"reload_command,omitempty"`
	// CommandTimeout bounds each run of validate_command, reload_command
	// (forward and in a rollback) and an HTTP reload; nil means
	// DefaultCommandTimeout. At the timeout the command's whole process
	// group is killed.
	CommandTimeout *Duration `json:"command_timeout,omitempty" yaml:"command_timeout,omitempty"`

	CertFileMode  *Mode `json:"cert_file_mode,omitempty" yaml:"cert_file_mode,omitempty"`
	KeyFileMode   *Mode `json:"key_file_mode,omitempty" yaml:"key_file_mode,omitempty"`
	ChainFileMode *Mode `json:"chain_file_mode,omitempty" yaml:"chain_file_mode,omitempty"`

	// Owners are "user" or "user:group".
	CertOwner  string `json:"cert_owner,omitempty" yaml:"cert_owner,omitempty"`
	KeyOwner   string `json:"key_owner,omitempty" yaml:"key_owner,omitempty"`
	ChainOwner string `json:"chain_owner,omitempty" yaml:"chain_owner,omitempty"`

	PostDeployVerify           Verify   `json:"post_deploy_verify" yaml:"post_deploy_verify"`
	PostDeployVerifyAttempts   int      `json:"post_deploy_verify_attempts,omitempty" yaml:"post_deploy_verify_attempts,omitempty"`
	PostDeployVerifyBackoff    Duration `json:"post_deploy_verify_backoff,omitempty" yaml:"post_deploy_verify_backoff,omitempty"`
	PostDeployVerifyMaxBackoff Duration `json:"post_deploy_verify_max_backoff,omitempty" yaml:"post_deploy_verify_max_backoff,omitempty"`

	// BackupRetention is how many backups per file survive a successful
	// deploy. nil means the default (3).
	BackupRetention *int `json:"backup_retention,omitempty" yaml:"backup_retention,omitempty"`

	// Own holds the fields of target_config that only the target's
	// connector reads (haproxy's pem_path, traefik's dynamic_config_path,
	// envoy's sds_path, caddy's caddy_admin …): a pointer to the typed
	// config the connector registered (RegisterOwn), decoded strictly from
	// the same flat target_config object and written back into it. nil when
	// the target sets none. Decoded where no connector registered
	// target_type, it is the fields' JSON (json.RawMessage). Read it with
	// DecodeOwn. Copies of a Config share it: treat it as read-only.
	Own any `json:"-" yaml:"-"`

	// ReloadSignal and PIDFile reload a server by signalling the process
	// whose pid the file holds (haproxy's master: USR2) instead of running
	// reload_command. Given together, never with reload_command.
	ReloadSignal string `json:"reload_signal,omitempty" yaml:"reload_signal,omitempty"`
	PIDFile      string `json:"pid_file,omitempty" yaml:"pid_file,omitempty"`

	// SSH reaches the files on another machine over SSH/SFTP (an agentless
	// target: no host). See SSH.
	SSH *SSH `json:"ssh,omitempty" yaml:"ssh,omitempty"`
}

// Reload signals a target may name in reload_signal: the ones servers use to
// re-read their configuration. Anything else (TERM, KILL …) would stop one.
var ReloadSignals = []string{"HUP", "USR1", "USR2"}

// Verify protocols: how the probe reaches the TLS handshake.
const (
	ProtocolTLS          = "tls"           // TLS from the first byte (https, smtps/465, imaps/993)
	ProtocolSMTPStartTLS = "smtp-starttls" // SMTP greeting, EHLO, STARTTLS (25, 587)
	ProtocolIMAPStartTLS = "imap-starttls" // IMAP greeting, STARTTLS (143)
)

// VerifyProtocols lists the values post_deploy_verify.protocol takes.
var VerifyProtocols = []string{ProtocolTLS, ProtocolSMTPStartTLS, ProtocolIMAPStartTLS}

// Verify says where the served leaf is checked after a reload.
type Verify struct {
	// Enabled defaults to true: turning verify off must be said out loud.
	Enabled  *bool    `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	Endpoint string   `json:"endpoint,omitempty" yaml:"endpoint,omitempty"`
	Timeout  Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// ServerName is the SNI to send; defaults to the endpoint's host name.
	ServerName string `json:"server_name,omitempty" yaml:"server_name,omitempty"`
	// Protocol is how the probe reaches the handshake: "tls" (TLS at once),
	// "smtp-starttls" or "imap-starttls". Empty means the connector's
	// default (tls for most; smtp-starttls for postfix).
	Protocol string `json:"protocol,omitempty" yaml:"protocol,omitempty"`
}

// Defaults applied when a field is absent.
const (
	DefaultVerifyAttempts   = 3
	DefaultVerifyBackoff    = time.Second
	DefaultVerifyMaxBackoff = 16 * time.Second
	DefaultVerifyTimeout    = 10 * time.Second
	DefaultBackupRetention  = 3
	DefaultCommandTimeout   = time.Minute
	// MaxCommandTimeout bounds command_timeout: a reload that needs longer
	// is a server that is not reloading.
	MaxCommandTimeout = time.Hour
)

// CommandLimit is how long one command of the pipeline may run.
func (c Config) CommandLimit() time.Duration {
	if c.CommandTimeout == nil {
		return DefaultCommandTimeout
	}
	return c.CommandTimeout.D()
}

// VerifyEnabled reports whether the served leaf is checked after reload.
func (c Config) VerifyEnabled() bool {
	return c.PostDeployVerify.Enabled == nil || *c.PostDeployVerify.Enabled
}

// VerifyPolicy returns attempts, first backoff, backoff cap and per-probe timeout.
func (c Config) VerifyPolicy() (attempts int, backoff, maxBackoff, timeout time.Duration) {
	attempts, backoff, maxBackoff, timeout = c.PostDeployVerifyAttempts, c.PostDeployVerifyBackoff.D(), c.PostDeployVerifyMaxBackoff.D(), c.PostDeployVerify.Timeout.D()
	if attempts <= 0 {
		attempts = DefaultVerifyAttempts
	}
	if backoff <= 0 {
		backoff = DefaultVerifyBackoff
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultVerifyMaxBackoff
	}
	if maxBackoff < backoff {
		maxBackoff = backoff
	}
	if timeout <= 0 {
		timeout = DefaultVerifyTimeout
	}
	return
}

// Retention returns the number of backups kept per file after success.
func (c Config) Retention() int {
	if c.BackupRetention == nil {
		return DefaultBackupRetention
	}
	return *c.BackupRetention
}

// Parse reads a target file (YAML; JSON is YAML too). Unknown fields are
// refused so a typo never silently falls back to a default.
func Parse(r io.Reader) (*Target, error) {
	data, err := strictyaml.Read(r, MaxFileSize)
	if msg, ok := strictyaml.Describe(err, "target"); ok {
		return nil, fieldErr("target", "%s", msg)
	} else if err != nil {
		return nil, err
	}
	t, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

func fieldErr(field, format string, args ...any) error {
	return contract.Fieldf(field, format, args...)
}

// Package target holds the description of one deploy target: the YAML an
// operator writes (and the JSON the workflow carries), parsed strictly and
// checked before anything starts.
package target

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

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

	// PEMPath is the one file holding leaf, chain and key, for servers that
	// read them together (haproxy's `crt`). It holds a key: its mode follows
	// the key rules.
	PEMPath     string `json:"pem_path,omitempty" yaml:"pem_path,omitempty"`
	PEMFileMode *Mode  `json:"pem_file_mode,omitempty" yaml:"pem_file_mode,omitempty"`
	PEMOwner    string `json:"pem_owner,omitempty" yaml:"pem_owner,omitempty"`

	// DynamicConfigPath is the traefik file-provider file the traefik
	// connector writes: a dynamic TLS configuration naming cert_path and
	// key_path. Rewriting it is what makes traefik's watcher re-read them.
	DynamicConfigPath string `json:"dynamic_config_path,omitempty" yaml:"dynamic_config_path,omitempty"`

	// SDSPath is the file-based SDS resource file the envoy connector writes
	// (the path of a path_config_source); SDSSecretName is the name of the
	// Secret in it, as envoy's tls_certificate_sds_secret_configs names it.
	SDSPath       string `json:"sds_path,omitempty" yaml:"sds_path,omitempty"`
	SDSSecretName string `json:"sds_secret_name,omitempty" yaml:"sds_secret_name,omitempty"`

	// ReloadSignal and PIDFile reload a server by signalling the process
	// whose pid the file holds (haproxy's master: USR2) instead of running
	// reload_command. Given together, never with reload_command.
	ReloadSignal string `json:"reload_signal,omitempty" yaml:"reload_signal,omitempty"`
	PIDFile      string `json:"pid_file,omitempty" yaml:"pid_file,omitempty"`

	// CaddyAdmin is caddy's admin endpoint ("http://127.0.0.1:2019"): when
	// set, the caddy connector reloads through it (admin-API mode) instead
	// of running the caddy binary.
	CaddyAdmin string `json:"caddy_admin,omitempty" yaml:"caddy_admin,omitempty"`
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

// FieldError names the field of a target that is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads a target file (YAML; JSON is YAML too). Unknown fields are
// refused so a typo never silently falls back to a default.
func Parse(r io.Reader) (*Target, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fieldErr("target", "file is larger than %d bytes", MaxFileSize)
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

// decode reads the one YAML document strictly.
func decode(data []byte) (t Target, err error) {
	if err = strictyaml.Decode(data, &t); err == nil {
		return t, nil
	}
	if msg, ok := strictyaml.Describe(err, "target"); ok {
		return t, fieldErr("target", "%s", msg)
	}
	return t, decodeErr(data, err)
}

// decodeErr names the field a decoding error is about: the unknown field, the
// field whose value does not parse. It falls back to "target".
func decodeErr(data []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return fieldErr("target", "%v", err)
	}
	var ne *nodeError
	if errors.As(err, &ne) {
		// An anchored value may be decoded where an alias names it: no field then.
		f := fieldAt(&root, "", func(k, v *yaml.Node) bool { return v.Line == ne.line && v.Column == ne.col && v.Anchor == "" })
		if f == "" {
			return fieldErr("target", "line %d: %v", ne.line, ne.err)
		}
		return fieldErr(f, "%v", ne.err)
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// yaml.v3 says "line 5: field cert_pth not found in type target.Config"
		// or "line 7: cannot unmarshal !!str `many` into int" (long values cut
		// to 7 characters and "...").
		var line int
		var name string
		var match func(k, v *yaml.Node) bool
		msg := te.Errors[0]
		if _, err := fmt.Sscanf(msg, "line %d: field %s not found", &line, &name); err == nil {
			match = func(k, v *yaml.Node) bool { return k.Line == line && k.Value == name }
		} else if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
			if i, j := strings.Index(msg, "`"), strings.LastIndex(msg, "`"); i >= 0 && j > i {
				val := strings.TrimSuffix(msg[i+1:j], "...")
				match = func(k, v *yaml.Node) bool {
					return v.Kind == yaml.ScalarNode && v.Anchor == "" && v.Line == line && strings.HasPrefix(v.Value, val)
				}
			}
		}
		if match != nil {
			if f := fieldAt(&root, "", match); f != "" {
				return fieldErr(f, "%s", strings.Join(te.Errors, "; "))
			}
		}
	}
	return fieldErr("target", "%v", err)
}

// fieldAt returns the dotted name of the first mapping key, in document order,
// for which match holds, or "".
func fieldAt(n *yaml.Node, prefix string, match func(k, v *yaml.Node) bool) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if f := fieldAt(c, prefix, match); f != "" {
				return f
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f := k.Value
			if prefix != "" {
				f = prefix + "." + f
			}
			if match(k, v) {
				return f
			}
			if g := fieldAt(v, f, match); g != "" {
				return g
			}
		}
	}
	return ""
}

// Validate checks what can be checked without knowing the connector.
func (t *Target) Validate() error {
	if t.TargetID == "" {
		return fieldErr("target_id", "is required")
	}
	if err := t.checkPrintable(); err != nil {
		return err
	}
	if strings.ContainsAny(t.TargetID, "/\x00") || strings.TrimSpace(t.TargetID) != t.TargetID {
		return fieldErr("target_id", "must not contain '/', NUL or surrounding spaces")
	}
	if t.TargetType == "" {
		return fieldErr("target_type", "is required")
	}
	if strings.ContainsAny(t.Host, "/ \x00") {
		return fieldErr("host", "must be a plain host name")
	}
	c := &t.Config
	for _, p := range []struct{ field, path string }{
		{"target_config.cert_path", c.CertPath},
		{"target_config.key_path", c.KeyPath},
		{"target_config.chain_path", c.ChainPath},
		{"target_config.pem_path", c.PEMPath},
		{"target_config.pid_file", c.PIDFile},
		{"target_config.dynamic_config_path", c.DynamicConfigPath},
		{"target_config.sds_path", c.SDSPath},
	} {
		if p.path == "" {
			continue
		}
		if err := CheckPath(p.path); err != nil {
			return fieldErr(p.field, "%v", err)
		}
	}
	for _, m := range []struct {
		field string
		mode  *Mode
		key   bool
	}{
		{"target_config.cert_file_mode", c.CertFileMode, false},
		{"target_config.chain_file_mode", c.ChainFileMode, false},
		{"target_config.key_file_mode", c.KeyFileMode, true},
		{"target_config.pem_file_mode", c.PEMFileMode, true},
	} {
		if m.mode == nil {
			continue
		}
		if *m.mode > 0o777 {
			return fieldErr(m.field, "%#o is not a permission mode: give the permission bits only (no setuid, setgid or sticky bit), e.g. 0640", uint32(*m.mode))
		}
		if m.key && *m.mode&0o007 != 0 {
			return fieldErr(m.field, "%04o would let any user read or write the private key", uint32(*m.mode))
		}
		if *m.mode&0o022 != 0 {
			return fieldErr(m.field, "%04o lets users other than the owner write the file: drop the group and other write bits (0644 for a certificate, 0640 or 0600 for a key)", uint32(*m.mode))
		}
	}
	for _, o := range []struct{ field, v string }{
		{"target_config.cert_owner", c.CertOwner},
		{"target_config.key_owner", c.KeyOwner},
		{"target_config.chain_owner", c.ChainOwner},
		{"target_config.pem_owner", c.PEMOwner},
	} {
		if strings.ContainsAny(o.v, " \x00/") || strings.Count(o.v, ":") > 1 {
			return fieldErr(o.field, "must be \"user\" or \"user:group\"")
		}
	}
	if n := c.SDSSecretName; n != "" && (strings.TrimSpace(n) != n || strings.IndexFunc(n, unicode.IsControl) >= 0) {
		return fieldErr("target_config.sds_secret_name", "must not hold control characters or surrounding spaces")
	}
	if err := c.validateReload(); err != nil {
		return err
	}
	if c.CaddyAdmin != "" {
		if err := CheckAdminURL(c.CaddyAdmin); err != nil {
			return fieldErr("target_config.caddy_admin", "%v", err)
		}
	}
	if p := c.PostDeployVerify.Protocol; p != "" && !contains(VerifyProtocols, p) {
		return fieldErr("target_config.post_deploy_verify.protocol", "%q is not one of %s", p, strings.Join(VerifyProtocols, ", "))
	}
	if d := c.CommandTimeout; d != nil && (d.D() <= 0 || d.D() > MaxCommandTimeout) {
		return fieldErr("target_config.command_timeout", "%s: must be above 0s and at most %s (how long one validate or reload command may run; the default is %s)", d, MaxCommandTimeout, DefaultCommandTimeout)
	}
	if c.PostDeployVerifyAttempts < 0 {
		return fieldErr("target_config.post_deploy_verify_attempts", "must not be negative")
	}
	if c.BackupRetention != nil && *c.BackupRetention < 0 {
		return fieldErr("target_config.backup_retention", "must not be negative")
	}
	if c.VerifyEnabled() && c.PostDeployVerify.Endpoint == "" {
		return fieldErr("target_config.post_deploy_verify.endpoint",
			"is required while verify is enabled (set post_deploy_verify.enabled: false to deploy without checking what is served)")
	}
	return nil
}

// checkPrintable refuses a non-printing character in every field that
// names something: IDs, the host, paths, the verify endpoint and server
// name, owners and command words. A newline in a path would split the lists
// a host worker keeps; an escape would rewrite an operator's terminal.
func (t *Target) checkPrintable() error {
	c := &t.Config
	fields := []struct{ field, v string }{
		{"target_id", t.TargetID},
		{"target_type", t.TargetType},
		{"host", t.Host},
		{"target_config.cert_path", c.CertPath},
		{"target_config.key_path", c.KeyPath},
		{"target_config.chain_path", c.ChainPath},
		{"target_config.pem_path", c.PEMPath},
		{"target_config.pid_file", c.PIDFile},
		{"target_config.dynamic_config_path", c.DynamicConfigPath},
		{"target_config.sds_path", c.SDSPath},
		{"target_config.sds_secret_name", c.SDSSecretName},
		{"target_config.cert_owner", c.CertOwner},
		{"target_config.key_owner", c.KeyOwner},
		{"target_config.chain_owner", c.ChainOwner},
		{"target_config.pem_owner", c.PEMOwner},
		{"target_config.reload_signal", c.ReloadSignal},
		{"target_config.caddy_admin", c.CaddyAdmin},
		{"target_config.post_deploy_verify.endpoint", c.PostDeployVerify.Endpoint},
		{"target_config.post_deploy_verify.server_name", c.PostDeployVerify.ServerName},
		{"target_config.post_deploy_verify.protocol", c.PostDeployVerify.Protocol},
	}
	for _, cmd := range []struct {
		field string
		argv  Command
	}{{"target_config.validate_command", c.ValidateCommand}, {"target_config.reload_command", c.ReloadCommand}} {
		for i, a := range cmd.argv {
			fields = append(fields, struct{ field, v string }{fmt.Sprintf("%s[%d]", cmd.field, i), a})
		}
	}
	for _, f := range fields {
		if err := CheckPrintable(f.v); err != nil {
			return fieldErr(f.field, "%v: remove it (names, paths and commands are printable text)", err)
		}
	}
	return nil
}

var controlNames = map[rune]string{0: "NUL", '\t': "tab", '\n': "newline", '\r': "carriage return", 0x1b: "ESC", 0x7f: "DEL",
	0x200b: "zero width space", 0x202e: "right-to-left override", 0x2028: "line separator", 0x2029: "paragraph separator", 0xfeff: "byte order mark"}

// CheckPrintable refuses text holding a character that does not print:
// control characters (NUL, newline, ESC, DEL …), format characters (U+200B,
// U+202E …), line and paragraph separators, spaces other than U+0020, and
// bytes that are not UTF-8. The error quotes the text with its escapes.
func CheckPrintable(s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return fmt.Errorf("%q holds a byte that is not UTF-8 at byte %d", s, i)
			}
		}
		if r != ' ' && !unicode.IsPrint(r) {
			name := ""
			if n, ok := controlNames[r]; ok {
				name = " (" + n + ")"
			}
			return fmt.Errorf("%q holds the non-printing character %U%s at byte %d", s, r, name, i)
		}
	}
	return nil
}

// validateReload checks reload_signal and pid_file: both or neither, never
// with reload_command.
func (c *Config) validateReload() error {
	if c.ReloadSignal == "" && c.PIDFile == "" {
		return nil
	}
	if len(c.ReloadCommand) > 0 {
		f := "target_config.reload_signal"
		if c.ReloadSignal == "" {
			f = "target_config.pid_file"
		}
		return fieldErr(f, "reloads by signal: it cannot be given with reload_command (choose one)")
	}
	if c.ReloadSignal == "" {
		return fieldErr("target_config.reload_signal", "is required with pid_file (one of %s)", strings.Join(ReloadSignals, ", "))
	}
	if c.PIDFile == "" {
		return fieldErr("target_config.pid_file", "is required with reload_signal")
	}
	if !contains(ReloadSignals, c.ReloadSignal) {
		return fieldErr("target_config.reload_signal", "%q is not one of %s", c.ReloadSignal, strings.Join(ReloadSignals, ", "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// CheckAdminURL accepts an http or https URL with a host and nothing but an
// optional path: no user info, query or fragment.
func CheckAdminURL(s string) error {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("%q holds spaces or control characters", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http or https URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%q must be scheme://host[:port][/path] only", s)
	}
	return nil
}

// CheckPath refuses paths that are relative, climb with "..", or hold NUL.
func CheckPath(p string) error {
	switch {
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path contains a NUL byte")
	case !filepath.IsAbs(p):
		return fmt.Errorf("path %q is not absolute", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("path %q contains \"..\"", p)
		}
	}
	if filepath.Clean(p) != p {
		return fmt.Errorf("path %q is not clean (want %q)", p, filepath.Clean(p))
	}
	return nil
}

// Duration reads "10s"-style strings in YAML and JSON.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts "10s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration must be a string like \"10s\"")
		}
		*d = Duration(n)
		return nil
	}
	return d.set(s)
}

// MarshalYAML writes "10s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML accepts "10s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error { return at(n, d.set(n.Value)) }

func (d *Duration) set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

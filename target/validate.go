package target

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

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
		{"target_config.pid_file", c.PIDFile},
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
	} {
		if m.mode == nil {
			continue
		}
		if err := CheckMode(m.field, *m.mode, m.key); err != nil {
			return err
		}
	}
	for _, o := range []struct{ field, v string }{
		{"target_config.cert_owner", c.CertOwner},
		{"target_config.key_owner", c.KeyOwner},
		{"target_config.chain_owner", c.ChainOwner},
	} {
		if err := CheckOwner(o.v); err != nil {
			return fieldErr(o.field, "%v", err)
		}
	}
	if err := c.validateReload(); err != nil {
		return err
	}
	if err := t.validateSSH(); err != nil {
		return err
	}
	if p := c.PostDeployVerify.Protocol; p != "" && !slices.Contains(VerifyProtocols, p) {
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
	if c.VerifyEnabled() && c.PostDeployVerify.Endpoint == "" && !ReadsBack(t.TargetType) {
		return fieldErr("target_config.post_deploy_verify.endpoint",
			"is required while verify is enabled (set post_deploy_verify.enabled: false to deploy without checking what is served)")
	}
	if v, ok := c.Own.(interface{ Validate() error }); ok {
		return v.Validate()
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
		{"target_config.pid_file", c.PIDFile},
		{"target_config.cert_owner", c.CertOwner},
		{"target_config.key_owner", c.KeyOwner},
		{"target_config.chain_owner", c.ChainOwner},
		{"target_config.reload_signal", c.ReloadSignal},
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
	if !slices.Contains(ReloadSignals, c.ReloadSignal) {
		return fieldErr("target_config.reload_signal", "%q is not one of %s", c.ReloadSignal, strings.Join(ReloadSignals, ", "))
	}
	return nil
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

// CheckMode refuses a permission mode for field that holds more than the
// permission bits, lets others than the owner write, or (key: the file holds
// a private key) lets any user read the key.
func CheckMode(field string, m Mode, key bool) error {
	switch {
	case m > 0o777:
		return fieldErr(field, "%#o is not a permission mode: give the permission bits only (no setuid, setgid or sticky bit), e.g. 0640", uint32(m))
	case key && m&0o007 != 0:
		return fieldErr(field, "%04o would let any user read or write the private key", uint32(m))
	case m&0o022 != 0:
		return fieldErr(field, "%04o lets users other than the owner write the file: drop the group and other write bits (0644 for a certificate, 0640 or 0600 for a key)", uint32(m))
	}
	return nil
}

// CheckOwner refuses an owner that is not "user" or "user:group".
func CheckOwner(v string) error {
	if strings.ContainsAny(v, " \x00/") || strings.Count(v, ":") > 1 {
		return errors.New("must be \"user\" or \"user:group\"")
	}
	return nil
}

// CheckFields runs, in order, the checks of a connector's own fields: for
// each, the text must print (CheckPrintable), then its own check (nil: none).
// The checks are those of Validate: a connector's Validate calls it.
func CheckFields(fields ...OwnField) error {
	for _, f := range fields {
		if err := CheckPrintable(f.Value); err != nil {
			return fieldErr(f.Field, "%v: remove it (names, paths and commands are printable text)", err)
		}
	}
	for _, f := range fields {
		if f.Value == "" || f.Check == nil {
			continue
		}
		if err := f.Check(f.Value); err != nil {
			return fieldErr(f.Field, "%v", err)
		}
	}
	return nil
}

// OwnField is one text field of a connector's own config, for CheckFields.
type OwnField struct {
	Field string // "target_config.pem_path"
	Value string
	Check func(string) error // CheckPath, CheckAdminURL, …; nil: printable only
}

package target

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// SSH is target_config.ssh: the target's files are on another machine,
// reached over SSH/SFTP by the "certctl" queue's worker (a target with ssh
// has no host). The connector's layout is the same whatever the transport.
//
//	ssh:
//	  address: web-1.example.com:22
//	  user: deploy
//	  private_key_path: /etc/certctl/ssh/id_ed25519   # absent: ssh-agent (SSH_AUTH_SOCK)
//	  known_hosts_path: /etc/certctl/ssh/known_hosts  # or host_key: "ssh-ed25519 AAAA…"
//	  connect_timeout: 10s
type SSH struct {
	// Address is host:port.
	Address string `json:"address" yaml:"address"`
	User    string `json:"user" yaml:"user"`
	// PrivateKeyPath is a private key file on the worker's machine (never
	// in the request); empty means the ssh-agent at SSH_AUTH_SOCK.
	PrivateKeyPath string `json:"private_key_path,omitempty" yaml:"private_key_path,omitempty"`
	// KnownHostsPath is an OpenSSH known_hosts file on the worker's machine;
	// HostKey pins one key instead ("ssh-ed25519 AAAA…", authorized_keys
	// format). Exactly one of them.
	KnownHostsPath string `json:"known_hosts_path,omitempty" yaml:"known_hosts_path,omitempty"`
	HostKey        string `json:"host_key,omitempty" yaml:"host_key,omitempty"`
	// ConnectTimeout bounds the TCP connect and the SSH handshake; nil
	// means DefaultSSHConnectTimeout.
	ConnectTimeout *Duration `json:"connect_timeout,omitempty" yaml:"connect_timeout,omitempty"`
}

// DefaultSSHConnectTimeout bounds an SSH connect and handshake.
const DefaultSSHConnectTimeout = 10 * time.Second

// ConnectLimit is how long a connect and handshake may take.
func (s *SSH) ConnectLimit() time.Duration {
	if s == nil || s.ConnectTimeout == nil {
		return DefaultSSHConnectTimeout
	}
	return s.ConnectTimeout.D()
}

// Remote reports whether the target's files are reached over SSH.
func (t Target) Remote() bool { return t.Config.SSH != nil }

// validateSSH checks target_config.ssh.
func (t *Target) validateSSH() error {
	s := t.Config.SSH
	if s == nil {
		return nil
	}
	const f = "target_config.ssh"
	if t.Host != "" {
		return fieldErr("host", "%q: a target with %s is agentless (its steps run on the certctl queue's worker, which reaches the files over SSH): remove host, or remove ssh to deploy through that host's own worker", t.Host, f)
	}
	for _, v := range []struct{ field, v string }{
		{f + ".address", s.Address}, {f + ".user", s.User}, {f + ".private_key_path", s.PrivateKeyPath},
		{f + ".known_hosts_path", s.KnownHostsPath}, {f + ".host_key", s.HostKey},
	} {
		if err := CheckPrintable(v.v); err != nil {
			return fieldErr(v.field, "%v", err)
		}
	}
	host, port, err := net.SplitHostPort(s.Address)
	if err != nil || host == "" || strings.ContainsAny(host, "/ @") {
		return fieldErr(f+".address", "%q must be host:port (for example web-1.example.com:22)", s.Address)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fieldErr(f+".address", "%q: port %q is not a number from 1 to 65535", s.Address, port)
	}
	if s.User == "" || strings.ContainsAny(s.User, " @:/") {
		return fieldErr(f+".user", "is required: the remote user certctl logs in as (no spaces, '@', ':' or '/')")
	}
	if s.PrivateKeyPath != "" {
		if err := CheckPath(s.PrivateKeyPath); err != nil {
			return fieldErr(f+".private_key_path", "%v", err)
		}
	}
	switch {
	case s.KnownHostsPath == "" && s.HostKey == "":
		return fieldErr(f+".known_hosts_path", "is required (or host_key): certctl never accepts an unknown host key; get the host's key with ssh-keyscan and check it out of band")
	case s.KnownHostsPath != "" && s.HostKey != "":
		return fieldErr(f+".host_key", "is given with known_hosts_path: choose one")
	case s.KnownHostsPath != "":
		if err := CheckPath(s.KnownHostsPath); err != nil {
			return fieldErr(f+".known_hosts_path", "%v", err)
		}
	}
	if d := s.ConnectTimeout; d != nil && (d.D() <= 0 || d.D() > 5*time.Minute) {
		return fieldErr(f+".connect_timeout", "%s: must be above 0s and at most 5m (default %s)", d, DefaultSSHConnectTimeout)
	}
	if t.Config.ReloadSignal != "" {
		return fieldErr("target_config.reload_signal", "a reload by signal reads a pid file on this machine: over SSH give reload_command instead")
	}
	return nil
}

// String names the remote end for messages and keys: "user@host:port".
func (s *SSH) String() string {
	if s == nil {
		return ""
	}
	return fmt.Sprintf("%s@%s", s.User, s.Address)
}

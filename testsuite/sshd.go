package testsuite

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/certctl/certctl/target"
)

// SSHD is Debian's real OpenSSH server on loopback from a private config:
// host key, authorized_keys and pid file under its directory, internal-sftp
// with umask 077. It stands in for a host that runs no certctl worker.
type SSHD struct {
	Dir       string
	Conf      string
	Port      int
	Address   string // 127.0.0.1:Port
	HostKey   string // its host key, "ssh-ed25519 AAAA…"
	ClientKey string // a private key authorized_keys lets in as root
	// KnownHosts trusts HostKey for Address; OtherKnownHosts holds another
	// key for Address (a changed host key); UnknownHosts holds none for it.
	KnownHosts, OtherKnownHosts, UnknownHosts string
	// SFTPLog is where the SFTP server logs its operations, if it does.
	SFTPLog string
	proc    *Process
}

// SSHDBinary finds sshd or says how to get it.
func SSHDBinary() (string, error) {
	const p = "/usr/sbin/sshd" // an absolute path: sshd re-executes itself
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("sshd not found (%v): apt-get install openssh-server", err)
	}
	return p, nil
}

// StartSSHD writes keys and a config under dir, checks it (sshd -t), starts
// `sshd -D -e -f CONF` on 127.0.0.1:port and waits until it answers. Its
// SFTP subsystem is "internal-sftp -u 077", as docs/connectors/ssh.md asks.
func StartSSHD(dir string, port int) (*SSHD, error) {
	return StartSSHDWith(dir, port, "internal-sftp -u 077")
}

// SFTPServer is Debian's sftp-server binary (openssh-sftp-server, which
// openssh-server depends on): internal-sftp's code in its own process.
const SFTPServer = "/usr/lib/openssh/sftp-server"

// StartSSHDLoggingSFTP is StartSSHD with the SFTP subsystem run as
// SFTPServer with the same umask, logging every operation it serves (the
// open flags and mode, each posix-rename) to SFTPLog: internal-sftp logs
// only to syslog, which these machines do not run.
func StartSSHDLoggingSFTP(dir string, port int) (*SSHD, error) {
	log := filepath.Join(dir, "sftp.log")
	s, err := StartSSHDWith(dir, port, SFTPServer+" -u 077 -e -l INFO 2>>"+log)
	if s != nil {
		s.SFTPLog = log
	}
	return s, err
}

// SFTPOps is what the SFTP server logged (StartSSHDLoggingSFTP), one
// operation a line (its "\r\n" made "\n").
func (s *SSHD) SFTPOps() string {
	b, _ := os.ReadFile(s.SFTPLog)
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// StartSSHDWith is StartSSHD with another sftp Subsystem line.
func StartSSHDWith(dir string, port int, sftp string) (*SSHD, error) {
	bin, err := SSHDBinary()
	if err != nil {
		return nil, err
	}
	s := &SSHD{Dir: dir, Conf: filepath.Join(dir, "sshd_config"), Port: port, Address: fmt.Sprintf("127.0.0.1:%d", port)}
	keygen := func(name string) (string, error) {
		p := filepath.Join(dir, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "certctl-test", "-f", p).CombinedOutput(); err != nil {
			return "", fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
		pub, err := os.ReadFile(p + ".pub")
		if err != nil {
			return "", err
		}
		f := strings.Fields(string(pub))
		return f[0] + " " + f[1], nil
	}
	if s.HostKey, err = keygen("host_ed25519"); err != nil {
		return nil, err
	}
	other, err := keygen("other_host_ed25519")
	if err != nil {
		return nil, err
	}
	client, err := keygen("client_ed25519")
	if err != nil {
		return nil, err
	}
	s.ClientKey = filepath.Join(dir, "client_ed25519")
	host := fmt.Sprintf("[127.0.0.1]:%d", port)
	s.KnownHosts, s.OtherKnownHosts, s.UnknownHosts = filepath.Join(dir, "known_hosts"), filepath.Join(dir, "known_hosts.other"), filepath.Join(dir, "known_hosts.unknown")
	for p, text := range map[string]string{
		filepath.Join(dir, "authorized_keys"): client + "\n",
		s.KnownHosts:                          host + " " + s.HostKey + "\n",
		s.OtherKnownHosts:                     host + " " + other + "\n",
		s.UnknownHosts:                        "[127.0.0.1]:1 " + s.HostKey + "\n",
		s.Conf: fmt.Sprintf(`# written by certctl's testsuite: a private sshd on loopback
Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp %s
LogLevel VERBOSE
`, port, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys"), sftp),
	} {
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-t", "-f", s.Conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd -t: %v: %s", err, out)
	}
	// The usual umask of a daemon (022), whatever the test's: what the
	// SFTP subsystem's own -u then changes.
	if s.proc, err = StartProcess("sshd", filepath.Join(dir, "sshd.log"), nil, "/bin/sh", "-c", `umask 022 && exec "$0" "$@"`, bin, "-D", "-e", "-f", s.Conf); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", s.Address, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.proc.Exited():
			return nil, fmt.Errorf("sshd exited: %s", s.Logs())
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("sshd does not answer on %s: %s", s.Address, s.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// SSH is a target_config.ssh reaching this sshd as root with the client key
// and the right known_hosts.
func (s *SSHD) SSH() *target.SSH {
	d := target.Duration(3 * time.Second)
	return &target.SSH{Address: s.Address, User: "root", PrivateKeyPath: s.ClientKey, KnownHostsPath: s.KnownHosts, ConnectTimeout: &d}
}

// Logs is what sshd printed.
func (s *SSHD) Logs() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sshd.log"))
	return string(b)
}

// Stop stops sshd.
func (s *SSHD) Stop() {
	if s.proc != nil {
		s.proc.Stop()
	}
}

package testsuite

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/certctl/certctl/target"
)

// Dovecot is a real dovecot (`dovecot -F -c CONF`) serving IMAP with STARTTLS
// and IMAPS on loopback ports from a private config: the chain follows the
// leaf in the cert file, the key in its own file. No one can log in.
type Dovecot struct {
	server
	Conf    string
	CertDir string
	fullchainFiles
	// ImapsEndpoint is the implicit-TLS listener (993's role).
	ImapsEndpoint string
	bin, doveconf string
	doveadm       string
}

// DovecotBinaries finds dovecot, doveconf and doveadm or says how to get them.
func DovecotBinaries() (dovecot, doveconf, doveadm string, err error) {
	if dovecot, err = findBinary("dovecot", "dovecot-imapd"); err != nil {
		return
	}
	if doveconf, err = findBinary("doveconf", "dovecot-imapd"); err != nil {
		return
	}
	doveadm, err = findBinary("doveadm", "dovecot-imapd")
	return
}

// StartDovecot writes a private config under dir, installs initial, starts
// dovecot in the foreground and waits until IMAP STARTTLS serves it.
func StartDovecot(dir string, initial Set) (*Dovecot, error) {
	var doveconf, doveadm string
	bin, ports, err := binaryAndPorts(func() (dovecot string, err error) {
		dovecot, doveconf, doveadm, err = DovecotBinaries()
		return
	}, 2)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat("/usr/lib/dovecot/imap-login"); err != nil {
		return nil, fmt.Errorf("dovecot's imap-login is missing: install it with `apt-get install -y dovecot-imapd`")
	}
	imap, imaps := ports[0], ports[1]
	d := &Dovecot{server: newServer("dovecot", dir, ProtoIMAP, imap),
		ImapsEndpoint: loopback(imaps),
		Conf:          filepath.Join(dir, "dovecot.conf"), CertDir: filepath.Join(dir, "certs"),
		bin: bin, doveconf: doveconf, doveadm: doveadm}
	d.fullchainFiles = fullchainIn(d.CertDir)
	// Unix socket paths are short (108 bytes): base_dir cannot live under a
	// test's long temp dir.
	run, err := os.MkdirTemp("", "certctl-dc-")
	if err != nil {
		return nil, err
	}
	d.afterEnd = func() { _ = os.RemoveAll(run) }
	if err := os.Chmod(run, 0o755); err != nil {
		d.afterEnd()
		return nil, err
	}
	users := filepath.Join(dir, "no-users")
	files := d.Layout(initial)
	files[users] = ""
	files[d.Conf] = fmt.Sprintf(`# written by certctl's testsuite: a private dovecot on loopback
instance_name = certctl-%[1]d
base_dir = %[7]s
state_dir = %[2]s/state
log_path = %[2]s/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <%[3]s
ssl_key = <%[4]s
mail_location = mbox:%[2]s/mail
passdb {
  driver = passwd-file
  args = %[5]s
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[1]d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[6]d
    ssl = yes
  }
}
`, imap, dir, d.CertPath, d.KeyPath, users, imaps, run)
	return started(d, d.launch(serverStart{
		dirs: []string{d.CertDir}, files: files, keys: []string{d.KeyPath},
		logs:  []string{filepath.Join(dir, "dovecot.log")},
		check: d.ValidateCommand(),
		run:   []string{bin, "-F", "-c", d.Conf},
	}, initial.LeafSHA256))
}

// ValidateCommand is `doveconf -c CONF -n`.
func (d *Dovecot) ValidateCommand() target.Command {
	return target.Command{d.doveconf, "-c", d.Conf, "-n"}
}

// ReloadCommand is `doveadm -c CONF reload`.
func (d *Dovecot) ReloadCommand() target.Command {
	return target.Command{d.doveadm, "-c", d.Conf, "reload"}
}

// Target returns a dovecot target for this server's files, verified over
// IMAP STARTTLS.
func (d *Dovecot) Target(id, host string) target.Target {
	return target.Target{
		TargetID: id, TargetType: "dovecot", Host: host,
		Config: target.Config{
			CertPath: d.CertPath, KeyPath: d.KeyPath,
			ValidateCommand: d.ValidateCommand(), ReloadCommand: d.ReloadCommand(),
			PostDeployVerify: target.Verify{Endpoint: d.endpoint, Protocol: ProtoIMAP, Timeout: target.Duration(5 * time.Second)},
		},
	}
}

// BrokenCheck runs doveconf -n on a copy of the config with an unknown
// setting.
func (d *Dovecot) BrokenCheck() (target.Command, error) {
	broken, err := brokenCopy(d.Conf, "\nthis_is_not_a_setting = yes\n")
	if err != nil {
		return nil, err
	}
	return target.Command{d.doveconf, "-c", broken, "-n"}, nil
}

// ReloadScript reloads this dovecot.
func (d *Dovecot) ReloadScript() string { return d.ReloadCommand().String() }

package testsuite

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certctl/certctl/target"
)

// Postfix is a real postfix (`postfix -c DIR start-fg`) offering STARTTLS on a
// loopback port from a private config directory: the chain follows the leaf
// in the cert file (no chain_path), the key in its own file.
//
// Its daemons run as the postfix user: dir and its parents must let others
// traverse them (o+x). Without a tty its errors go only to the maillog,
// which Logs shows.
type Postfix struct {
	server
	ConfDir string
	CertDir string
	fullchainFiles
	bin string
}

// PostfixBinary finds postfix or says how to get it.
func PostfixBinary() (string, error) {
	p, err := findBinary("postfix", "postfix")
	if err != nil {
		return "", fmt.Errorf("%v (preseed it first: echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections)", err)
	}
	return p, nil
}

// StartPostfix writes main.cf and master.cf under dir, installs initial,
// starts postfix in the foreground and waits until STARTTLS serves it.
func StartPostfix(dir string, initial Set) (*Postfix, error) {
	bin, ports, err := binaryAndPorts(PostfixBinary, 1)
	if err != nil {
		return nil, err
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return nil, fmt.Errorf("no postfix user: reinstall postfix (apt-get install --reinstall postfix)")
	}
	p := &Postfix{server: newServer("postfix", dir, ProtoSMTP, ports[0]),
		ConfDir: dir, CertDir: filepath.Join(dir, "certs"), bin: bin}
	p.fullchainFiles = fullchainIn(p.CertDir)
	// The data directory is postfix's own.
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	if err := exec.Command("chown", "postfix:", data).Run(); err != nil {
		return nil, fmt.Errorf("chown postfix %s: %v", data, err)
	}
	files := p.Layout(initial)
	files[filepath.Join(dir, "main.cf")] = fmt.Sprintf(`# written by certctl's testsuite: a private postfix on loopback
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = localhost
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
smtpd_tls_security_level = may
smtpd_tls_cert_file = %[2]s
smtpd_tls_key_file = %[3]s
`, dir, p.CertPath, p.KeyPath)
	master, err := privateMasterCf(ports[0])
	if err != nil {
		return nil, err
	}
	files[filepath.Join(dir, "master.cf")] = master
	// The check is what start-fg would run again (twice); this marker skips
	// the repeat (the check leaves it alone).
	files[filepath.Join(dir, "queue", "quick-start")] = ""
	p.beforeEnd = func() { _ = exec.Command(bin, "-c", dir, "stop").Run() }
	p.afterEnd = p.killMaster
	return started(p, p.launch(serverStart{
		dirs: []string{p.CertDir, filepath.Join(dir, "queue")}, files: files, keys: []string{p.KeyPath},
		logs:  []string{filepath.Join(dir, "maillog")},
		check: p.ValidateCommand(),
		run:   []string{bin, "-c", dir, "start-fg"},
	}, initial.LeafSHA256))
}

// privateMasterCf is Debian's master.cf with every service out of chroot and
// smtpd listening on 127.0.0.1:port instead of port 25.
func privateMasterCf(port int) (string, error) {
	b, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		return "", fmt.Errorf("read Debian's master.cf: %v (reinstall postfix)", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || strings.HasPrefix(l, "#") || l[0] == ' ' || l[0] == '\t' {
			out = append(out, l)
			continue
		}
		if f[0] == "smtp" && f[1] == "inet" {
			out = append(out, fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port))
			continue
		}
		f[4] = "n" // chroot
		out = append(out, strings.Join(f, " "))
	}
	return strings.Join(out, "\n"), nil
}

// killMaster kills what `postfix stop` left: the master runs in its own
// session, so stopping the start-fg process group does not reach it.
func (p *Postfix) killMaster() {
	b, err := os.ReadFile(filepath.Join(p.dir, "queue", "pid", "master.pid"))
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "master" {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// ValidateCommand is `postfix -c DIR check`.
func (p *Postfix) ValidateCommand() target.Command {
	return target.Command{p.bin, "-c", p.ConfDir, "check"}
}

// ReloadCommand is `postfix -c DIR reload`.
func (p *Postfix) ReloadCommand() target.Command {
	return target.Command{p.bin, "-c", p.ConfDir, "reload"}
}

// Target returns a postfix target for this server's files, verified over
// SMTP STARTTLS.
func (p *Postfix) Target(id, host string) target.Target {
	return target.Target{
		TargetID: id, TargetType: "postfix", Host: host,
		Config: target.Config{
			CertPath: p.CertPath, KeyPath: p.KeyPath,
			ValidateCommand: p.ValidateCommand(), ReloadCommand: p.ReloadCommand(),
			PostDeployVerify: target.Verify{Endpoint: p.endpoint, Protocol: ProtoSMTP, Timeout: target.Duration(5 * time.Second)},
		},
	}
}

// BrokenCheck runs postfix check on a copy of the config directory whose
// main.cf holds a line that is not a parameter.
func (p *Postfix) BrokenCheck() (target.Command, error) {
	broken := filepath.Join(p.dir, "broken")
	if err := os.MkdirAll(broken, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{"main.cf", "master.cf"} {
		b, err := os.ReadFile(filepath.Join(p.ConfDir, f))
		if err != nil {
			return nil, err
		}
		if f == "main.cf" {
			b = append(b, "\nthis line is not a parameter\n"...)
		}
		if err := os.WriteFile(filepath.Join(broken, f), b, 0o644); err != nil {
			return nil, err
		}
	}
	return target.Command{p.bin, "-c", broken, "check"}, nil
}

// ReloadScript reloads this postfix.
func (p *Postfix) ReloadScript() string { return p.ReloadCommand().String() }

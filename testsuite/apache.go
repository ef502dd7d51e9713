package testsuite

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certctl/certctl/target"
)

// Apache is a real apache2 serving TLS on loopback from a private config:
// separate cert, chain and key files.
type Apache struct {
	server
	Conf                         string
	CertDir                      string
	CertPath, ChainPath, KeyPath string
	bin                          string
}

// ApacheBinary finds apache2 (or httpd) or says how to get it.
func ApacheBinary() (string, error) {
	if p, err := findBinary("apache2", "apache2"); err == nil {
		return p, nil
	}
	return findBinary("httpd", "apache2")
}

// apacheModules are the modules a TLS-only private apache needs.
var apacheModules = []struct{ name, file string }{
	{"mpm_event_module", "mod_mpm_event.so"},
	{"authz_core_module", "mod_authz_core.so"},
	{"socache_shmcb_module", "mod_socache_shmcb.so"},
	{"ssl_module", "mod_ssl.so"},
}

// StartApache writes a private config under dir, installs initial as the
// served cert, starts apache2 in the foreground and waits until it serves.
func StartApache(dir string, initial Set) (*Apache, error) {
	bin, ports, err := binaryAndPorts(ApacheBinary, 1)
	if err != nil {
		return nil, err
	}
	a := &Apache{server: newServer("apache", dir, ProtoTLS, ports[0]),
		Conf: filepath.Join(dir, "apache2.conf"), CertDir: filepath.Join(dir, "certs"), bin: bin}
	a.CertPath, a.ChainPath, a.KeyPath = filepath.Join(a.CertDir, "cert.pem"), filepath.Join(a.CertDir, "chain.pem"),
		filepath.Join(a.CertDir, "key.pem")
	var mods strings.Builder
	for _, m := range apacheModules {
		fmt.Fprintf(&mods, "LoadModule %s /usr/lib/apache2/modules/%s\n", m.name, m.file)
	}
	files := a.Layout(initial)
	files[a.Conf] = fmt.Sprintf(`# written by certctl's testsuite: a private apache2 on loopback
ServerRoot %[1]s
ServerName localhost
User nobody
Group nogroup
PidFile %[1]s/apache2.pid
DefaultRuntimeDir %[1]s
Mutex file:%[1]s default
ErrorLog %[1]s/error.log
LogLevel warn
%[2]s
StartServers 1
ServerLimit 2
ThreadsPerChild 4
MaxRequestWorkers 8
Listen 127.0.0.1:%[3]d
SSLSessionCache shmcb:%[1]s/ssl_scache(51200)
<VirtualHost 127.0.0.1:%[3]d>
    SSLEngine on
    SSLCertificateFile %[4]s
    SSLCertificateChainFile %[5]s
    SSLCertificateKeyFile %[6]s
</VirtualHost>
`, dir, mods.String(), ports[0], a.CertPath, a.ChainPath, a.KeyPath)
	return started(a, a.launch(serverStart{
		dirs: []string{a.CertDir}, files: files, keys: []string{a.KeyPath},
		logs:  []string{filepath.Join(dir, "error.log")},
		check: a.ValidateCommand(),
		run:   []string{bin, "-f", a.Conf, "-DFOREGROUND"},
	}, initial.LeafSHA256))
}

// ValidateCommand is `apache2 -f CONF -t` for this apache.
func (a *Apache) ValidateCommand() target.Command { return a.CheckCommand(a.Conf) }

// CheckCommand is `apache2 -f conf -t`: apache's own check of conf.
func (a *Apache) CheckCommand(conf string) target.Command {
	return target.Command{a.bin, "-f", conf, "-t"}
}

// ReloadCommand is `apache2 -f CONF -k graceful`.
func (a *Apache) ReloadCommand() target.Command {
	return target.Command{a.bin, "-f", a.Conf, "-k", "graceful"}
}

// Target returns an apache target for this server's files.
func (a *Apache) Target(id, host string) target.Target {
	return target.Target{
		TargetID: id, TargetType: "apache", Host: host,
		Config: target.Config{
			CertPath: a.CertPath, ChainPath: a.ChainPath, KeyPath: a.KeyPath,
			ValidateCommand: a.ValidateCommand(), ReloadCommand: a.ReloadCommand(),
			PostDeployVerify: target.Verify{Endpoint: a.endpoint, Timeout: target.Duration(5 * time.Second)},
		},
	}
}

// LiveFiles are cert, chain and key.
func (a *Apache) LiveFiles() []string { return []string{a.CertPath, a.ChainPath, a.KeyPath} }

// Layout: leaf, chain and key in their own files.
func (a *Apache) Layout(s Set) map[string]string {
	return map[string]string{a.CertPath: s.CertPEM, a.ChainPath: s.ChainPEM, a.KeyPath: s.KeyPEM}
}

// BrokenCheck runs apache2 -t on a copy of the config with an unknown
// directive.
func (a *Apache) BrokenCheck() (target.Command, error) {
	broken, err := brokenCopy(a.Conf, "\nThisIsNotADirective on\n")
	if err != nil {
		return nil, err
	}
	return a.CheckCommand(broken), nil
}

// ReloadScript reloads this apache.
func (a *Apache) ReloadScript() string { return a.ReloadCommand().String() }

// brokenCopy writes conf plus junk beside conf and returns its path.
func brokenCopy(conf, junk string) (string, error) {
	b, err := os.ReadFile(conf)
	if err != nil {
		return "", err
	}
	broken := conf + ".broken"
	return broken, os.WriteFile(broken, append(b, junk...), 0o644)
}

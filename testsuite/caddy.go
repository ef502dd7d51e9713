package testsuite

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/certctl/certctl/connectors/caddy"
	"github.com/certctl/certctl/target"
)

// Caddy is a real caddy (`caddy run`) serving a certificate it does not
// manage (`tls CERT KEY`) on loopback from a private Caddyfile, its admin
// endpoint on another loopback port and its storage under the temp dir.
type Caddy struct {
	server
	Caddyfile string
	Admin     string
	CertDir   string
	fullchainFiles
	// API: the target is in admin-API mode (caddy_admin set, no validate
	// or reload command).
	API bool
	bin string
}

// CaddyBinary finds caddy or says how to get it.
func CaddyBinary() (string, error) { return findBinary("caddy", "caddy") }

// StartCaddy writes a private Caddyfile under dir, installs initial, starts
// caddy in the foreground and waits until it serves.
func StartCaddy(dir string, initial Set) (*Caddy, error) {
	bin, ports, err := binaryAndPorts(CaddyBinary, 2)
	if err != nil {
		return nil, err
	}
	c := &Caddy{server: newServer("caddy", dir, ProtoTLS, ports[0]),
		Caddyfile: filepath.Join(dir, "Caddyfile"), Admin: loopback(ports[1]),
		CertDir: filepath.Join(dir, "certs"), bin: bin}
	c.fullchainFiles = fullchainIn(c.CertDir)
	files := c.Layout(initial)
	// The site has no host name: caddy then picks the certificate by the IP
	// a client without SNI dials (the verify endpoint 127.0.0.1:PORT), and
	// automates nothing.
	files[c.Caddyfile] = fmt.Sprintf(`# written by certctl's testsuite: a private caddy on loopback
{
	admin %[1]s
	storage file_system %[2]s/data
	skip_install_trust
	auto_https disable_redirects
}
https://:%[3]d {
	tls %[4]s %[5]s
	respond "certctl test caddy"
}
`, c.Admin, dir, ports[0], c.CertPath, c.KeyPath)
	return started(c, c.launch(serverStart{
		dirs: []string{c.CertDir}, files: files, keys: []string{c.KeyPath},
		// caddy keeps its autosaved config and data under these.
		env:   []string{"XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config")},
		check: c.ValidateCommand(),
		run: []string{bin, "run", "--config", c.Caddyfile, "--adapter", "caddyfile",
			"--pidfile", filepath.Join(dir, "caddy.pid")},
	}, initial.LeafSHA256))
}

func (c *Caddy) validateArgs(caddyfile string) []string {
	return []string{"validate", "--config", caddyfile, "--adapter", "caddyfile"}
}

// ValidateCommand is `caddy validate --config CADDYFILE --adapter caddyfile`.
func (c *Caddy) ValidateCommand() target.Command {
	return append(target.Command{c.bin}, c.validateArgs(c.Caddyfile)...)
}

// ReloadCommand is `caddy reload … --address ADMIN --force`.
func (c *Caddy) ReloadCommand() target.Command {
	return target.Command{c.bin, "reload", "--config", c.Caddyfile, "--adapter", "caddyfile", "--address", c.Admin, "--force"}
}

// StartCaddyAPI is StartCaddy for targets in admin-API mode.
func StartCaddyAPI(dir string, initial Set) (*Caddy, error) {
	c, err := StartCaddy(dir, initial)
	if c != nil {
		c.API = true
	}
	return c, err
}

// AdminURL is the admin endpoint's URL.
func (c *Caddy) AdminURL() string { return "http://" + c.Admin }

// Target returns a caddy target for this server's files: in admin-API mode
// it names the admin endpoint and leaves both commands to the connector.
func (c *Caddy) Target(id, host string) target.Target {
	if c.API {
		return target.Target{
			TargetID: id, TargetType: "caddy", Host: host,
			Config: target.Config{
				CertPath: c.CertPath, KeyPath: c.KeyPath, Own: &caddy.Config{CaddyAdmin: c.AdminURL()},
				PostDeployVerify: target.Verify{Endpoint: c.endpoint, Timeout: target.Duration(5 * time.Second)},
			},
		}
	}
	return target.Target{
		TargetID: id, TargetType: "caddy", Host: host,
		Config: target.Config{
			CertPath: c.CertPath, KeyPath: c.KeyPath,
			ValidateCommand: c.ValidateCommand(), ReloadCommand: c.ReloadCommand(),
			PostDeployVerify: target.Verify{Endpoint: c.endpoint, Timeout: target.Duration(5 * time.Second)},
		},
	}
}

// BrokenCheck runs caddy validate on a copy of the Caddyfile with an unknown
// directive.
func (c *Caddy) BrokenCheck() (target.Command, error) {
	broken, err := brokenCopy(c.Caddyfile, "\n:1 {\n\tthis_is_not_a_directive\n}\n")
	if err != nil {
		return nil, err
	}
	return append(target.Command{c.bin}, c.validateArgs(broken)...), nil
}

// ReloadScript reloads this caddy.
func (c *Caddy) ReloadScript() string { return c.ReloadCommand().String() }

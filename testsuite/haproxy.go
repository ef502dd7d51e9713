package testsuite

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/target"
)

// HAProxy is a real master-worker haproxy terminating TLS on loopback from a
// private config: one PEM holding leaf, chain and key.
type HAProxy struct {
	server
	Conf    string
	CertDir string
	PEMPath string
	PIDFile string
	bin     string
}

// HAProxyBinary finds haproxy or says how to get it.
func HAProxyBinary() (string, error) { return findBinary("haproxy", "haproxy") }

// StartHAProxy writes a private config under dir, installs initial as the
// served PEM, starts `haproxy -W -f CONF -p PIDFILE` in the foreground and
// waits until it serves.
func StartHAProxy(dir string, initial Set) (*HAProxy, error) {
	bin, ports, err := binaryAndPorts(HAProxyBinary, 1)
	if err != nil {
		return nil, err
	}
	h := &HAProxy{server: newServer("haproxy", dir, ProtoTLS, ports[0]),
		Conf: filepath.Join(dir, "haproxy.cfg"), CertDir: filepath.Join(dir, "certs"),
		PIDFile: filepath.Join(dir, "haproxy.pid"), bin: bin}
	h.PEMPath = filepath.Join(h.CertDir, "site.pem")
	files := h.Layout(initial)
	files[h.Conf] = fmt.Sprintf(`# written by certctl's testsuite: a private haproxy on loopback
global
    log stderr format raw local0 notice
    maxconn 64
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:%d ssl crt %s
    http-request return status 200 content-type text/plain string "certctl test haproxy"
`, ports[0], h.PEMPath)
	return started(h, h.launch(serverStart{
		dirs: []string{h.CertDir}, files: files, keys: []string{h.PEMPath},
		check: h.ValidateCommand(),
		run:   []string{bin, "-W", "-f", h.Conf, "-p", h.PIDFile},
	}, initial.LeafSHA256))
}

// ValidateCommand is `haproxy -c -f CONF`.
func (h *HAProxy) ValidateCommand() target.Command {
	return target.Command{h.bin, "-c", "-f", h.Conf}
}

// Target returns a haproxy target for this server's PEM, reloaded by USR2 to
// the master's pid.
func (h *HAProxy) Target(id, host string) target.Target {
	return target.Target{
		TargetID: id, TargetType: "haproxy", Host: host,
		Config: target.Config{
			Own:             &haproxy.Config{PEMPath: h.PEMPath},
			ValidateCommand: h.ValidateCommand(),
			ReloadSignal:    "USR2", PIDFile: h.PIDFile,
			PostDeployVerify: target.Verify{Endpoint: h.endpoint, Timeout: target.Duration(5 * time.Second)},
		},
	}
}

// LiveFiles is the one PEM.
func (h *HAProxy) LiveFiles() []string { return []string{h.PEMPath} }

// Layout: leaf, chain, key in one file.
func (h *HAProxy) Layout(s Set) map[string]string {
	return map[string]string{h.PEMPath: s.CertPEM + s.ChainPEM + s.KeyPEM}
}

// BrokenCheck runs haproxy -c on a copy of the config with an unknown keyword.
func (h *HAProxy) BrokenCheck() (target.Command, error) {
	broken, err := brokenCopy(h.Conf, "    this-is-not-a-keyword on\n")
	if err != nil {
		return nil, err
	}
	return target.Command{h.bin, "-c", "-f", broken}, nil
}

// ReloadScript signals the master as the connector does.
func (h *HAProxy) ReloadScript() string { return "kill -USR2 $(cat " + h.PIDFile + ")" }

package testsuite

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/certctl/certctl/connectors/traefik"
	"github.com/certctl/certctl/target"
)

// TraefikVersion is the traefik the tests run: the Makefile's
// TRAEFIK_VERSION, built by `make traefik` into the tool cache.
const TraefikVersion = "v3.6.12"

// TraefikBinary finds traefik: $CERTCTL_TRAEFIK_BIN, else the tool cache for
// TraefikVersion. It never builds: traefik has no Debian package and `go
// install` refuses it, so `make traefik` builds it once (about 11 minutes).
func TraefikBinary() (string, error) {
	if p := os.Getenv("CERTCTL_TRAEFIK_BIN"); p != "" {
		return p, nil
	}
	cached := filepath.Join(ToolCache(), "traefik-"+TraefikVersion, "traefik")
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	return "", fmt.Errorf("traefik %s not found at %s: run `make traefik` (it builds traefik from the Go module proxy "+
		"in a wrapper module into that directory, about 11 minutes once), or set CERTCTL_TRAEFIK_BIN", TraefikVersion, cached)
}

// Traefik is a real traefik serving on a loopback entrypoint from its file
// provider, which watches one directory (DynamicDir): the dynamic TLS
// configuration the traefik connector writes and the test's own router file.
// The certificate and key are in another (CertDir), which traefik does not
// watch: rewriting them alone changes nothing it serves. It has no check
// and no reload command.
type Traefik struct {
	server
	StaticConfig        string
	CertDir, DynamicDir string
	fullchainFiles
	Dynamic string
	bin     string
}

// StartTraefik writes a private static config under dir, installs initial
// in the connector's layout, starts traefik in the foreground and waits
// until it serves.
func StartTraefik(dir string, initial Set) (*Traefik, error) {
	bin, ports, err := binaryAndPorts(TraefikBinary, 1)
	if err != nil {
		return nil, err
	}
	t := &Traefik{server: newServer("traefik", dir, ProtoTLS, ports[0]),
		StaticConfig: filepath.Join(dir, "traefik.yml"), bin: bin,
		CertDir: filepath.Join(dir, "certs"), DynamicDir: filepath.Join(dir, "dynamic")}
	t.fullchainFiles = fullchainIn(t.CertDir)
	t.Dynamic = filepath.Join(t.DynamicDir, "certctl-tls.yml")
	files := t.Layout(initial)
	// A TLS router on the entrypoint makes traefik terminate TLS there; its
	// backend is never reached (the tests only handshake).
	files[filepath.Join(t.DynamicDir, "router.yml")] = `# written by certctl's testsuite: the router the served certificate fronts
http:
  routers:
    certctl-test:
      entryPoints: [websecure]
      rule: "PathPrefix(` + "`/`" + `)"
      service: certctl-test
      tls: {}
  services:
    certctl-test:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:9"
`
	files[t.StaticConfig] = fmt.Sprintf(`# written by certctl's testsuite: a private traefik on loopback
global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: DEBUG
entryPoints:
  websecure:
    address: "127.0.0.1:%d"
providers:
  file:
    directory: %q
    watch: true
`, ports[0], t.DynamicDir)
	// traefik has no check of its own.
	return started(t, t.launch(serverStart{
		dirs: []string{t.CertDir, t.DynamicDir}, files: files, keys: []string{t.KeyPath},
		run: []string{bin, "--configFile=" + t.StaticConfig},
	}, initial.LeafSHA256))
}

// Target returns a traefik target for this server's files. Traefik applies
// a change a moment after its file provider sees it (its providers throttle
// is 2s by default): the verify gets five attempts.
func (t *Traefik) Target(id, host string) target.Target {
	return target.Target{
		TargetID: id, TargetType: traefik.Name, Host: host,
		Config: target.Config{
			CertPath: t.CertPath, KeyPath: t.KeyPath, Own: &traefik.Config{DynamicConfigPath: t.Dynamic},
			PostDeployVerify:         target.Verify{Endpoint: t.endpoint, Timeout: target.Duration(5 * time.Second)},
			PostDeployVerifyAttempts: 5,
		},
	}
}

// LiveFiles are cert (with chain), key and the dynamic configuration.
func (t *Traefik) LiveFiles() []string { return append(t.fullchainFiles.LiveFiles(), t.Dynamic) }

// Layout: the chain after the leaf in the cert file, and the connector's
// dynamic configuration naming the leaf.
func (t *Traefik) Layout(s Set) map[string]string {
	m := t.fullchainFiles.Layout(s)
	m[t.Dynamic] = string(traefik.DynamicConfig(t.CertPath, t.KeyPath, s.LeafSHA256))
	return m
}

// BrokenCheck: traefik has no check command of its own. What an operator
// may give as validate_command instead is played by a script that fails.
func (t *Traefik) BrokenCheck() (target.Command, error) {
	p := filepath.Join(t.dir, "broken-check.sh")
	body := "#!/bin/sh\necho 'operator check for traefik: refused (test)' >&2\nexit 1\n"
	return target.Command{p}, os.WriteFile(p, []byte(body), 0o755)
}

// ReloadScript sends SIGHUP, on which traefik's file provider re-reads its
// directory (a reload traefik does not need after a deploy: the watcher has
// already seen the files).
func (t *Traefik) ReloadScript() string {
	return fmt.Sprintf("kill -HUP %d", t.proc.Pid())
}

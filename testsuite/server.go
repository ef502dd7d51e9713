package testsuite

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// RealServer is a real server started by the tests as a foreground child on
// loopback, with a private config under a temp dir, serving a certificate
// certctl deploys: what the connector conformance suite drives.
type RealServer interface {
	// Kind is the target_type of its connector.
	Kind() string
	// Target is a target for the server's live files, on host, with verify
	// pointed at the server.
	Target(id, host string) target.Target
	// LiveFiles are the files a deploy writes, in the target's layout.
	LiveFiles() []string
	// Layout is what each live file holds once s is deployed.
	Layout(s Set) map[string]string
	// BrokenCheck is the server's own check run against a copy of its config
	// with an error in it: the check fails whatever the certificate.
	BrokenCheck() (target.Command, error)
	// ReloadScript is a shell line that reloads the server for real.
	ReloadScript() string
	// Served returns the certificates the server sends now, leaf first.
	Served(ctx context.Context) ([]*x509.Certificate, error)
	// WaitServing polls until the server serves the leaf with fingerprint want.
	WaitServing(ctx context.Context, want string) error
	// Running reports whether the server is still up.
	Running() bool
	// Endpoint and Protocol are where and how the server is probed.
	Endpoint() string
	Protocol() string
	// Logs returns the tail of the server's own logs.
	Logs() string
	Stop()
}

// server is what every RealServer shares: its process, where it listens,
// and how it is probed.
type server struct {
	kind      string
	dir       string
	endpoint  string
	protocol  string
	proc      *Process
	logs      []string
	beforeEnd func() // a server that leaves its process group (postfix) is stopped here
	afterEnd  func()
}

func (s *server) Kind() string     { return s.kind }
func (s *server) Endpoint() string { return s.endpoint }
func (s *server) Protocol() string { return s.protocol }

// start runs bin as the server's foreground process, logging to DIR/NAME.out.
func (s *server) start(env []string, bin string, args ...string) error {
	out := filepath.Join(s.dir, s.kind+".out")
	s.logs = append(s.logs, out)
	p, err := StartProcess(s.kind, out, env, bin, args...)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// waitFirst waits until the server serves want, or says why not.
func (s *server) waitFirst(want string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.WaitServing(ctx, want); err != nil {
		s.Stop()
		return fmt.Errorf("%s did not start serving: %v\n%s", s.kind, err, s.Logs())
	}
	return nil
}

// Served returns the certificates the server sends.
func (s *server) Served(ctx context.Context) ([]*x509.Certificate, error) {
	return ServedChain(ctx, s.endpoint, s.protocol)
}

// WaitServing polls until the leaf served has fingerprint want.
func (s *server) WaitServing(ctx context.Context, want string) error {
	var last string
	var lastErr error
	for {
		if !s.Running() {
			return fmt.Errorf("%s exited", s.kind)
		}
		var certs []*x509.Certificate
		certs, lastErr = s.Served(ctx)
		if lastErr == nil {
			last = material.Fingerprint(certs[0].Raw)
			if last == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serving %q (err %v), want %s", last, lastErr, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Running reports whether the server's foreground process is still up.
func (s *server) Running() bool {
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.Exited():
		return false
	default:
		return true
	}
}

// Stop ends the server: its own stop first where it has one, then its
// process group, by pid.
func (s *server) Stop() {
	if s.beforeEnd != nil {
		s.beforeEnd()
	}
	if s.proc != nil {
		s.proc.Stop()
	}
	if s.afterEnd != nil {
		s.afterEnd()
	}
}

// Logs returns the tail of each log file.
func (s *server) Logs() string {
	var b strings.Builder
	for _, l := range s.logs {
		data, _ := os.ReadFile(l)
		text := string(data)
		if len(text) > 3000 {
			text = text[len(text)-3000:]
		}
		fmt.Fprintf(&b, "---- %s\n%s\n", l, text)
	}
	return b.String()
}

// findBinary looks for a server's binary on PATH and in the sbin
// directories, or says which Debian package has it.
func findBinary(name, pkg string) (string, error) {
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s not found: install it with `apt-get install -y %s` (make apt-deps does)", name, pkg)
}

// writeFiles writes path → content, keys (by name) 0600 and the rest 0644.
func writeFiles(files map[string]string, keys ...string) error {
	for p, v := range files {
		mode := os.FileMode(0o644)
		for _, k := range keys {
			if k == p {
				mode = 0o600
			}
		}
		if err := os.WriteFile(p, []byte(v), mode); err != nil {
			return err
		}
	}
	return nil
}

// Verify protocols, as post_deploy_verify.protocol names them.
const (
	ProtoTLS  = target.ProtocolTLS
	ProtoSMTP = target.ProtocolSMTPStartTLS
	ProtoIMAP = target.ProtocolIMAPStartTLS
)

// ServedChain connects to endpoint, speaks protocol up to the TLS handshake
// and returns the certificates the server sends, leaf first. It is the
// tests' own client, written apart from the product's probe.
func ServedChain(ctx context.Context, endpoint, protocol string) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	r := bufio.NewReader(c)
	// expect reads lines until one starts with done; an error line fails.
	expect := func(done string, fail ...string) error {
		for i := 0; i < 50; i++ {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if strings.HasPrefix(l, done) {
				return nil
			}
			for _, f := range fail {
				if strings.HasPrefix(l, f) {
					return fmt.Errorf("server said %q", strings.TrimSpace(l))
				}
			}
		}
		return errors.New("too many lines")
	}
	switch protocol {
	case ProtoSMTP:
		if err = expect("220 ", "4", "5"); err == nil {
			_, _ = io.WriteString(c, "EHLO itest.invalid\r\n")
			var ehlo []string
			for {
				l, rerr := r.ReadString('\n')
				if rerr != nil {
					err = rerr
					break
				}
				ehlo = append(ehlo, strings.TrimSpace(l))
				if strings.HasPrefix(l, "250 ") || !strings.HasPrefix(l, "250") {
					break
				}
			}
			if err == nil && !strings.Contains(strings.Join(ehlo, "\n"), "STARTTLS") {
				err = fmt.Errorf("no STARTTLS in %q", ehlo)
			}
			if err == nil {
				_, _ = io.WriteString(c, "STARTTLS\r\n")
				err = expect("220 ", "4", "5")
			}
		}
	case ProtoIMAP:
		if err = expect("* OK"); err == nil {
			_, _ = io.WriteString(c, "t1 STARTTLS\r\n")
			err = expect("t1 OK", "t1 ")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", protocol, err)
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // fingerprints only
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	return certs, nil
}

// FakeServer serves s on a loopback port, speaking protocol before the
// handshake the way a real server does: a stand-in for "the endpoint serves
// another leaf". It stops when ctx ends.
func FakeServer(ctx context.Context, s Set, protocol string) (string, error) {
	pair, err := tls.X509KeyPair([]byte(s.CertPEM+s.ChainPEM), []byte(s.KeyPEM))
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				switch protocol {
				case ProtoSMTP:
					_, _ = io.WriteString(c, "220 fake.test ESMTP\r\n")
					for {
						l, err := r.ReadString('\n')
						if err != nil {
							return
						}
						cmd := strings.ToUpper(strings.TrimSpace(l))
						if strings.HasPrefix(cmd, "EHLO") {
							_, _ = io.WriteString(c, "250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
							continue
						}
						if cmd == "STARTTLS" {
							_, _ = io.WriteString(c, "220 2.0.0 Ready to start TLS\r\n")
							break
						}
						_, _ = io.WriteString(c, "502 5.5.2 Error: command not recognized\r\n")
					}
				case ProtoIMAP:
					_, _ = io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 STARTTLS] fake ready.\r\n")
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, _, _ := strings.Cut(l, " ")
					_, _ = io.WriteString(c, tag+" OK Begin TLS negotiation now.\r\n")
				}
				_ = tls.Server(c, cfg).Handshake()
			}()
		}
	}()
	return ln.Addr().String(), nil
}

// fullchainFiles are the two files of servers that read the chain after the
// leaf in the cert file (postfix, dovecot, caddy, traefik).
type fullchainFiles struct {
	CertPath, KeyPath string
}

func fullchainIn(dir string) fullchainFiles {
	return fullchainFiles{CertPath: filepath.Join(dir, "cert.pem"), KeyPath: filepath.Join(dir, "key.pem")}
}

// LiveFiles are cert (with chain) and key.
func (f fullchainFiles) LiveFiles() []string { return []string{f.CertPath, f.KeyPath} }

// Layout: the chain after the leaf in the cert file.
func (f fullchainFiles) Layout(s Set) map[string]string {
	return map[string]string{f.CertPath: s.CertPEM + s.ChainPEM, f.KeyPath: s.KeyPEM}
}

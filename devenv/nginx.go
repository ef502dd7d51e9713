package devenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Nginx is a real nginx serving TLS on loopback from a private prefix.
type Nginx struct {
	Dir       string // prefix: config, logs, pid
	Conf      string
	CertDir   string // cert.pem, chain.pem, key.pem
	Port      int
	Endpoint  string // 127.0.0.1:Port
	CertPath  string
	ChainPath string
	KeyPath   string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// NginxBinary finds nginx or says how to get it.
func NginxBinary() (string, error) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("nginx not found: install it with `apt-get install -y nginx` (make deps does)")
}

// StartNginx writes a private config under dir, installs initial as the
// served cert, starts nginx in the foreground and waits until it serves.
func StartNginx(dir string, initial Set) (*Nginx, error) {
	bin, err := NginxBinary()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	n := &Nginx{Dir: dir, Conf: filepath.Join(dir, "nginx.conf"), CertDir: filepath.Join(dir, "certs"), Port: port,
		Endpoint: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{})}
	if err := os.MkdirAll(n.CertDir, 0o755); err != nil {
		return nil, err
	}
	if n.CertPath, n.ChainPath, n.KeyPath, err = initial.Write(n.CertDir); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# written by certctl (devenv): a private nginx on loopback
daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen 127.0.0.1:%[2]d ssl;
        server_name localhost;
        ssl_certificate %[3]s;
        ssl_certificate_key %[4]s;
        ssl_trusted_certificate %[5]s;
        location / { return 200 "certctl test nginx\n"; }
    }
}
`, dir, port, n.CertPath, n.KeyPath, n.ChainPath)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, n.args("-t")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t on the test config: %v: %s", err, out)
	}
	log, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		return nil, err
	}
	n.cmd = exec.Command(bin, n.args()...)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = n.cmd.Wait(); log.Close(); close(n.exited) }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.WaitServing(ctx, initial.LeafSHA256); err != nil {
		n.Stop()
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("nginx did not start serving: %v\n%s", err, errLog)
	}
	return n, nil
}

func (n *Nginx) args(extra ...string) []string {
	return append([]string{"-p", n.Dir + "/", "-c", n.Conf, "-e", filepath.Join(n.Dir, "error.log")}, extra...)
}

// ValidateCommand and ReloadCommand are the argv a target uses for this
// private nginx.
func (n *Nginx) ValidateCommand() target.Command {
	return append(target.Command{"nginx"}, n.args("-t")...)
}

// ReloadCommand reloads this nginx.
func (n *Nginx) ReloadCommand() target.Command {
	return append(target.Command{"nginx"}, n.args("-s", "reload")...)
}

// Target returns a target for this nginx's files, on host (empty: agentless).
func (n *Nginx) Target(id, host string) target.Target {
	return target.Target{
		TargetID: id, TargetType: "nginx", Host: host,
		Config: target.Config{
			CertPath: n.CertPath, ChainPath: n.ChainPath, KeyPath: n.KeyPath,
			ValidateCommand: n.ValidateCommand(), ReloadCommand: n.ReloadCommand(),
			PostDeployVerify: target.Verify{Endpoint: n.Endpoint, Timeout: target.Duration(5 * time.Second)},
		},
	}
}

// Served returns the SHA-256 of the leaf nginx serves now.
func (n *Nginx) Served(ctx context.Context) (string, error) { return ServedLeaf(ctx, n.Endpoint) }

// WaitServing polls until nginx serves the leaf with fingerprint want.
func (n *Nginx) WaitServing(ctx context.Context, want string) error {
	var last string
	var lastErr error
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("nginx exited")
		default:
		}
		last, lastErr = n.Served(ctx)
		if lastErr == nil && last == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serving %q (err %v), want %s", last, lastErr, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Running reports whether the nginx master is still up.
func (n *Nginx) Running() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Stop ends nginx (its whole process group) and waits.
func (n *Nginx) Stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	stopGroup(n.cmd.Process.Pid, n.exited, syscall.SIGTERM, 5*time.Second)
}

// ServedLeaf does one TLS handshake to endpoint and fingerprints the leaf.
func ServedLeaf(ctx context.Context, endpoint string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // fingerprint only
	c, err := d.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return material.Fingerprint(c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw), nil
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

package testsuite

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/certctl/certctl/devenv"
)

// Nginx is a real nginx serving TLS on loopback from a private prefix.
type Nginx = devenv.Nginx

// NginxBinary finds nginx or says how to get it.
func NginxBinary() (string, error) { return devenv.NginxBinary() }

// StartNginx starts a private nginx under dir serving initial.
func StartNginx(dir string, initial Set) (*Nginx, error) { return devenv.StartNginx(dir, initial) }

// ServedLeaf does one TLS handshake to endpoint and fingerprints the leaf.
func ServedLeaf(ctx context.Context, endpoint string) (string, error) {
	return devenv.ServedLeaf(ctx, endpoint)
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) { return devenv.FreePort() }

// TempFiles lists leftover "<path>.certctl-tmp.*" files under dir.
func TempFiles(dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(filepath.Base(p), ".certctl-tmp.") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

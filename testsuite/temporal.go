// Package testsuite holds the integration tests' helpers: real servers on
// loopback behind one RealServer interface, the built binaries, the test
// codec and policy. What `certctl dev` shares with them (the dev server, a
// child process, a private nginx, a throwaway CA) lives in package devenv;
// the names below keep the tests' spelling.
package testsuite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/certctl/certctl/devenv"
)

// DevConfig is temporal-dev.yaml (devenv.DevConfig).
type DevConfig = devenv.DevConfig

// DevServerOptions choose where the dev server listens and keeps its data.
type DevServerOptions = devenv.DevServerOptions

// DevServer is a running `temporal server start-dev`.
type DevServer = devenv.DevServer

// LoadDevConfig reads temporal-dev.yaml strictly.
func LoadDevConfig(path string) (*DevConfig, error) { return devenv.LoadDevConfig(path) }

// ToolCache is where builds that take minutes live (devenv.ToolCache).
func ToolCache() string { return devenv.ToolCache() }

// TemporalCLI finds the temporal CLI (devenv.TemporalCLI).
func TemporalCLI(version string) (string, error) { return devenv.TemporalCLI(version) }

// StartDevServer starts the temporal CLI's dev server (devenv.StartDevServer).
func StartDevServer(ctx context.Context, o DevServerOptions) (*DevServer, error) {
	return devenv.StartDevServer(ctx, o)
}

// RepoFile finds a file of the repository from the working directory up (a
// test runs in its package's directory).
func RepoFile(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(p); err != nil {
				return "", err
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s: not inside the certctl repository", name)
		}
		dir = parent
	}
}

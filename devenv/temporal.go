package devenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"gopkg.in/yaml.v3"
)

// DevConfig is temporal-dev.yaml: the embedded default's dev server. The
// temporal CLI has no server config file, so certctl turns this into flags.
type DevConfig struct {
	// CLIVersion is the temporal CLI version built from the Go module proxy.
	CLIVersion string `yaml:"cli_version"`
	IP         string `yaml:"ip"`
	Port       int    `yaml:"port"`
	UIPort     int    `yaml:"ui_port"`
	// CodecPort is where `certctl dev` serves the codec for the Web UI.
	CodecPort        int               `yaml:"codec_port"`
	Namespace        string            `yaml:"namespace"`
	DBFilename       string            `yaml:"db_filename"`
	LogLevel         string            `yaml:"log_level"`
	SearchAttributes map[string]string `yaml:"search_attributes"`
	DynamicConfig    map[string]any    `yaml:"dynamic_config"`
}

// LoadDevConfig reads temporal-dev.yaml strictly.
func LoadDevConfig(path string) (*DevConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var c DevConfig
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.IP == "" {
		c.IP = "127.0.0.1"
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	if c.LogLevel == "" {
		c.LogLevel = "warn"
	}
	return &c, nil
}

// ToolCache is where builds that take minutes live, outside the repo, keyed
// by version: $CERTCTL_TOOLS or ~/.cache/certctl/tools.
func ToolCache() string {
	if d := os.Getenv("CERTCTL_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "certctl", "tools")
}

// TemporalCLI finds the temporal CLI: $CERTCTL_TEMPORAL_BIN, the tool cache
// for version, then PATH. It never downloads.
func TemporalCLI(version string) (string, error) {
	if p := os.Getenv("CERTCTL_TEMPORAL_BIN"); p != "" {
		return p, nil
	}
	cached := filepath.Join(ToolCache(), "temporal-"+version, "temporal")
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("temporal CLI %s not found at %s or on PATH: run `make temporal` "+
		"(go install github.com/temporalio/cli/cmd/temporal@%s into that directory, about 10 minutes)", version, cached, version)
}

// DevServerOptions choose where the server listens and keeps its data.
type DevServerOptions struct {
	Config *DevConfig
	// Port and UIPort override the config; 0 means a free port (tests).
	Port, UIPort int
	// DBFile persists history; empty keeps it in memory.
	DBFile string
	UI     bool
	// UICodecEndpoint makes the Web UI decode payloads through a codec server.
	UICodecEndpoint string
	// NoSearchAttributes starts the server without temporal-dev.yaml's
	// search attributes: a cluster `certctl setup` has not run on yet.
	NoSearchAttributes bool
	Output             io.Writer
}

// DevServer is a running `temporal server start-dev`.
type DevServer struct {
	hostPort string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// FrontendHostPort is where clients dial the server.
func (s *DevServer) FrontendHostPort() string { return s.hostPort }

// Stop interrupts the server (it shuts down cleanly on SIGINT) and waits,
// killing it after 20s.
func (s *DevServer) Stop() error {
	stopGroup(s.cmd.Process.Pid, s.exited, syscall.SIGINT, 20*time.Second)
	return nil
}

// StartDevServer starts `temporal server start-dev` from the temporal CLI
// with the search attributes of temporal-dev.yaml registered (unless
// o.NoSearchAttributes), and waits
// until it answers a client.
func StartDevServer(ctx context.Context, o DevServerOptions) (*DevServer, error) {
	cfg := o.Config
	cli, err := TemporalCLI(cfg.CLIVersion)
	if err != nil {
		return nil, err
	}
	port := o.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	args, err := devServerArgs(o, port)
	if err != nil {
		return nil, err
	}
	s := &DevServer{hostPort: net.JoinHostPort(cfg.IP, strconv.Itoa(port)), cmd: exec.Command(cli, args...), exited: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = o.Output, o.Output
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cli, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, cfg.Namespace); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// devServerArgs are the temporal CLI's flags for o: the CLI has no server
// config file.
func devServerArgs(o DevServerOptions, port int) ([]string, error) {
	cfg := o.Config
	args := []string{"server", "start-dev", "--ip", cfg.IP, "--port", strconv.Itoa(port), "--namespace", cfg.Namespace,
		"--dynamic-config-value", "frontend.enableServerVersionCheck=false", "--log-level", cfg.LogLevel}
	if o.DBFile != "" {
		args = append(args, "--db-filename", o.DBFile)
	}
	if !o.UI {
		args = append(args, "--headless")
	} else if o.UIPort != 0 {
		args = append(args, "--ui-port", strconv.Itoa(o.UIPort))
	}
	if o.UICodecEndpoint != "" {
		args = append(args, "--ui-codec-endpoint", o.UICodecEndpoint)
	}
	names := make([]string, 0, len(cfg.SearchAttributes))
	for n := range cfg.SearchAttributes {
		if !o.NoSearchAttributes {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		switch t := cfg.SearchAttributes[n]; t {
		case "Keyword", "Text", "Int", "Bool":
			args = append(args, "--search-attribute", n+"="+t)
		default:
			return nil, fmt.Errorf("temporal-dev.yaml: search attribute %s: unsupported type %q (Keyword, Text, Int or Bool)", n, t)
		}
	}
	keys := make([]string, 0, len(cfg.DynamicConfig))
	for k := range cfg.DynamicConfig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--dynamic-config-value", fmt.Sprintf("%s=%v", k, cfg.DynamicConfig[k]))
	}
	return args, nil
}

// waitReady dials the server until it answers (60s at most), or it exits.
func (s *DevServer) waitReady(ctx context.Context, namespace string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	opts := client.Options{HostPort: s.hostPort, Namespace: namespace,
		Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	for {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("the temporal dev server exited before it served %s", s.hostPort)
		case <-ctx.Done():
			return fmt.Errorf("the temporal dev server at %s did not answer: %w", s.hostPort, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

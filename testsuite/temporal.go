package testsuite

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

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	sdktestsuite "go.temporal.io/sdk/testsuite"
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
	Output          io.Writer
}

// StartDevServer starts `temporal server start-dev` from the temporal CLI
// with the search attributes of temporal-dev.yaml registered.
func StartDevServer(ctx context.Context, o DevServerOptions) (*sdktestsuite.DevServer, error) {
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
	sa, err := searchAttributes(cfg.SearchAttributes)
	if err != nil {
		return nil, err
	}
	var extra []string
	keys := make([]string, 0, len(cfg.DynamicConfig))
	for k := range cfg.DynamicConfig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		extra = append(extra, "--dynamic-config-value", fmt.Sprintf("%s=%v", k, cfg.DynamicConfig[k]))
	}
	if !o.UI {
		extra = append(extra, "--headless")
	}
	if o.UICodecEndpoint != "" {
		extra = append(extra, "--ui-codec-endpoint", o.UICodecEndpoint)
	}
	opts := sdktestsuite.DevServerOptions{
		ExistingPath: cli,
		ClientOptions: &client.Options{HostPort: net.JoinHostPort(cfg.IP, strconv.Itoa(port)), Namespace: cfg.Namespace,
			Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))},
		DBFilename:       o.DBFile,
		EnableUI:         o.UI,
		LogLevel:         cfg.LogLevel,
		SearchAttributes: sa,
		ExtraArgs:        extra,
		Stdout:           o.Output,
		Stderr:           o.Output,
	}
	if o.UI && o.UIPort != 0 {
		opts.UIPort = strconv.Itoa(o.UIPort)
	}
	return sdktestsuite.StartDevServer(ctx, opts)
}

func searchAttributes(m map[string]string) (temporal.SearchAttributes, error) {
	var updates []temporal.SearchAttributeUpdate
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch m[n] {
		case "Keyword":
			updates = append(updates, temporal.NewSearchAttributeKeyKeyword(n).ValueSet(""))
		case "Text":
			updates = append(updates, temporal.NewSearchAttributeKeyString(n).ValueSet(""))
		case "Int":
			updates = append(updates, temporal.NewSearchAttributeKeyInt64(n).ValueSet(0))
		case "Bool":
			updates = append(updates, temporal.NewSearchAttributeKeyBool(n).ValueSet(false))
		default:
			return temporal.SearchAttributes{}, fmt.Errorf("temporal-dev.yaml: search attribute %s: unsupported type %q", n, m[n])
		}
	}
	return temporal.NewSearchAttributes(updates...), nil
}

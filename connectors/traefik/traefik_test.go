package traefik_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/envoy"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/connectors/traefik"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

func issue(t *testing.T) testsuite.Set {
	t.Helper()
	ca, err := testsuite.NewCA("traefik test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func config() target.Config {
	return target.Config{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem", Own: &traefik.Config{DynamicConfigPath: "/etc/traefik/dynamic/certctl.yml"}}
}

// The dynamic configuration as traefik's file provider reads it (its v3
// dynamic TLS section: tls.certificates and tls.stores).
type certFiles struct {
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

type dynamic struct {
	TLS struct {
		Certificates []certFiles `yaml:"certificates"`
		Stores       map[string]struct {
			DefaultCertificate certFiles `yaml:"defaultCertificate"`
		} `yaml:"stores"`
	} `yaml:"tls"`
}

func TestDynamicConfig(t *testing.T) {
	b := traefik.DynamicConfig("/etc/traefik/certs/a site.pem", "/etc/traefik/certs/key: #1.pem", "ab12")
	var d dynamic
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	want := certFiles{"/etc/traefik/certs/a site.pem", "/etc/traefik/certs/key: #1.pem"}
	if len(d.TLS.Certificates) != 1 || d.TLS.Certificates[0] != want {
		t.Errorf("tls.certificates %+v", d.TLS.Certificates)
	}
	if d.TLS.Stores["default"].DefaultCertificate != want {
		t.Errorf("tls.stores.default %+v", d.TLS.Stores)
	}
	if !strings.Contains(string(b), "# leaf sha256: ab12\n") {
		t.Errorf("the file does not name the leaf:\n%s", b)
	}
}

func TestLayout(t *testing.T) {
	s, other := issue(t), issue(t)
	c, err := connectors.Get(traefik.Name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config()
	if err := c.Check(cfg); err != nil {
		t.Fatal(err)
	}
	files, err := c.Files(cfg, bundle(t, s.Material))
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		role, path string
		holdsKey   bool
		mode       os.FileMode
	}
	want := []file{{"cert", "/d/cert.pem", false, 0o644}, {"key", "/d/key.pem", true, 0o600}, {"dynamic_config", "/etc/traefik/dynamic/certctl.yml", false, 0o644}}
	if len(files) != len(want) {
		t.Fatalf("%d files, want %d", len(files), len(want))
	}
	for i, f := range files {
		if got := (file{f.Role, f.Path, f.HoldsKey, f.DefaultMode}); got != want[i] {
			t.Errorf("file %d: %v, want %v (the dynamic config comes last: its change is what traefik acts on)", i, got, want[i])
		}
	}
	if string(files[0].Bytes) != s.CertPEM+s.ChainPEM || string(files[1].Bytes) != s.KeyPEM {
		t.Error("cert must hold the leaf then the chain; key the key")
	}
	if string(files[2].Bytes) != string(traefik.DynamicConfig(cfg.CertPath, cfg.KeyPath, s.LeafSHA256)) {
		t.Error("the dynamic config is not DynamicConfig for the leaf")
	}
	again, _ := c.Files(cfg, bundle(t, other.Material))
	if bytes.Equal(again[2].Bytes, files[2].Bytes) {
		t.Error("the dynamic config's bytes do not change with the leaf: traefik would keep the old certificate")
	}
	d := c.Defaults()
	if len(d.ValidateCommand) != 0 || len(d.ReloadCommand) != 0 || d.ReloadSignal != "" {
		t.Errorf("traefik has no check or reload command: %+v", d)
	}
}

func TestChecks(t *testing.T) {
	c, _ := connectors.Get(traefik.Name)
	m := target.Mode(0o644)
	for _, tc := range []struct {
		edit  func(*target.Config)
		field string
	}{
		{func(c *target.Config) { c.CertPath = "" }, "target_config.cert_path"},
		{func(c *target.Config) { c.KeyPath = "" }, "target_config.key_path"},
		{func(c *target.Config) { c.Own = &traefik.Config{} }, "target_config.dynamic_config_path"},
		{func(c *target.Config) { c.Own = &traefik.Config{DynamicConfigPath: "/etc/traefik/dynamic/certs.toml"} }, "target_config.dynamic_config_path"},
		{func(c *target.Config) {
			c.Own = &traefik.Config{DynamicConfigPath: "/d/cert.yml"}
			c.CertPath = "/d/cert.yml"
		}, "target_config.dynamic_config_path"},
		{func(c *target.Config) { c.ChainPath = "/d/chain.pem" }, "target_config.chain_path"},
		{func(c *target.Config) { c.ChainFileMode = &m }, "target_config.chain_path"},
		{func(c *target.Config) { c.Own = &haproxy.Config{PEMPath: "/d/p.pem"} }, "target_config.pem_path"},
		{func(c *target.Config) { c.Own = &envoy.Config{SDSPath: "/d/sds.yaml"} }, "target_config.sds_path"},
	} {
		cfg := config()
		tc.edit(&cfg)
		err := c.Check(cfg)
		fe, ok := err.(*contract.FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%+v: got %v, want an error naming %s", cfg, err, tc.field)
		}
	}
	cfg := config()
	cfg.Own = &traefik.Config{DynamicConfigPath: "/etc/traefik/dynamic/certctl.YAML"}
	if err := c.Check(cfg); err != nil {
		t.Errorf(".YAML refused: %v", err)
	}
}

func TestTargetField(t *testing.T) {
	base := "target_id: t\ntarget_type: traefik\ntarget_config:\n  cert_path: /d/c.pem\n  key_path: /d/k.pem\n  post_deploy_verify: {enabled: false}\n"
	tg, err := target.Parse(strings.NewReader(base + "  dynamic_config_path: /etc/traefik/dynamic/certctl.yml\n"))
	if err != nil || tg.Config.Own.(*traefik.Config).DynamicConfigPath != "/etc/traefik/dynamic/certctl.yml" {
		t.Fatalf("%v %+v", err, tg)
	}
	for _, extra := range []string{"  dynamic_config_path: dynamic/certctl.yml\n", "  dynamic_config_path: /etc/traefik/../certctl.yml\n"} {
		_, err := target.Parse(strings.NewReader(base + extra))
		if fe, ok := err.(*contract.FieldError); !ok || fe.Field != "target_config.dynamic_config_path" {
			t.Errorf("%q: got %v", extra, err)
		}
	}
}

// bundle parses m as Files takes it.
func bundle(t *testing.T, m material.Material) *material.Bundle {
	t.Helper()
	b, err := material.Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

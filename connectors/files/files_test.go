package files_test

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/connectors"
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/connectors/files"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

func get(t *testing.T) connectors.Connector {
	t.Helper()
	c, err := connectors.Get(files.Name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// file is what the layout test expects of one file.
type file struct {
	role, path, content string
	holdsKey            bool
	mode                os.FileMode
	explicitMode        string // "" when not set
	owner               string
}

func TestLayout(t *testing.T) {
	ca, err := testsuite.NewCA("files test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	m640 := target.Mode(0o640)
	full := func(cfg target.Config) target.Config {
		cfg.Own = &files.Config{FullchainPath: "/d/fullchain.pem"}
		return cfg
	}
	joined := target.Config{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem"}
	sep := target.Config{CertPath: "/d/cert.pem", ChainPath: "/d/chain.pem", KeyPath: "/d/key.pem"}
	for _, tc := range []struct {
		name string
		cfg  target.Config
		want []file
	}{
		{"cert and key: the chain follows the leaf", joined, []file{
			{"cert", "/d/cert.pem", s.CertPEM + s.ChainPEM, false, 0o644, "", ""},
			{"key", "/d/key.pem", s.KeyPEM, true, 0o600, "", ""}}},
		{"cert, chain and key", sep, []file{
			{"cert", "/d/cert.pem", s.CertPEM, false, 0o644, "", ""},
			{"chain", "/d/chain.pem", s.ChainPEM, false, 0o644, "", ""},
			{"key", "/d/key.pem", s.KeyPEM, true, 0o600, "", ""}}},
		{"fullchain: cert holds the leaf alone", full(joined), []file{
			{"cert", "/d/cert.pem", s.CertPEM, false, 0o644, "", ""},
			{"key", "/d/key.pem", s.KeyPEM, true, 0o600, "", ""},
			{"fullchain", "/d/fullchain.pem", s.CertPEM + s.ChainPEM, false, 0o644, "", ""}}},
		{"certbot's four files", full(sep), []file{
			{"cert", "/d/cert.pem", s.CertPEM, false, 0o644, "", ""},
			{"chain", "/d/chain.pem", s.ChainPEM, false, 0o644, "", ""},
			{"key", "/d/key.pem", s.KeyPEM, true, 0o600, "", ""},
			{"fullchain", "/d/fullchain.pem", s.CertPEM + s.ChainPEM, false, 0o644, "", ""}}},
		{"explicit modes and owners", target.Config{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem", KeyFileMode: &m640, KeyOwner: "root:app",
			Own: &files.Config{FullchainPath: "/d/fullchain.pem", FullchainFileMode: &m640, FullchainOwner: "app"}}, []file{
			{"cert", "/d/cert.pem", s.CertPEM, false, 0o644, "", ""},
			{"key", "/d/key.pem", s.KeyPEM, true, 0o600, "0640", "root:app"},
			{"fullchain", "/d/fullchain.pem", s.CertPEM + s.ChainPEM, false, 0o644, "0640", "app"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := get(t)
			if err := c.Check(tc.cfg); err != nil {
				t.Fatalf("Check: %v", err)
			}
			fs, err := c.Files(tc.cfg, b)
			if err != nil {
				t.Fatal(err)
			}
			var got []file
			for _, f := range fs {
				mode := ""
				if f.Mode != nil {
					mode = f.Mode.String()
				}
				got = append(got, file{f.Role, f.Path, string(f.Bytes), f.HoldsKey, f.DefaultMode, mode, f.Owner})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("\n got  %+v\n want %+v", got, tc.want)
			}
			// Every file is a destination; the leaf is cert_path's.
			var paths []string
			for _, d := range c.Destinations(tc.cfg) {
				paths = append(paths, d.Path)
				if d.Leaf != (d.Field == "target_config.cert_path") {
					t.Errorf("destination %+v: only cert_path holds the leaf renewal and verify read", d)
				}
			}
			for _, f := range got {
				if !strings.Contains(strings.Join(paths, " "), f.path) {
					t.Errorf("%s is written but not a destination (%v)", f.path, paths)
				}
			}
			if len(paths) != len(got) {
				t.Errorf("destinations %v, files %d", paths, len(got))
			}
		})
	}
}

// No command, no owner, no process, no verify protocol: a files deploy
// writes the files and verifies by reading them back.
func TestDefaults(t *testing.T) {
	c := get(t)
	if d := c.Defaults(); !reflect.DeepEqual(d, connectors.Defaults{}) {
		t.Errorf("defaults %+v, want none", d)
	}
	cfg := target.Config{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem"}
	if v := connectors.ValidateCommand(c, cfg); len(v) != 0 {
		t.Errorf("validate command %v", v)
	}
	if r := connectors.ReloadFor(c, cfg); len(r.Command) != 0 || r.Signal != "" || r.HTTP != nil {
		t.Errorf("reload %+v", r)
	}
	if !connectors.VerifiesByReadBack(c) || !target.ReadsBack(files.Name) {
		t.Error("files must verify by reading back, and package target must know it")
	}
	for _, other := range connectors.Names() {
		// kubernetes reads its Secrets back through the API server.
		if other != files.Name && other != "kubernetes" && target.ReadsBack(other) {
			t.Errorf("%s reads back: only a connector that says so does", other)
		}
	}
}

func TestCheckRefusals(t *testing.T) {
	paths := target.Config{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem"}
	with := func(f func(c *target.Config)) target.Config {
		c := paths
		f(&c)
		return c
	}
	m := target.Mode(0o644)
	timeout := target.Duration(time.Second)
	for _, tc := range []struct {
		cfg        target.Config
		field, msg string
	}{
		{target.Config{KeyPath: "/d/key.pem"}, "target_config.cert_path", "required"},
		{target.Config{CertPath: "/d/cert.pem"}, "target_config.key_path", "required"},
		{with(func(c *target.Config) { c.ValidateCommand = target.Command{"app", "--check"} }), "target_config.validate_command", "runs no command"},
		{with(func(c *target.Config) { c.ReloadCommand = target.Command{"systemctl", "reload", "app"} }), "target_config.reload_command", "runs no command"},
		{with(func(c *target.Config) { c.ReloadSignal, c.PIDFile = "HUP", "/run/app.pid" }), "target_config.reload_signal", "runs no command"},
		{with(func(c *target.Config) { c.PIDFile = "/run/app.pid" }), "target_config.pid_file", "runs no command"},
		{with(func(c *target.Config) { c.CommandTimeout = &timeout }), "target_config.command_timeout", "runs no command"},
		{with(func(c *target.Config) { c.PostDeployVerify.Endpoint = "app:443" }), "target_config.post_deploy_verify.endpoint", "reads the files back"},
		{with(func(c *target.Config) { c.PostDeployVerify.ServerName = "app" }), "target_config.post_deploy_verify.server_name", "reads the files back"},
		{with(func(c *target.Config) { c.PostDeployVerify.Protocol = target.ProtocolTLS }), "target_config.post_deploy_verify.protocol", "reads the files back"},
		{with(func(c *target.Config) { c.Own = &files.Config{FullchainPath: "/d/cert.pem"} }), "target_config.fullchain_path", "same file as cert_path"},
		{with(func(c *target.Config) { c.Own = &files.Config{FullchainPath: "/d/key.pem"} }), "target_config.fullchain_path", "same file as key_path"},
		{with(func(c *target.Config) {
			c.ChainPath, c.Own = "/d/chain.pem", &files.Config{FullchainPath: "/d/chain.pem"}
		}), "target_config.fullchain_path", "same file as chain_path"},
		{with(func(c *target.Config) { c.Own = &files.Config{FullchainFileMode: &m} }), "target_config.fullchain_file_mode", "without fullchain_path"},
		{with(func(c *target.Config) { c.Own = &files.Config{FullchainOwner: "app"} }), "target_config.fullchain_owner", "without fullchain_path"},
		{with(func(c *target.Config) { c.Own = &files.Config{FullchainPath: "relative/fullchain.pem"} }), "target_config.fullchain_path", "not absolute"},
		{with(func(c *target.Config) { c.Own = &files.Config{FullchainPath: "/d/f.pem", FullchainOwner: "a:b:c"} }), "target_config.fullchain_owner", "user:group"},
		{with(func(c *target.Config) {
			bad := target.Mode(0o664)
			c.Own = &files.Config{FullchainPath: "/d/f.pem", FullchainFileMode: &bad}
		}), "target_config.fullchain_file_mode", "other than the owner write"},
		{with(func(c *target.Config) { c.Own = &haproxy.Config{PEMPath: "/d/site.pem"} }), "target_config.pem_path", "only haproxy reads it"},
	} {
		var fe *contract.FieldError
		err := get(t).Check(tc.cfg)
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("%+v: %v, want a refusal of %s saying %q", tc.cfg, err, tc.field, tc.msg)
		}
	}
}

// A target file for files needs no post_deploy_verify.endpoint while its
// verify is on; another connector's still does.
func TestParseWithoutEndpoint(t *testing.T) {
	const src = "target_id: app-1\ntarget_type: %s\nhost: app-host\ntarget_config:\n" +
		"  cert_path: /srv/app/tls/cert.pem\n  key_path: /srv/app/tls/key.pem\n  fullchain_path: /srv/app/tls/fullchain.pem\n  fullchain_file_mode: 0640\n"
	tg, err := target.Parse(strings.NewReader(strings.Replace(src, "%s", files.Name, 1)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !tg.Config.VerifyEnabled() {
		t.Error("verify must stay on by default")
	}
	if o, ok := tg.Config.Own.(*files.Config); !ok || o.FullchainPath != "/srv/app/tls/fullchain.pem" || o.FullchainFileMode.String() != "0640" {
		t.Errorf("own fields %#v", tg.Config.Own)
	}
	if err := get(t).Check(tg.Config); err != nil {
		t.Errorf("Check: %v", err)
	}
	nginx := strings.Replace(strings.Replace(src, "%s", "nginx", 1), "  fullchain_path: /srv/app/tls/fullchain.pem\n  fullchain_file_mode: 0640\n", "", 1)
	var fe *contract.FieldError
	if _, err := target.Parse(strings.NewReader(nginx)); !errors.As(err, &fe) || fe.Field != "target_config.post_deploy_verify.endpoint" {
		t.Errorf("an nginx target without an endpoint: %v, want it refused naming the endpoint", err)
	}
}

package all_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/certctl/certctl/connectors"
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// file is what a layout test expects of one file.
type file struct {
	role, path, content string
	holdsKey            bool
	mode                os.FileMode
}

func TestLayouts(t *testing.T) {
	ca, err := testsuite.NewCA("layout test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sep := target.Config{CertPath: "/d/cert.pem", ChainPath: "/d/chain.pem", KeyPath: "/d/key.pem"}
	joined := target.Config{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem"}
	separate := func(key os.FileMode) []file {
		return []file{{"cert", "/d/cert.pem", s.CertPEM, false, 0o644}, {"chain", "/d/chain.pem", s.ChainPEM, false, 0o644}, {"key", "/d/key.pem", s.KeyPEM, true, key}}
	}
	chainInCert := func(key os.FileMode) []file {
		return []file{{"cert", "/d/cert.pem", s.CertPEM + s.ChainPEM, false, 0o644}, {"key", "/d/key.pem", s.KeyPEM, true, key}}
	}
	// A server that sends only the cert file's certificates (ChainInCert)
	// gets the chain after the leaf always, and in chain_path too.
	chainInBoth := func(key os.FileMode) []file {
		return []file{{"cert", "/d/cert.pem", s.CertPEM + s.ChainPEM, false, 0o644}, {"chain", "/d/chain.pem", s.ChainPEM, false, 0o644}, {"key", "/d/key.pem", s.KeyPEM, true, key}}
	}
	for _, tc := range []struct {
		kind string
		cfg  target.Config
		want []file
	}{
		// nginx, postfix, dovecot and caddy send only the cert file's
		// certificates: the chain goes after the leaf always, and into
		// chain_path too when it is set. apache sends its chain file.
		{"nginx", sep, chainInBoth(0o640)},
		{"nginx", joined, chainInCert(0o640)},
		{"apache", sep, separate(0o600)},
		{"apache", joined, chainInCert(0o600)},
		{"postfix", joined, chainInCert(0o600)},
		{"postfix", sep, chainInBoth(0o600)},
		{"dovecot", joined, chainInCert(0o600)},
		{"dovecot", sep, chainInBoth(0o600)},
		{"caddy", joined, chainInCert(0o600)},
		{"caddy", sep, chainInBoth(0o600)},
		{"files", joined, chainInCert(0o600)},
		{"files", sep, separate(0o600)},
		{"haproxy", target.Config{Own: &haproxy.Config{PEMPath: "/d/site.pem"}}, []file{{"pem", "/d/site.pem", s.CertPEM + s.ChainPEM + s.KeyPEM, true, 0o600}}},
	} {
		c, err := connectors.Get(tc.kind)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Check(tc.cfg); err != nil {
			t.Errorf("%s: Check: %v", tc.kind, err)
		}
		files, err := c.Files(tc.cfg, bundle(t, s.Material))
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		var got []file
		for _, f := range files {
			got = append(got, file{f.Role, f.Path, string(f.Bytes), f.HoldsKey, f.DefaultMode})
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %+v:\n got  %v\n want %v", tc.kind, tc.cfg, summary(got), summary(tc.want))
		}
	}
}

func summary(fs []file) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.role+" "+f.path+" "+f.mode.String()+" "+strings.Join(blocks(f.content), "+"))
	}
	return strings.Join(out, "; ")
}

func blocks(pemText string) []string {
	var out []string
	for _, l := range strings.Split(pemText, "\n") {
		if strings.HasPrefix(l, "-----BEGIN ") {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(l, "-----BEGIN "), "-----"))
		}
	}
	return out
}

func TestChecks(t *testing.T) {
	m := target.Mode(0o600)
	for _, tc := range []struct {
		kind  string
		cfg   target.Config
		field string
	}{
		{"haproxy", target.Config{}, "target_config.pem_path"},
		{"haproxy", target.Config{Own: &haproxy.Config{PEMPath: "/d/p.pem"}, CertPath: "/d/c.pem"}, "target_config.cert_path"},
		{"haproxy", target.Config{Own: &haproxy.Config{PEMPath: "/d/p.pem"}, KeyPath: "/d/k.pem"}, "target_config.key_path"},
		{"haproxy", target.Config{Own: &haproxy.Config{PEMPath: "/d/p.pem"}, KeyFileMode: &m}, "target_config.key_file_mode"},
		{"haproxy", target.Config{Own: &haproxy.Config{PEMPath: "/d/p.pem"}, KeyOwner: "root"}, "target_config.key_owner"},
		{"apache", target.Config{KeyPath: "/d/k.pem"}, "target_config.cert_path"},
		{"apache", target.Config{CertPath: "/d/c.pem"}, "target_config.key_path"},
		{"apache", target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem", Own: &haproxy.Config{PEMPath: "/d/p.pem"}}, "target_config.pem_path"},
		{"nginx", target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem", Own: &haproxy.Config{PEMFileMode: &m}}, "target_config.pem_file_mode"},
		{"postfix", target.Config{CertPath: "/d/c.pem"}, "target_config.key_path"},
		{"dovecot", target.Config{KeyPath: "/d/k.pem"}, "target_config.cert_path"},
		{"caddy", target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem", Own: &haproxy.Config{PEMOwner: "root"}}, "target_config.pem_owner"},
		{"files", target.Config{CertPath: "/d/c.pem"}, "target_config.key_path"},
		{"files", target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem", Own: &haproxy.Config{PEMPath: "/d/p.pem"}}, "target_config.pem_path"},
	} {
		c, _ := connectors.Get(tc.kind)
		err := c.Check(tc.cfg)
		fe, ok := err.(*contract.FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%s %+v: %v, want a FieldError for %s", tc.kind, tc.cfg, err, tc.field)
		}
	}
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		kind             string
		validate, reload string
		signal, pidFile  string
		verify           string
		owners           []string
	}{
		{"nginx", "nginx -t", "nginx -s reload", "", "", "", []string{"nginx", "www-data"}},
		{"apache", "apachectl configtest", "apachectl graceful", "", "", "", []string{"apache", "www-data"}},
		{"haproxy", "haproxy -c -f /etc/haproxy/haproxy.cfg", "", "USR2", "/run/haproxy.pid", "", []string{"haproxy"}},
		{"postfix", "postfix check", "postfix reload", "", "", target.ProtocolSMTPStartTLS, nil},
		{"dovecot", "doveconf -n", "doveadm reload", "", "", target.ProtocolTLS, nil},
		{"caddy", "caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile",
			"caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile --force", "", "", "", []string{"caddy"}},
	} {
		c, _ := connectors.Get(tc.kind)
		d := c.Defaults()
		if d.ValidateCommand.String() != tc.validate || d.ReloadCommand.String() != tc.reload || d.ReloadSignal != tc.signal ||
			d.PIDFile != tc.pidFile || d.VerifyProtocol != tc.verify || !reflect.DeepEqual(d.Owners, tc.owners) {
			t.Errorf("%s defaults %+v", tc.kind, d)
		}
		if len(d.Processes) == 0 {
			t.Errorf("%s names no process a reload signal may go to", tc.kind)
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

package javakeystore_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// keytool runs the real keytool (passwords only from files) and returns its
// output.
func keytool(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("keytool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("keytool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type env struct {
	dir, store, storePW, keyPW string
	cfg                        target.Config
	c                          connectors.CurrentLayout
}

func newEnv(t *testing.T) env {
	t.Helper()
	d := t.TempDir()
	e := env{dir: d, store: filepath.Join(d, "server.jks"), storePW: filepath.Join(d, "store.pw"), keyPW: filepath.Join(d, "key.pw")}
	for p, pw := range map[string]string{e.storePW: "store-secret\n", e.keyPW: "key-secret\n"} {
		if err := os.WriteFile(p, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg = target.Config{Own: &javakeystore.Config{KeystorePath: e.store, KeystoreType: "JKS", Alias: "tomcat", KeystorePasswordFile: e.storePW, KeyPasswordFile: e.keyPW}}
	c, err := connectors.Get(javakeystore.Name)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c.(connectors.CurrentLayout)
	return e
}

// current is what the pipeline reads on the host for Reads.
func (e env) current(t *testing.T) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, r := range e.c.Reads(e.cfg) {
		b, err := os.ReadFile(r.Path)
		if errors.Is(err, os.ErrNotExist) {
			m[r.Path] = nil
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		m[r.Path] = b
	}
	return m
}

func (e env) build(t *testing.T, b *material.Bundle) []byte {
	t.Helper()
	files, err := e.c.FilesFrom(e.cfg, b, e.current(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != e.store || !files[0].HoldsKey || files[0].Role != javakeystore.Role {
		t.Fatalf("layout: %+v", files)
	}
	return files[0].Bytes
}

func bundle(t *testing.T, ca *testsuite.CA) *material.Bundle {
	t.Helper()
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBuild builds a JKS store into one that already has other entries (a
// key pair and a trusted certificate made by keytool), and checks with the
// real keytool and by reading it back that the alias holds the material,
// the other entries are kept, the same inputs give the same bytes, a store
// that already holds the material is laid out as itself, and a new
// certificate replaces the alias only.
func TestBuild(t *testing.T) {
	ca, err := testsuite.NewCA("javakeystore test")
	if err != nil {
		t.Fatal(err)
	}
	b1, b2 := bundle(t, ca), bundle(t, ca)
	e := newEnv(t)
	otherPW := filepath.Join(e.dir, "other.pw")
	if err := os.WriteFile(otherPW, []byte("other-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(e.dir, "trusted.pem")
	if err := os.WriteFile(trusted, b2.LeafPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	keytool(t, "-genkeypair", "-keystore", e.store, "-storetype", "JKS", "-storepass:file", e.storePW, "-keypass:file", otherPW,
		"-alias", "other", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=other")
	keytool(t, "-importcert", "-noprompt", "-keystore", e.store, "-storetype", "JKS", "-storepass:file", e.storePW, "-alias", "trusted", "-file", trusted)

	data := e.build(t, b1)
	again, err := e.c.FilesFrom(e.cfg, b1, e.current(t))
	if err != nil || !bytes.Equal(again[0].Bytes, data) {
		t.Fatalf("the same inputs laid out different bytes (Stage would refuse the plan): %v", err)
	}
	if err := os.WriteFile(e.store, data, 0o600); err != nil {
		t.Fatal(err)
	}
	list := keytool(t, javakeystore.ListCommand(*e.cfg.Own.(*javakeystore.Config))[1:]...)
	for _, want := range []string{"3 entries", "tomcat, ", "other, ", "trusted, ", "trustedCertEntry"} {
		if !strings.Contains(list, want) {
			t.Errorf("keytool -list lacks %q:\n%s", want, list)
		}
	}
	served, err := e.c.Served(e.cfg, javakeystore.Role, data, e.current(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := material.ParseConcatenated("keystore", served)
	if err != nil || got.LeafSHA256() != b1.LeafSHA256() || len(got.Chain) != len(b1.Chain) {
		t.Fatalf("served: %v", err)
	}
	ks := keystore.New()
	if err := ks.Load(bytes.NewReader(data), []byte("store-secret")); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.GetPrivateKeyEntry("other", []byte("other-secret")); err != nil {
		t.Errorf("the other key entry no longer opens with its own password: %v", err)
	}

	if same := e.build(t, b1); !bytes.Equal(same, data) {
		t.Error("a store already holding the material was rebuilt: Plan would not skip")
	}
	next := e.build(t, b2)
	if bytes.Equal(next, data) {
		t.Fatal("a new certificate laid out the old store")
	}
	served, err = e.c.Served(e.cfg, javakeystore.Role, next, e.current(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := material.ParseConcatenated("keystore", served); err != nil || got.LeafSHA256() != b2.LeafSHA256() {
		t.Fatalf("after renewal the alias does not hold the new leaf: %v", err)
	}
	if err := ks.Load(bytes.NewReader(next), []byte("store-secret")); err != nil || len(ks.Aliases()) != 3 {
		t.Fatalf("renewed store: %v, aliases %v", err, ks.Aliases())
	}
}

// TestWrongPassword: a store password that does not open the store is an
// error naming keystore_password_file; a missing password file names it too.
func TestWrongPassword(t *testing.T) {
	ca, err := testsuite.NewCA("javakeystore test")
	if err != nil {
		t.Fatal(err)
	}
	b := bundle(t, ca)
	e := newEnv(t)
	if err := os.WriteFile(e.store, e.build(t, b), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.storePW, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.FilesFrom(e.cfg, b, e.current(t))
	var fe *contract.FieldError
	if !errors.As(err, &fe) || fe.Field != "target_config.keystore_password_file" || !strings.Contains(fe.Msg, "does not open") {
		t.Fatalf("wrong password: %v", err)
	}
	if err := os.Remove(e.storePW); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.FilesFrom(e.cfg, b, e.current(t))
	if !errors.As(err, &fe) || fe.Field != "target_config.keystore_password_file" || !strings.Contains(fe.Msg, "does not exist") {
		t.Fatalf("missing password file: %v", err)
	}
}

func TestCheck(t *testing.T) {
	c, err := connectors.Get(javakeystore.Name)
	if err != nil {
		t.Fatal(err)
	}
	ok := javakeystore.Config{KeystorePath: "/d/s.jks", KeystoreType: "JKS", Alias: "tomcat", KeystorePasswordFile: "/d/pw"}
	for _, tc := range []struct {
		name  string
		edit  func(*javakeystore.Config, *target.Config)
		field string
	}{
		{"good", func(*javakeystore.Config, *target.Config) {}, ""},
		{"no path", func(o *javakeystore.Config, _ *target.Config) { o.KeystorePath = "" }, "target_config.keystore_path"},
		{"no type", func(o *javakeystore.Config, _ *target.Config) { o.KeystoreType = "" }, "target_config.keystore_type"},
		{"PKCS12 not yet", func(o *javakeystore.Config, _ *target.Config) { o.KeystoreType = "PKCS12" }, "target_config.keystore_type"},
		{"bad type", func(o *javakeystore.Config, _ *target.Config) { o.KeystoreType = "BKS" }, "target_config.keystore_type"},
		{"no alias", func(o *javakeystore.Config, _ *target.Config) { o.Alias = "" }, "target_config.alias"},
		{"alias in capitals", func(o *javakeystore.Config, _ *target.Config) { o.Alias = "Tomcat" }, "target_config.alias"},
		{"no password file", func(o *javakeystore.Config, _ *target.Config) { o.KeystorePasswordFile = "" }, "target_config.keystore_password_file"},
		{"cert_path", func(_ *javakeystore.Config, c *target.Config) { c.CertPath = "/d/c.pem" }, "target_config.cert_path"},
	} {
		o := ok
		cfg := target.Config{}
		tc.edit(&o, &cfg)
		cfg.Own = &o
		err := c.Check(cfg)
		var fe *contract.FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
	cfg := target.Config{Own: &ok}
	if got := connectors.ValidateCommand(c, cfg).String(); !strings.Contains(got, "-storepass:file /d/pw") || strings.Contains(got, "-storepass ") {
		t.Errorf("check command %q: the password must come from its file", got)
	}
}

package javakeystore_test

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/connectors/javakeystore/pkcs12"
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
	dir, store, storePW, keyPW, typ string
	cfg                             target.Config
	c                               connectors.CurrentLayout
}

func newEnv(t *testing.T, typ string) env {
	t.Helper()
	d := t.TempDir()
	e := env{dir: d, store: filepath.Join(d, "server."+strings.ToLower(typ)), storePW: filepath.Join(d, "store.pw"), keyPW: filepath.Join(d, "key.pw"), typ: typ}
	for p, pw := range map[string]string{e.storePW: "store-secret\n", e.keyPW: "key-secret\n"} {
		if err := os.WriteFile(p, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.cfg = target.Config{Own: &javakeystore.Config{KeystorePath: e.store, KeystoreType: typ, Alias: "tomcat", KeystorePasswordFile: e.storePW, KeyPasswordFile: e.keyPW}}
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

// types are the keystore types, each test run over both.
var types = []string{javakeystore.TypeJKS, javakeystore.TypePKCS12}

// otherKey opens the "other" key entry of data with its password, with the
// library of the store's type.
func otherKey(t *testing.T, typ string, data []byte, otherPW string) error {
	t.Helper()
	if typ == javakeystore.TypePKCS12 {
		s, err := pkcs12.Decode(data, []byte("store-secret"))
		if err != nil {
			return err
		}
		_, _, err = s.Key("other", []byte(otherPW))
		return err
	}
	ks := keystore.New()
	if err := ks.Load(bytes.NewReader(data), []byte("store-secret")); err != nil {
		return err
	}
	_, err := ks.GetPrivateKeyEntry("other", []byte(otherPW))
	return err
}

// TestBuild builds a JKS and a PKCS12 store into one that already has other
// entries (a key pair and a trusted certificate made by keytool), and
// checks with the real keytool and by reading it back that the alias holds
// the material, the other entries are kept, the same inputs give the same
// bytes, a store that already holds the material is laid out as itself, and
// a new certificate replaces the alias only.
func TestBuild(t *testing.T) {
	ca, err := testsuite.NewCA("javakeystore test")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) { testBuild(t, ca, typ) })
	}
}

func testBuild(t *testing.T, ca *testsuite.CA, typ string) {
	b1, b2 := bundle(t, ca), bundle(t, ca)
	e := newEnv(t, typ)
	// keytool ignores -keypass for PKCS12 (the key is under the store's
	// password); JKS keeps a key password of its own.
	otherSecret := "other-secret"
	if typ == javakeystore.TypePKCS12 {
		otherSecret = "store-secret"
	}
	otherPW := filepath.Join(e.dir, "other.pw")
	if err := os.WriteFile(otherPW, []byte(otherSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	trusted := filepath.Join(e.dir, "trusted.pem")
	if err := os.WriteFile(trusted, b2.LeafPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	keytool(t, "-genkeypair", "-keystore", e.store, "-storetype", typ, "-storepass:file", e.storePW, "-keypass:file", otherPW,
		"-alias", "other", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=other")
	keytool(t, "-importcert", "-noprompt", "-keystore", e.store, "-storetype", typ, "-storepass:file", e.storePW, "-alias", "trusted", "-file", trusted)

	data := e.build(t, b1)
	again, err := e.c.FilesFrom(e.cfg, b1, e.current(t))
	if err != nil || !bytes.Equal(again[0].Bytes, data) {
		t.Fatalf("the same inputs laid out different bytes (Stage would refuse the plan): %v", err)
	}
	if err := os.WriteFile(e.store, data, 0o600); err != nil {
		t.Fatal(err)
	}
	list := keytool(t, append(javakeystore.ListCommand(*e.cfg.Own.(*javakeystore.Config))[1:], "-v")...)
	for _, want := range []string{"Keystore type: " + typ, "3 entries", "Alias name: tomcat\n", "Alias name: other\n", "Alias name: trusted\n", "Entry type: trustedCertEntry"} {
		if !strings.Contains(list, want) {
			t.Errorf("keytool -list -v lacks %q:\n%s", want, list)
		}
	}
	if n := strings.Count(list, "Entry type: PrivateKeyEntry"); n != 2 {
		t.Errorf("keytool lists %d key entries, want 2:\n%s", n, list)
	}
	served, err := e.c.Served(e.cfg, javakeystore.Role, data, e.current(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := material.ParseConcatenated("keystore", served)
	if err != nil || got.LeafSHA256() != b1.LeafSHA256() || len(got.Chain) != len(b1.Chain) {
		t.Fatalf("served: %v", err)
	}
	if err := otherKey(t, typ, data, otherSecret); err != nil {
		t.Errorf("the other key entry no longer opens with its own password: %v", err)
	}
	keytool(t, "-certreq", "-alias", "other", "-keystore", e.store, "-storetype", typ, "-storepass:file", e.storePW, "-keypass:file", otherPW)

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
	if err := os.WriteFile(e.store, next, 0o600); err != nil {
		t.Fatal(err)
	}
	if list := keytool(t, javakeystore.ListCommand(*e.cfg.Own.(*javakeystore.Config))[1:]...); !strings.Contains(list, "3 entries") {
		t.Fatalf("renewed store:\n%s", list)
	}
}

// TestWrongPassword: a store password that does not open the store is an
// error naming keystore_password_file; a missing password file names it too.
func TestWrongPassword(t *testing.T) {
	ca, err := testsuite.NewCA("javakeystore test")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) { testWrongPassword(t, ca, typ) })
	}
}

func testWrongPassword(t *testing.T, ca *testsuite.CA, typ string) {
	b := bundle(t, ca)
	e := newEnv(t, typ)
	if err := os.WriteFile(e.store, e.build(t, b), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.storePW, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.FilesFrom(e.cfg, b, e.current(t))
	var fe *contract.FieldError
	if !errors.As(err, &fe) || fe.Field != "target_config.keystore_password_file" || !strings.Contains(fe.Msg, "does not open") || strings.Contains(err.Error(), "not-the-password") {
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
		{"PKCS12", func(o *javakeystore.Config, _ *target.Config) { o.KeystoreType = "PKCS12" }, ""},
		{"lower-case type", func(o *javakeystore.Config, _ *target.Config) { o.KeystoreType = "pkcs12" }, "target_config.keystore_type"},
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

// TestPKCS12OtherStores: an `openssl pkcs12 -legacy` store (RC2-40) is
// rebuilt with Java 17's defaults; a store certctl does not read (no MAC,
// from -nomac; a MAC asking for 2^31 iterations) is an error naming
// keystore_path, the first with the keytool command that converts it, and
// neither holds the password.
func TestPKCS12OtherStores(t *testing.T) {
	ca, err := testsuite.NewCA("javakeystore test")
	if err != nil {
		t.Fatal(err)
	}
	b := bundle(t, ca)
	e := newEnv(t, javakeystore.TypePKCS12)
	cert, key := filepath.Join(e.dir, "leaf.pem"), filepath.Join(e.dir, "key.pem")
	if err := os.WriteFile(cert, b.LeafPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, b.KeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	export := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("openssl", append([]string{"pkcs12", "-export", "-in", cert, "-inkey", key, "-name", "tomcat",
			"-passout", "file:" + e.storePW, "-out", e.store}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("openssl pkcs12 -export %v: %v\n%s", args, err, out)
		}
	}
	export("-legacy")
	fresh := bundle(t, ca)
	if err := os.WriteFile(e.store, e.build(t, fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("openssl", "pkcs12", "-info", "-noout", "-in", e.store, "-passin", "file:"+e.storePW).CombinedOutput()
	if err != nil || !strings.Contains(string(info), "MAC: sha256, Iteration 10000") || strings.Contains(string(info), "RC2") {
		t.Fatalf("the legacy store rebuilt: %v\n%s", err, info)
	}

	export("-nomac")
	_, err = e.c.FilesFrom(e.cfg, b, e.current(t))
	var fe *contract.FieldError
	if !errors.As(err, &fe) || fe.Field != "target_config.keystore_path" || !strings.Contains(fe.Msg, "without a MAC") ||
		!strings.Contains(fe.Msg, "keytool -importkeystore -srckeystore "+e.store+" -srcstoretype PKCS12 -srcstorepass:file "+e.storePW) {
		t.Fatalf("store without a MAC: %v", err)
	}

	var pfx cryptobyte.Builder
	pfx.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1})
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddASN1OctetString([]byte{0x30, 0}) })
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1})
					b.AddASN1NULL()
				})
				b.AddASN1OctetString(make([]byte, 32))
			})
			b.AddASN1OctetString(make([]byte, 20))
			b.AddASN1Int64(1 << 31)
		})
	})
	if err := os.WriteFile(e.store, pfx.BytesOrPanic(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.FilesFrom(e.cfg, b, e.current(t))
	if !errors.As(err, &fe) || fe.Field != "target_config.keystore_path" || !strings.Contains(fe.Msg, "2147483648") {
		t.Fatalf("planted store: %v", err)
	}
	if strings.Contains(err.Error(), "store-secret") {
		t.Fatal("the password is in the error")
	}
}

package pkcs12

// Interoperability with the real tools: stores made by Java 17's keytool
// and OpenSSL 3 are read; stores written here are read by keytool (entries,
// aliases, entry types, keys decrypting) and openssl (MAC, bags).

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type tools struct{ dir, pwFile, store string }

func newTools(t *testing.T) tools {
	t.Helper()
	d := t.TempDir()
	x := tools{dir: d, pwFile: filepath.Join(d, "store.pw"), store: filepath.Join(d, "server.p12")}
	write(t, d, map[string][]byte{"store.pw": append(append([]byte{}, pw...), '\n')})
	return x
}

func (x tools) keytool(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "keytool", append(args, "-keystore", x.store, "-storetype", "PKCS12", "-storepass:file", x.pwFile)...)
}

func (x tools) read(t *testing.T) *Store {
	t.Helper()
	data, err := os.ReadFile(x.store)
	if err != nil {
		t.Fatal(err)
	}
	return bagsOf(t, data, pw)
}

// TestKeytoolStore reads a store Java 17's keytool made (two key pairs, a
// trusted certificate; Java's defaults), sets one alias, and checks with
// keytool and openssl that every entry is still what it was.
func TestKeytoolStore(t *testing.T) {
	x := newTools(t)
	c := newChain(t, "one.test")
	write(t, x.dir, map[string][]byte{"root.pem": pemCert(c.root)})
	x.keytool(t, "-genkeypair", "-alias", "one", "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=one")
	x.keytool(t, "-genkeypair", "-alias", "two", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=two")
	x.keytool(t, "-importcert", "-noprompt", "-alias", "ca", "-file", filepath.Join(x.dir, "root.pem"))

	s := x.read(t)
	wantEntries(t, s, map[string]string{"one": PrivateKeyEntry, "two": PrivateKeyEntry, "ca": TrustedCertEntry})
	for _, a := range []string{"one", "two"} {
		key, ch, err := s.Key(a, pw)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(key); err != nil || len(ch) != 1 {
			t.Fatalf("%s: key %v, chain of %d", a, err, len(ch))
		}
	}
	twoBefore := x.keytool(t, "-exportcert", "-rfc", "-alias", "two")

	if err := s.SetKey("one", c.key, c.certs, pw, c.leaf.NotBefore, seeded(1)); err != nil {
		t.Fatal(err)
	}
	data, err := s.Encode(pw, seeded(2))
	if err != nil {
		t.Fatal(err)
	}
	write(t, x.dir, map[string][]byte{"server.p12": data})

	list := x.keytool(t, "-list", "-v")
	for _, want := range []string{"Your keystore contains 3 entries", "Alias name: one\n", "Alias name: two\n", "Alias name: ca\n",
		"Certificate chain length: 3", "Entry type: trustedCertEntry"} {
		if !strings.Contains(list, want) {
			t.Errorf("keytool -list -v lacks %q:\n%s", want, list)
		}
	}
	if n := strings.Count(list, "Entry type: PrivateKeyEntry"); n != 2 {
		t.Errorf("%d PrivateKeyEntry, want 2:\n%s", n, list)
	}
	if got, _ := pem.Decode([]byte(x.keytool(t, "-exportcert", "-rfc", "-alias", "one"))); got == nil || !bytes.Equal(got.Bytes, c.leaf.Raw) {
		t.Errorf("keytool exports another leaf for one")
	}
	if got := x.keytool(t, "-exportcert", "-rfc", "-alias", "two"); got != twoBefore {
		t.Errorf("two's certificate changed")
	}
	// keytool signs with each key: both decrypt.
	for _, a := range []string{"one", "two"} {
		if out := x.keytool(t, "-certreq", "-alias", a); !strings.Contains(out, "BEGIN NEW CERTIFICATE REQUEST") {
			t.Errorf("keytool -certreq %s:\n%s", a, out)
		}
	}
	info := run(t, "openssl", "pkcs12", "-info", "-noout", "-in", x.store, "-passin", "file:"+x.pwFile)
	for _, want := range []string{"MAC: sha256, Iteration 10000", "PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256", "Shrouded Keybag"} {
		if !strings.Contains(info, want) {
			t.Errorf("openssl pkcs12 -info lacks %q:\n%s", want, info)
		}
	}
	pems := run(t, "openssl", "pkcs12", "-in", x.store, "-passin", "file:"+x.pwFile, "-nodes", "-nocerts")
	if n := strings.Count(pems, "BEGIN PRIVATE KEY"); n != 2 || !strings.Contains(pems, "friendlyName: one") {
		t.Errorf("openssl decrypts %d keys:\n%s", n, pems)
	}
}

// TestOpenSSLStore reads `openssl pkcs12 -export` stores: OpenSSL 3's
// defaults, its 3DES/SHA-1 and AES-128 forms, -legacy (RC2-40 certificates,
// 3DES key, SHA-1 MAC); refuses one without a MAC and one with RC4, and
// reads them after the keytool conversion the connector's error gives.
func TestOpenSSLStore(t *testing.T) {
	c := newChain(t, "tomcat.test")
	keyPEM := pemKey(t, c.key)
	for _, tc := range []struct {
		name    string
		args    []string
		refused string
	}{
		{"OpenSSL 3 defaults", nil, ""},
		{"3DES, SHA-1 MAC", []string{"-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"}, ""},
		{"AES-128, SHA-1 MAC", []string{"-keypbe", "AES-128-CBC", "-certpbe", "AES-128-CBC", "-macalg", "sha1"}, ""},
		{"legacy", []string{"-legacy"}, ""},
		{"no MAC", []string{"-nomac"}, "without a MAC"},
		{"RC4", []string{"-legacy", "-certpbe", "PBE-SHA1-RC4-128"}, "pbeWithSHAAnd128BitRC4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newTools(t)
			write(t, x.dir, map[string][]byte{"leaf.pem": pemCert(c.leaf.Raw), "chain.pem": pemCert(c.certs[1]), "key.pem": keyPEM})
			run(t, "openssl", append([]string{"pkcs12", "-export", "-in", filepath.Join(x.dir, "leaf.pem"), "-certfile", filepath.Join(x.dir, "chain.pem"),
				"-inkey", filepath.Join(x.dir, "key.pem"), "-name", "tomcat", "-passout", "file:" + x.pwFile, "-out", x.store}, tc.args...)...)
			data, err := os.ReadFile(x.store)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Decode(data, pw)
			if tc.refused != "" {
				var ue *UnsupportedError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("got %v, want %q refused", err, tc.refused)
				}
				conv := filepath.Join(x.dir, "converted.p12")
				run(t, "keytool", "-importkeystore", "-noprompt", "-srckeystore", x.store, "-srcstoretype", "PKCS12", "-srcstorepass:file", x.pwFile,
					"-destkeystore", conv, "-deststoretype", "PKCS12", "-deststorepass:file", x.pwFile)
				x.store = conv
				s = x.read(t)
			} else if err != nil {
				t.Fatal(err)
			} else if _, err := Decode(data, []byte("not-the-password")); !errors.Is(err, ErrPassword) {
				t.Fatalf("wrong password: %v", err)
			}
			wantEntries(t, s, map[string]string{"tomcat": PrivateKeyEntry})
			wantKeyParsed(t, s, "tomcat", c)
		})
	}
}

// wantKeyParsed: alias holds c's key (compared parsed: OpenSSL's PKCS #8
// may encode it otherwise) and chain.
func wantKeyParsed(t *testing.T, s *Store, alias string, c chain) {
	t.Helper()
	der, ch, err := s.Key(alias, pw)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := x509.ParsePKCS8PrivateKey(c.key)
	if !k.(interface{ Equal(crypto.PrivateKey) bool }).Equal(want) {
		t.Fatal("another key")
	}
	if len(ch) != 2 || !bytes.Equal(ch[0], c.certs[0]) || !bytes.Equal(ch[1], c.certs[1]) {
		t.Fatalf("chain of %d", len(ch))
	}
}

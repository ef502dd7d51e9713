package material_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"sync"
	"testing"

	"github.com/certctl/certctl/material"
)

// ecParams is the block `openssl ecparam -name prime256v1 -genkey` writes
// ahead of the key: the curve's OID.
var ecParams = pemText("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7})

// weakKeys are keys no server should be given.
type weakKeys struct {
	rsa1024 *rsa.PrivateKey
	p224    *ecdsa.PrivateKey
}

var (
	weakOnce sync.Once
	theWeak  weakKeys
	weakErr  error
)

func getWeakKeys(tb testing.TB) weakKeys {
	tb.Helper()
	weakOnce.Do(func() {
		if theWeak.rsa1024, weakErr = rsa.GenerateKey(rand.Reader, 1024); weakErr != nil {
			return
		}
		theWeak.p224, weakErr = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	})
	if weakErr != nil {
		tb.Fatal(weakErr)
	}
	return theWeak
}

// Every form servers read is accepted, and what certctl writes from it is
// only the re-encoded blocks: no comments, no headers, no junk, LF ends.
func TestCanonicalBlocks(t *testing.T) {
	p := getPKI(t)
	leaf, chain := certs(p.leaf), certs(p.inter2, p.inter1)
	key := pkcs8(t, p.leafKey)
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	binaryJunk := string(bytes.Repeat([]byte{0xff, 0x00, 0x1b, '[', '2', 'J', 0x7f}, 1000))
	withHeaders := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Comment": "web-1 2026"}, Bytes: mustDER(t, key)}))
	for _, tc := range []struct {
		name             string
		m                material.Material
		leaf, chain, key string
	}{
		{"canonical input is written as is", p.good(t), leaf, chain, key},
		{"EC PARAMETERS then EC PRIVATE KEY (openssl ecparam -genkey)", material.Material{CertPEM: leaf, ChainPEM: chain, KeyPEM: ecParams + sec1(t, p.leafKey)}, leaf, chain, sec1(t, p.leafKey)},
		{"key then a comment line", material.Material{CertPEM: leaf, ChainPEM: chain, KeyPEM: key + "# web-1, rotated 2026-12-01\n"}, leaf, chain, key},
		{"key then text without a newline", material.Material{CertPEM: leaf, KeyPEM: key + "x"}, leaf, "", key},
		{"comments around every block", material.Material{
			CertPEM:  "subject=CN = web-1.example.com\n" + leaf + "\n# end\n",
			ChainPEM: "# intermediates\n" + certs(p.inter2) + "issuer 2:\n" + certs(p.inter1) + "trailing words",
			KeyPEM:   "Key for web-1:\n" + key + "\n-- ops\n",
		}, leaf, chain, key},
		{"CRLF line ends", material.Material{CertPEM: crlf(leaf), ChainPEM: crlf(chain), KeyPEM: crlf(ecParams + key + "# note\n")}, leaf, chain, key},
		{"10 KB of junk before the key", material.Material{CertPEM: leaf, KeyPEM: strings.Repeat("junk ", 2000) + "\n" + key}, leaf, "", key},
		{"binary junk and escape sequences before the key", material.Material{CertPEM: leaf, KeyPEM: binaryJunk + "\n" + key}, leaf, "", key},
		{"PEM headers on the key", material.Material{CertPEM: leaf, KeyPEM: withHeaders}, leaf, "", key},
		{"RSA PKCS #1 with a comment", material.Material{CertPEM: certs(p.rsaLeaf), KeyPEM: "# rsa\n" + pkcs1(p.rsaKey) + "# end\n"}, certs(p.rsaLeaf), "", pkcs1(p.rsaKey)},
		{"Ed25519", material.Material{CertPEM: certs(p.edLeaf), ChainPEM: certs(p.inter2), KeyPEM: pkcs8(t, p.edKey)}, certs(p.edLeaf), certs(p.inter2), pkcs8(t, p.edKey)},
		{"fullchain with text between", material.Material{CertPEM: leaf + "chain:\n" + chain, KeyPEM: key}, leaf, chain, key},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := material.Parse(tc.m)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := b.Check(p.now, ""); err != nil {
				t.Fatalf("Check: %v", err)
			}
			for _, w := range []struct{ what, got, want string }{
				{"LeafPEM", string(b.LeafPEM()), tc.leaf},
				{"ChainPEM", string(b.ChainPEM()), tc.chain},
				{"KeyPEM", string(b.KeyPEM()), tc.key},
			} {
				if w.got != w.want {
					t.Errorf("%s = %q\nwant %q", w.what, w.got, w.want)
				}
			}
		})
	}
}

func mustDER(tb testing.TB, text string) []byte {
	tb.Helper()
	b, _ := pem.Decode([]byte(text))
	if b == nil {
		tb.Fatal("no PEM")
	}
	return b.Bytes
}

// A key's DER with bytes after its structure parses (the parsers ignore
// them), but is written re-encoded: the extra bytes never reach a file.
func TestKeyReencoded(t *testing.T) {
	p := getPKI(t)
	der, err := x509.MarshalPKCS8PrivateKey(p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	padded := pemText("PRIVATE KEY", append(der, []byte("smuggled bytes")...))
	b, err := material.Parse(material.Material{CertPEM: certs(p.leaf), KeyPEM: padded})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := string(b.KeyPEM()), pemText("PRIVATE KEY", der); got != want {
		t.Fatalf("KeyPEM = %q, want the re-encoded key %q", got, want)
	}
}

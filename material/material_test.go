package material_test

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
)

// pki is a small CA hierarchy built for the tests:
//
//	root -> inter1 -> inter2 -> leaf, otherLeaf, expired, future, rsaLeaf, edLeaf
//	stranger (an unrelated CA)
type pki struct {
	now time.Time

	root, inter1, inter2, stranger *x509.Certificate

	leaf, otherLeaf, expired, future, rsaLeaf, edLeaf *x509.Certificate

	leafKey, otherKey, expiredKey, futureKey *ecdsa.PrivateKey
	rsaKey                                   *rsa.PrivateKey
	edKey                                    ed25519.PrivateKey

	// keyPEMs holds every private key of the hierarchy in every PEM form the
	// tests use: no error may ever show a piece of any of them.
	keyPEMs []string
}

var (
	pkiOnce sync.Once
	thePKI  *pki
	pkiErr  error
)

func getPKI(tb testing.TB) *pki {
	tb.Helper()
	pkiOnce.Do(func() { thePKI, pkiErr = buildPKI() })
	if pkiErr != nil {
		tb.Fatalf("building test PKI: %v", pkiErr)
	}
	return thePKI
}

var serial int64

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func caTemplate(cn string, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"certctl tests"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func leafTemplate(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{cn, "*.example.net"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1")},
	}
}

func ecKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func buildPKI() (*pki, error) {
	p := &pki{now: time.Now().UTC().Truncate(time.Second)}
	now := p.now
	var err error
	keys := make([]*ecdsa.PrivateKey, 8)
	for i := range keys {
		if keys[i], err = ecKey(); err != nil {
			return nil, err
		}
	}
	rootKey, inter1Key, inter2Key, strangerKey := keys[0], keys[1], keys[2], keys[3]
	p.leafKey, p.otherKey, p.expiredKey, p.futureKey = keys[4], keys[5], keys[6], keys[7]
	if p.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if _, p.edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}

	steps := []struct {
		out    **x509.Certificate
		tmpl   *x509.Certificate
		parent **x509.Certificate
		pub    crypto.PublicKey
		signer crypto.Signer
	}{
		{&p.root, caTemplate("Test Root", now), nil, &rootKey.PublicKey, rootKey},
		{&p.stranger, caTemplate("Stranger Root", now), nil, &strangerKey.PublicKey, strangerKey},
		{&p.inter1, caTemplate("Test Intermediate 1", now), &p.root, &inter1Key.PublicKey, rootKey},
		{&p.inter2, caTemplate("Test Intermediate 2", now), &p.inter1, &inter2Key.PublicKey, inter1Key},
		{&p.leaf, leafTemplate("web-1.example.com", now.Add(-time.Hour), now.Add(24*time.Hour)), &p.inter2, &p.leafKey.PublicKey, inter2Key},
		{&p.otherLeaf, leafTemplate("web-2.example.com", now.Add(-time.Hour), now.Add(24*time.Hour)), &p.inter2, &p.otherKey.PublicKey, inter2Key},
		{&p.expired, leafTemplate("web-1.example.com", now.Add(-48*time.Hour), now.Add(-24*time.Hour)), &p.inter2, &p.expiredKey.PublicKey, inter2Key},
		{&p.future, leafTemplate("web-1.example.com", now.Add(24*time.Hour), now.Add(48*time.Hour)), &p.inter2, &p.futureKey.PublicKey, inter2Key},
		{&p.rsaLeaf, leafTemplate("rsa.example.com", now.Add(-time.Hour), now.Add(24*time.Hour)), &p.inter2, &p.rsaKey.PublicKey, inter2Key},
		{&p.edLeaf, leafTemplate("ed.example.com", now.Add(-time.Hour), now.Add(24*time.Hour)), &p.inter2, p.edKey.Public(), inter2Key},
	}
	for _, s := range steps {
		var parent *x509.Certificate
		if s.parent != nil {
			parent = *s.parent
		}
		if *s.out, err = create(s.tmpl, parent, s.pub, s.signer); err != nil {
			return nil, err
		}
	}

	for _, k := range []crypto.Signer{rootKey, inter1Key, inter2Key, strangerKey, p.leafKey, p.otherKey, p.expiredKey, p.futureKey, p.rsaKey, p.edKey} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		p.keyPEMs = append(p.keyPEMs, pemText("PRIVATE KEY", der))
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(k)
			if err != nil {
				return nil, err
			}
			p.keyPEMs = append(p.keyPEMs, pemText("EC PRIVATE KEY", der))
		case *rsa.PrivateKey:
			p.keyPEMs = append(p.keyPEMs, pemText("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k)))
		}
	}
	return p, nil
}

func pemText(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func certs(cs ...*x509.Certificate) string { return string(material.EncodeCerts(cs...)) }

func pkcs8(tb testing.TB, k any) string {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return pemText("PRIVATE KEY", der)
}

func sec1(tb testing.TB, k *ecdsa.PrivateKey) string {
	tb.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return pemText("EC PRIVATE KEY", der)
}

func pkcs1(k *rsa.PrivateKey) string {
	return pemText("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
}

// good is the material of the leaf, with its chain in order.
func (p *pki) good(tb testing.TB) material.Material {
	return material.Material{
		CertPEM:  certs(p.leaf),
		ChainPEM: certs(p.inter2, p.inter1),
		KeyPEM:   pkcs8(tb, p.leafKey),
	}
}

var base64Line = regexp.MustCompile(`^[A-Za-z0-9+/=]{20,}$`)

// keyBodies returns the base64 bodies of the PEM private keys in texts, each
// with its line breaks removed.
func keyBodies(texts ...string) []string {
	var out []string
	for _, text := range texts {
		var body strings.Builder
		for _, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if base64Line.MatchString(line) {
				body.WriteString(line)
			} else if body.Len() > 0 {
				out = append(out, body.String())
				body.Reset()
			}
		}
		if body.Len() > 0 {
			out = append(out, body.String())
		}
	}
	return out
}

// leak returns what of the keys in keyTexts msg shows, or "".
func leak(msg string, keyTexts ...string) string {
	if strings.Contains(msg, "PRIVATE KEY") {
		return "PRIVATE KEY"
	}
	for _, body := range keyBodies(keyTexts...) {
		for i := 0; i+20 <= len(body); i++ {
			if w := body[i : i+20]; strings.Contains(msg, w) {
				return w
			}
		}
	}
	return ""
}

// checkErr fails unless err is a *contract.FieldError for field whose message
// contains msg and shows no key text.
func checkErr(t *testing.T, err error, field, msg string, keyTexts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one for %s", field)
	}
	t.Log(err)
	if w := leak(err.Error(), keyTexts...); w != "" {
		t.Errorf("error %q shows key text %q", err, w)
	}
	var me *contract.FieldError
	if !errors.As(err, &me) {
		t.Fatalf("error %q (%T) is not a *contract.FieldError", err, err)
	}
	if me.Field != field {
		t.Errorf("Field = %q, want %q (error: %v)", me.Field, field, err)
	}
	if msg != "" && !strings.Contains(me.Msg, msg) {
		t.Errorf("message %q does not contain %q", me.Msg, msg)
	}
}

func TestLeakDetector(t *testing.T) {
	p := getPKI(t)
	k := p.keyPEMs[0]
	body := keyBodies(k)[0]
	for _, msg := range []string{
		"x: " + body[30:50] + " y",
		"a private key: -----BEGIN PRIVATE KEY-----",
		"x: " + k,
	} {
		if leak(msg, p.keyPEMs...) == "" {
			t.Errorf("leak missed key text in %q", msg)
		}
	}
	if w := leak("key_pem: private key does not match the certificate", p.keyPEMs...); w != "" {
		t.Errorf("leak flagged %q", w)
	}
}

func TestGoodMaterial(t *testing.T) {
	p := getPKI(t)
	for _, tc := range []struct {
		name  string
		m     material.Material
		leaf  *x509.Certificate
		chain []*x509.Certificate
		host  string
	}{
		{"ecdsa pkcs8", p.good(t), p.leaf, []*x509.Certificate{p.inter2, p.inter1}, "web-1.example.com"},
		{"ecdsa sec1", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter2, p.inter1), KeyPEM: sec1(t, p.leafKey)}, p.leaf, []*x509.Certificate{p.inter2, p.inter1}, "web-1.example.com"},
		{"chain with root", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter2, p.inter1, p.root), KeyPEM: pkcs8(t, p.leafKey)}, p.leaf, []*x509.Certificate{p.inter2, p.inter1, p.root}, "web-1.example.com"},
		{"no chain", material.Material{CertPEM: certs(p.leaf), KeyPEM: pkcs8(t, p.leafKey)}, p.leaf, nil, "web-1.example.com"},
		{"partial chain", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter2), KeyPEM: pkcs8(t, p.leafKey)}, p.leaf, []*x509.Certificate{p.inter2}, ""},
		{"rsa pkcs1", material.Material{CertPEM: certs(p.rsaLeaf), ChainPEM: certs(p.inter2, p.inter1), KeyPEM: pkcs1(p.rsaKey)}, p.rsaLeaf, []*x509.Certificate{p.inter2, p.inter1}, "rsa.example.com"},
		{"rsa pkcs8", material.Material{CertPEM: certs(p.rsaLeaf), ChainPEM: certs(p.inter2), KeyPEM: pkcs8(t, p.rsaKey)}, p.rsaLeaf, []*x509.Certificate{p.inter2}, "rsa.example.com"},
		{"ed25519", material.Material{CertPEM: certs(p.edLeaf), ChainPEM: certs(p.inter2), KeyPEM: pkcs8(t, p.edKey)}, p.edLeaf, []*x509.Certificate{p.inter2}, "ed.example.com"},
		{"fullchain in cert_pem", material.Material{CertPEM: certs(p.leaf, p.inter2, p.inter1), KeyPEM: pkcs8(t, p.leafKey)}, p.leaf, []*x509.Certificate{p.inter2, p.inter1}, "web-1.example.com"},
		{"fullchain in cert_pem then chain_pem", material.Material{CertPEM: certs(p.leaf, p.inter2), ChainPEM: certs(p.inter1, p.root), KeyPEM: pkcs8(t, p.leafKey)}, p.leaf, []*x509.Certificate{p.inter2, p.inter1, p.root}, "web-1.example.com"},
		{"CRLF line endings", material.Material{
			CertPEM:  strings.ReplaceAll(certs(p.leaf), "\n", "\r\n"),
			ChainPEM: strings.ReplaceAll(certs(p.inter2, p.inter1), "\n", "\r\n"),
			KeyPEM:   strings.ReplaceAll(pkcs8(t, p.leafKey), "\n", "\r\n"),
		}, p.leaf, []*x509.Certificate{p.inter2, p.inter1}, "web-1.example.com"},
		{"surrounding blank lines", material.Material{
			CertPEM:  "\n\n" + certs(p.leaf) + "\n\n",
			ChainPEM: "\n" + certs(p.inter2) + "\n" + certs(p.inter1) + "\n",
			KeyPEM:   "\n" + pkcs8(t, p.leafKey) + "\n\n",
		}, p.leaf, []*x509.Certificate{p.inter2, p.inter1}, "web-1.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := material.Parse(tc.m)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !b.Leaf.Equal(tc.leaf) {
				t.Errorf("Leaf = %s, want %s", b.Leaf.Subject, tc.leaf.Subject)
			}
			if len(b.Chain) != len(tc.chain) {
				t.Fatalf("Chain has %d certificates, want %d", len(b.Chain), len(tc.chain))
			}
			for i := range tc.chain {
				if !b.Chain[i].Equal(tc.chain[i]) {
					t.Errorf("Chain[%d] = %s, want %s", i, b.Chain[i].Subject, tc.chain[i].Subject)
				}
			}
			if b.Key == nil {
				t.Fatal("Key is nil")
			}
			if err := b.Check(p.now, tc.host); err != nil {
				t.Errorf("Check(%q): %v", tc.host, err)
			}
			if err := b.Check(p.now, ""); err != nil {
				t.Errorf("Check without host: %v", err)
			}
		})
	}
}

func TestCheckHosts(t *testing.T) {
	p := getPKI(t)
	b, err := material.Parse(p.good(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"web-1.example.com", true},
		{"WEB-1.Example.COM", true},
		{"web-1.example.com.", true},
		{"a.example.net", true},
		{"10.0.0.1", true}, // an IP host is covered by an IP SAN
		{"::1", true},
		{"[::1]", true},
		{material.HostOf("10.0.0.1:443"), true},
		{material.HostOf("[::1]:8443"), true},
		{"", true}, // no host: nothing to cover
		{"web-2.example.com", false},
		{"example.com", false},
		{"a.b.example.net", false}, // a wildcard covers one label
		{"example.net", false},
		{"10.0.0.2", false},
		{"127.0.0.1", false},
		{"localhost", false},
	} {
		t.Run(tc.host, func(t *testing.T) {
			err := b.Check(p.now, tc.host)
			if tc.ok {
				if err != nil {
					t.Fatalf("Check(%q): %v", tc.host, err)
				}
				return
			}
			checkErr(t, err, "cert_pem", "does not cover", p.keyPEMs...)
			if !strings.Contains(err.Error(), "web-1.example.com") || !strings.Contains(err.Error(), "10.0.0.1") {
				t.Errorf("error %q does not list the SANs", err)
			}
		})
	}
}

func TestCheckRefusals(t *testing.T) {
	p := getPKI(t)
	key := pkcs8(t, p.leafKey)
	for _, tc := range []struct {
		name  string
		m     material.Material
		host  string
		field string
		msg   string
	}{
		{"key of another leaf", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter2, p.inter1), KeyPEM: pkcs8(t, p.otherKey)}, "", "key_pem", "does not match"},
		{"rsa key for ecdsa leaf", material.Material{CertPEM: certs(p.leaf), KeyPEM: pkcs1(p.rsaKey)}, "", "key_pem", "does not match"},
		{"ecdsa key for rsa leaf", material.Material{CertPEM: certs(p.rsaLeaf), KeyPEM: sec1(t, p.leafKey)}, "", "key_pem", "does not match"},
		{"ed25519 key for ecdsa leaf", material.Material{CertPEM: certs(p.leaf), KeyPEM: pkcs8(t, p.edKey)}, "", "key_pem", "does not match"},
		{"chain out of order", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter1, p.inter2), KeyPEM: key}, "", "chain_pem", "out of order"},
		{"fullchain out of order", material.Material{CertPEM: certs(p.leaf, p.inter1, p.inter2), KeyPEM: key}, "", "chain_pem", "out of order"},
		{"chain skips an intermediate", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter1, p.root), KeyPEM: key}, "", "chain_pem", "not linking"},
		{"chain of a stranger", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.stranger), KeyPEM: key}, "", "chain_pem", "not linking"},
		{"chain with a stranger at the end", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter2, p.inter1, p.stranger), KeyPEM: key}, "", "chain_pem", "certificate 3"},
		{"leaf repeated in chain", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.leaf, p.inter2), KeyPEM: key}, "", "chain_pem", "the chain repeats certificates already in cert_pem (web-1.example.com)"},
		{"fullchain and its chain", material.Material{CertPEM: certs(p.leaf, p.inter2, p.inter1), ChainPEM: certs(p.inter2, p.inter1), KeyPEM: key}, "", "chain_pem", "the chain repeats certificates already in cert_pem"},
		{"intermediate twice in chain", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.inter2, p.inter2, p.inter1), KeyPEM: key}, "", "chain_pem", "twice"},
		{"loopback endpoint without server_name", p.good(t), "127.0.0.1", "cert_pem", "the verify endpoint is on loopback, so set post_deploy_verify.server_name to a name the certificate covers (web-1.example.com)"},
		{"chain is a leaf", material.Material{CertPEM: certs(p.leaf), ChainPEM: certs(p.otherLeaf), KeyPEM: key}, "", "chain_pem", "not linking"},
		{"expired leaf", material.Material{CertPEM: certs(p.expired), ChainPEM: certs(p.inter2, p.inter1), KeyPEM: pkcs8(t, p.expiredKey)}, "web-1.example.com", "cert_pem", "expired"},
		{"not yet valid leaf", material.Material{CertPEM: certs(p.future), ChainPEM: certs(p.inter2, p.inter1), KeyPEM: pkcs8(t, p.futureKey)}, "web-1.example.com", "cert_pem", "not valid until"},
		{"host not covered", p.good(t), "www.example.org", "cert_pem", "www.example.org"},
		{"IP not covered", p.good(t), "192.0.2.1", "cert_pem", "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := material.Parse(tc.m)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = b.Check(p.now, tc.host)
			checkErr(t, err, tc.field, tc.msg, append([]string{tc.m.KeyPEM}, p.keyPEMs...)...)
		})
	}
}

func TestCheckValidityEdges(t *testing.T) {
	p := getPKI(t)
	b, err := material.Parse(p.good(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"at NotBefore", p.leaf.NotBefore, true},
		{"at NotAfter", p.leaf.NotAfter, true},
		{"before NotBefore", p.leaf.NotBefore.Add(-time.Second), false},
		{"after NotAfter", p.leaf.NotAfter.Add(time.Second), false},
	} {
		err := b.Check(tc.at, "")
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok {
			t.Run(tc.name, func(t *testing.T) { checkErr(t, err, "cert_pem", "", p.keyPEMs...) })
		}
	}
}

// truncateBody returns PEM text whose base64 body is cut short.
func truncateBody(text string, keep int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	body := strings.Join(lines[1:len(lines)-1], "")
	return lines[0] + "\n" + body[:keep] + "\n" + lines[len(lines)-1] + "\n"
}

func TestParseRefusals(t *testing.T) {
	p := getPKI(t)
	leaf, chain := certs(p.leaf), certs(p.inter2, p.inter1)
	key := pkcs8(t, p.leafKey)
	keyDER, _ := pem.Decode([]byte(key))
	rsaKey := pkcs1(p.rsaKey)
	ecKey := sec1(t, p.leafKey)
	junk := bytes.Repeat([]byte{0x30, 0x82, 0xff, 0x00, 0x17}, 40)
	weak := getWeakKeys(t)

	// A legacy OpenSSL-encrypted key: the type of a plain key, with headers.
	legacy := string(pem.EncodeToMemory(&pem.Block{
		Type:    "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   junk,
	}))
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A key whose DER header is zeroed: it decodes as PEM, not as a key.
	corrupt := func(k string) string {
		lines := strings.Split(k, "\n")
		lines[1] = "AAAAAAAA" + lines[1][8:]
		return strings.Join(lines, "\n")
	}

	for _, tc := range []struct {
		name  string
		m     material.Material
		field string
		msg   string
	}{
		// cert_pem
		{"empty cert", material.Material{KeyPEM: key}, "cert_pem", "no PEM certificate"},
		{"garbage cert", material.Material{CertPEM: "this is not a certificate", KeyPEM: key}, "cert_pem", "no PEM certificate"},
		{"DER cert", material.Material{CertPEM: string(p.leaf.Raw), KeyPEM: key}, "cert_pem", ""},
		{"cert without END", material.Material{CertPEM: strings.TrimSuffix(leaf, "-----END CERTIFICATE-----\n"), KeyPEM: key}, "cert_pem", "not PEM"},
		{"cert truncated base64", material.Material{CertPEM: truncateBody(leaf, 101), KeyPEM: key}, "cert_pem", ""},
		{"cert truncated DER", material.Material{CertPEM: truncateBody(leaf, 100), KeyPEM: key}, "cert_pem", "does not parse"},
		{"CERTIFICATE block of junk", material.Material{CertPEM: pemText("CERTIFICATE", junk), KeyPEM: key}, "cert_pem", "does not parse"},
		{"second certificate junk", material.Material{CertPEM: leaf + pemText("CERTIFICATE", junk), KeyPEM: key}, "cert_pem", "certificate 2"},
		{"trailing partial PEM after cert", material.Material{CertPEM: leaf + "-----BEGIN CERTIFICATE-----\nMIIB\n", KeyPEM: key}, "cert_pem", "not PEM"},
		{"request in cert", material.Material{CertPEM: pemText("CERTIFICATE REQUEST", junk), KeyPEM: key}, "cert_pem", "CERTIFICATE REQUEST"},
		{"key in cert_pem", material.Material{CertPEM: key, KeyPEM: key}, "cert_pem", "want CERTIFICATE"},
		{"fullchain with key in cert_pem", material.Material{CertPEM: leaf + rsaKey, KeyPEM: key}, "cert_pem", "block 2"},
		{"key DER labelled CERTIFICATE", material.Material{CertPEM: pemText("CERTIFICATE", keyDER.Bytes), KeyPEM: key}, "cert_pem", "does not parse"},

		// chain_pem
		{"garbage chain", material.Material{CertPEM: leaf, ChainPEM: "garbage", KeyPEM: key}, "chain_pem", "no PEM certificate"},
		{"chain of junk", material.Material{CertPEM: leaf, ChainPEM: pemText("CERTIFICATE", junk), KeyPEM: key}, "chain_pem", "does not parse"},
		{"key in chain_pem", material.Material{CertPEM: leaf, ChainPEM: chain + ecKey, KeyPEM: key}, "chain_pem", "block 3"},

		// key_pem
		{"empty key", material.Material{CertPEM: leaf}, "key_pem", "no PEM"},
		{"garbage key", material.Material{CertPEM: leaf, KeyPEM: "hunter2"}, "key_pem", "no PEM"},
		{"key without END", material.Material{CertPEM: leaf, KeyPEM: strings.TrimSuffix(key, "-----END PRIVATE KEY-----\n")}, "key_pem", "no END line"},
		{"key truncated base64", material.Material{CertPEM: leaf, KeyPEM: truncateBody(key, 61)}, "key_pem", ""},
		{"key truncated DER", material.Material{CertPEM: leaf, KeyPEM: truncateBody(key, 60)}, "key_pem", "does not parse"},
		{"rsa key truncated DER", material.Material{CertPEM: leaf, KeyPEM: truncateBody(rsaKey, 400)}, "key_pem", "does not parse"},
		{"corrupt pkcs8 key", material.Material{CertPEM: leaf, KeyPEM: corrupt(key)}, "key_pem", "does not parse"},
		{"corrupt pkcs1 key", material.Material{CertPEM: leaf, KeyPEM: corrupt(rsaKey)}, "key_pem", "does not parse"},
		{"corrupt sec1 key", material.Material{CertPEM: leaf, KeyPEM: corrupt(ecKey)}, "key_pem", "does not parse"},
		{"PRIVATE KEY block of junk", material.Material{CertPEM: leaf, KeyPEM: pemText("PRIVATE KEY", junk)}, "key_pem", "does not parse"},
		{"RSA PRIVATE KEY block of junk", material.Material{CertPEM: leaf, KeyPEM: pemText("RSA PRIVATE KEY", junk)}, "key_pem", "does not parse"},
		{"EC PRIVATE KEY block of junk", material.Material{CertPEM: leaf, KeyPEM: pemText("EC PRIVATE KEY", junk)}, "key_pem", "does not parse"},
		{"pkcs8 labelled EC", material.Material{CertPEM: leaf, KeyPEM: pemText("EC PRIVATE KEY", keyDER.Bytes)}, "key_pem", "does not parse"},
		{"two keys", material.Material{CertPEM: leaf, KeyPEM: key + key}, "key_pem", "more than one"},
		// A key file holding the certificate beside the key is read as
		// servers read it (testsuite's framing table); one holding only
		// a certificate is the wrong file.
		{"certificate in key_pem", material.Material{CertPEM: leaf, KeyPEM: leaf}, "key_pem", "holds a certificate but no private key"},
		{"encrypted pkcs8 key", material.Material{CertPEM: leaf, KeyPEM: pemText("ENCRYPTED PRIVATE KEY", junk)}, "key_pem", "encrypted"},
		{"legacy encrypted key", material.Material{CertPEM: leaf, KeyPEM: legacy}, "key_pem", "encrypted"},
		{"openssh key", material.Material{CertPEM: leaf, KeyPEM: pemText("OPENSSH PRIVATE KEY", junk)}, "key_pem", ""},
		{"EC parameters before an RSA key", material.Material{CertPEM: leaf, KeyPEM: ecParams + rsaKey}, "key_pem", "not an EC key"},

		// Attacks: material no server should be given, and text that must
		// never reach a live file.
		{"CA certificate as the leaf", material.Material{CertPEM: certs(p.inter2), KeyPEM: key}, "cert_pem", "CA:TRUE"},
		{"fullchain in the wrong order", material.Material{CertPEM: certs(p.inter2, p.leaf), KeyPEM: key}, "cert_pem", "CA:TRUE"},
		{"self-signed root as the leaf", material.Material{CertPEM: certs(p.root), KeyPEM: key}, "cert_pem", "put the server's own certificate first"},
		{"RSA 1024", material.Material{CertPEM: leaf, KeyPEM: pkcs1(weak.rsa1024)}, "key_pem", "1024 bits, fewer than 2048"},
		{"RSA 1024 in PKCS #8", material.Material{CertPEM: leaf, KeyPEM: pkcs8(t, weak.rsa1024)}, "key_pem", "1024 bits"},
		{"EC P-224", material.Material{CertPEM: leaf, KeyPEM: sec1(t, weak.p224)}, "key_pem", "P-224, smaller than P-256"},
		{"EC P-224 in PKCS #8", material.Material{CertPEM: leaf, KeyPEM: pkcs8(t, weak.p224)}, "key_pem", "P-224"},
		{"oversized key", material.Material{CertPEM: leaf, KeyPEM: strings.Repeat("junk line\n", material.MaxPEMSize/10) + key}, "key_pem", "bytes, more than the 65536"},
		{"1 MB before the key", material.Material{CertPEM: leaf, KeyPEM: strings.Repeat("x", 1<<20) + key}, "key_pem", "give only the PEM blocks"},
		{"oversized chain", material.Material{CertPEM: leaf, ChainPEM: chain + strings.Repeat("#\n", material.MaxPEMSize), KeyPEM: key}, "chain_pem", "bytes"},
		{"broken block hides before the key", material.Material{CertPEM: leaf, KeyPEM: "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n" + key}, "key_pem", "no END line"},
		{"bad block before the leaf", material.Material{CertPEM: "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n" + leaf, KeyPEM: key}, "cert_pem", "block 1 does not decode"},
		{"END of another type", material.Material{CertPEM: strings.Replace(leaf, "END CERTIFICATE", "END X509 CRL", 1), KeyPEM: key}, "cert_pem", "does not decode"},
		{"x25519 key", material.Material{CertPEM: leaf, KeyPEM: pkcs8(t, x25519)}, "key_pem", "unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := material.Parse(tc.m)
			if b != nil {
				t.Errorf("Parse returned a bundle with its error")
			}
			checkErr(t, err, tc.field, tc.msg, append([]string{tc.m.KeyPEM, tc.m.CertPEM, tc.m.ChainPEM}, p.keyPEMs...)...)
		})
	}
}

func TestParseConcatenated(t *testing.T) {
	p := getPKI(t)
	leaf, inter2, inter1 := certs(p.leaf), certs(p.inter2), certs(p.inter1)
	key := pkcs8(t, p.leafKey)
	for _, tc := range []struct {
		name, data string
		chain      int
	}{
		{"cert, chain, key", leaf + inter2 + inter1 + key, 2},
		{"key, cert, chain", key + leaf + inter2 + inter1, 2},
		{"cert, key, chain", leaf + key + inter2 + inter1, 2},
		{"cert and key", leaf + key, 0},
		{"sec1 key", leaf + inter2 + sec1(t, p.leafKey), 1},
		{"rsa", certs(p.rsaLeaf) + inter2 + pkcs1(p.rsaKey), 1},
		{"text between blocks", "leaf:\n" + leaf + "chain:\n" + inter2 + inter1 + "key:\n" + key, 2},
		// A fullchain file beside the others repeats the leaf and chain.
		{"cert, chain, key, fullchain", leaf + inter2 + inter1 + key + leaf + inter2 + inter1, 2},
		{"cert, key, fullchain", leaf + key + leaf + inter2 + inter1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := material.ParseConcatenated("staged files", []byte(tc.data))
			if err != nil {
				t.Fatalf("ParseConcatenated: %v", err)
			}
			if len(b.Chain) != tc.chain {
				t.Fatalf("Chain has %d certificates, want %d", len(b.Chain), tc.chain)
			}
			if tc.chain == 2 && (!b.Leaf.Equal(p.leaf) || !b.Chain[0].Equal(p.inter2) || !b.Chain[1].Equal(p.inter1)) {
				t.Errorf("got leaf %s chain %s, %s", b.Leaf.Subject, b.Chain[0].Subject, b.Chain[1].Subject)
			}
			if err := b.Check(p.now, ""); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
	for _, tc := range []struct {
		name, data, field, msg string
	}{
		{"no key", leaf + inter2, "key_pem", "no PEM"},
		{"no certificate", key, "cert_pem", "no PEM certificate"},
		{"empty", "", "cert_pem", ""},
		{"two keys", leaf + key + key, "key_pem", "more than one"},
		{"certificate request", leaf + key + pemText("CERTIFICATE REQUEST", []byte{1, 2, 3}), "staged files", "CERTIFICATE REQUEST"},
		{"EC parameters", leaf + pemText("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}) + key, "staged files", "EC PARAMETERS"},
		{"openssh key", leaf + pemText("OPENSSH PRIVATE KEY", []byte{1, 2, 3}), "key_pem", ""},
		{"encrypted key", leaf + pemText("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}), "key_pem", "encrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := material.ParseConcatenated("staged files", []byte(tc.data))
			checkErr(t, err, tc.field, tc.msg, append([]string{tc.data}, p.keyPEMs...)...)
		})
	}
	// The bundle of a staged leaf and the wrong key parses; Check refuses it.
	b, err := material.ParseConcatenated("staged files", []byte(leaf+inter2+pkcs8(t, p.otherKey)))
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, b.Check(p.now, ""), "key_pem", "does not match", p.keyPEMs...)
}

func TestFirstCertificate(t *testing.T) {
	p := getPKI(t)
	leaf, inter2 := certs(p.leaf), certs(p.inter2)
	key := pkcs8(t, p.leafKey)
	for _, tc := range []struct {
		name, data string
		want       *x509.Certificate
		err        string
	}{
		{"leaf then chain", leaf + inter2, p.leaf, ""},
		{"chain first", inter2 + leaf, p.inter2, ""},
		{"key and text before it", "# site\n" + key + leaf, p.leaf, ""},
		{"no certificate", key, nil, "holds no PEM certificate"},
		{"empty", "", nil, "holds no PEM certificate"},
		{"junk certificate", pemText("CERTIFICATE", []byte{0x30, 0x03, 1, 2, 3}) + leaf, nil, "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := material.FirstCertificate([]byte(tc.data))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error saying %q", err, tc.err)
				}
				return
			}
			if err != nil || !c.Equal(tc.want) {
				t.Fatalf("got %v (%v), want %s", c, err, tc.want.Subject)
			}
		})
	}
}

func TestFingerprints(t *testing.T) {
	p := getPKI(t)
	b, err := material.Parse(p.good(t))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(p.leaf.Raw)
	want := hex.EncodeToString(sum[:])
	if got := b.LeafSHA256(); got != want {
		t.Errorf("LeafSHA256() = %s, want %s", got, want)
	}
	if got := material.Fingerprint(p.leaf.Raw); got != want {
		t.Errorf("Fingerprint() = %s, want %s", got, want)
	}
	if got := material.SHA256([]byte("abc")); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("SHA256(abc) = %s", got)
	}
	if got := material.SHA256(nil); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("SHA256(nil) = %s", got)
	}
}

func TestEncodeCerts(t *testing.T) {
	p := getPKI(t)
	if got := material.EncodeCerts(); len(got) != 0 {
		t.Errorf("EncodeCerts() = %q", got)
	}
	text := material.EncodeCerts(p.leaf, p.inter2)
	var got []*x509.Certificate
	for rest := text; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				t.Errorf("trailing text %q", rest)
			}
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	if len(got) != 2 || !got[0].Equal(p.leaf) || !got[1].Equal(p.inter2) {
		t.Errorf("EncodeCerts round trip gave %d certificates", len(got))
	}
}

func TestHostOf(t *testing.T) {
	for _, tc := range []struct{ endpoint, want string }{
		{"web-1.example.com:443", "web-1.example.com"},
		{"10.0.0.1:8443", "10.0.0.1"},
		{"[::1]:443", "::1"},
		{"web-1.example.com", "web-1.example.com"},
		{"::1", "::1"},
		{"", ""},
	} {
		if got := material.HostOf(tc.endpoint); got != tc.want {
			t.Errorf("HostOf(%q) = %q, want %q", tc.endpoint, got, tc.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &contract.FieldError{Field: "key_pem", Msg: "holds no PEM private key"}
	if got := e.Error(); got != "key_pem: holds no PEM private key" {
		t.Errorf("Error() = %q", got)
	}
}

// fuzzFields are the fields an error may name.
var fuzzFields = map[string]bool{"cert_pem": true, "chain_pem": true, "key_pem": true, "staged files": true}

func FuzzParse(f *testing.F) {
	p := getPKI(f)
	der, err := x509.MarshalPKCS8PrivateKey(p.leafKey)
	if err != nil {
		f.Fatal(err)
	}
	key := pemText("PRIVATE KEY", der)
	leaf, chain := certs(p.leaf), certs(p.inter2, p.inter1)
	f.Add(leaf, chain, key)
	f.Add(leaf+chain, "", key)
	f.Add(leaf, chain, pkcs1(p.rsaKey))
	f.Add(certs(p.rsaLeaf), certs(p.inter2), pkcs1(p.rsaKey))
	f.Add(leaf, certs(p.inter1, p.inter2), key)
	f.Add(certs(p.expired), chain, key)
	f.Add(key, chain, leaf)
	f.Add(leaf, key, key)
	f.Add("garbage", "", "hunter2")
	f.Add(leaf, "", pemText("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}))
	f.Add(leaf, "", pemText("OPENSSH PRIVATE KEY", der))
	f.Add(pemText("CERTIFICATE", der), "", key)
	f.Add(truncateBody(leaf, 101), "", truncateBody(key, 61))
	f.Fuzz(func(t *testing.T, certPEM, chainPEM, keyPEM string) {
		keyTexts := []string{keyPEM}
		// Key text put where a certificate belongs is key text all the same.
		for _, s := range []string{certPEM, chainPEM} {
			for rest := []byte(s); ; {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil {
					break
				}
				if strings.Contains(b.Type, "KEY") {
					keyTexts = append(keyTexts, string(pem.EncodeToMemory(&pem.Block{Type: "K", Bytes: b.Bytes})))
				}
			}
		}
		check := func(what string, err error) {
			if err == nil {
				return
			}
			if w := leak(err.Error(), keyTexts...); w != "" {
				t.Fatalf("%s: error %q shows key text %q", what, err, w)
			}
			var me *contract.FieldError
			if !errors.As(err, &me) || !fuzzFields[me.Field] {
				t.Fatalf("%s: error %q (%T) does not name a field", what, err, err)
			}
		}
		b, err := material.Parse(material.Material{CertPEM: certPEM, ChainPEM: chainPEM, KeyPEM: keyPEM})
		check("Parse", err)
		if err == nil {
			if b.Leaf == nil || b.Key == nil {
				t.Fatalf("Parse gave an incomplete bundle: %+v", b)
			}
			check("Check", b.Check(p.now, "web-1.example.com"))
			check("Check", b.Check(p.now, "10.0.0.1"))
			_ = b.LeafSHA256()
		}
		b, err = material.ParseConcatenated("staged files", []byte(certPEM+chainPEM+keyPEM))
		check("ParseConcatenated", err)
		if err == nil {
			check("Check", b.Check(p.now, ""))
		}
	})
}

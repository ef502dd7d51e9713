package pkcs12

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// chain is a test PKI: a leaf key (PKCS #8), certs leaf first then the
// intermediate, and the root.
type chain struct {
	key   []byte
	leaf  *x509.Certificate
	certs [][]byte
	root  []byte

	inter    *x509.Certificate
	interKey *ecdsa.PrivateKey
}

var serial int64

func mkcert(t *testing.T, cn string, issuer *x509.Certificate, issuerKey *ecdsa.PrivateKey, ca bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour).Truncate(time.Second), NotAfter: time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true, IsCA: ca, DNSNames: []string{cn},
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
		tmpl.DNSNames = nil
	}
	if issuer == nil {
		issuer, issuerKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &k.PublicKey, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// newChain is a root, an intermediate and a leaf named cn.
func newChain(t *testing.T, cn string) chain {
	t.Helper()
	root, rk := mkcert(t, "test root "+cn, nil, nil, true)
	inter, ik := mkcert(t, "test intermediate "+cn, root, rk, true)
	leaf, lk := mkcert(t, cn, inter, ik, false)
	key, err := x509.MarshalPKCS8PrivateKey(lk)
	if err != nil {
		t.Fatal(err)
	}
	return chain{key: key, leaf: leaf, certs: [][]byte{leaf.Raw, inter.Raw}, root: root.Raw, inter: inter, interKey: ik}
}

// renewed is a new leaf and key named cn from c's intermediate.
func (c chain) renewed(t *testing.T, cn string) chain {
	t.Helper()
	leaf, lk := mkcert(t, cn, c.inter, c.interKey, false)
	key, err := x509.MarshalPKCS8PrivateKey(lk)
	if err != nil {
		t.Fatal(err)
	}
	c.key, c.leaf, c.certs = key, leaf, [][]byte{leaf.Raw, c.inter.Raw}
	return c
}

// pemCert is der as PEM.
func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// crossPair is two CA certificates, each naming the other as issuer.
func crossPair(t *testing.T) ([]byte, []byte) {
	t.Helper()
	a, ak := mkcert(t, "A", nil, nil, true)
	b, bk := mkcert(t, "B", nil, nil, true)
	x, _ := mkcert(t, "A", b, bk, true)
	y, _ := mkcert(t, "B", a, ak, true)
	return x.Raw, y.Raw
}

// write writes files into dir and returns their paths.
func write(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func pemKey(t *testing.T, der []byte) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// hasCert reports whether the store holds the certificate der.
func (s *Store) hasCert(der []byte) bool {
	for _, b := range s.bags {
		if b.isCert() && bytes.Equal(b.cert, der) {
			return true
		}
	}
	return false
}

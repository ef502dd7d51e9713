package testsuite

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"time"
)

// OddLeaf shapes a leaf no server should be handed: a CA certificate, or
// one for a weak key. The zero value is an ordinary leaf.
type OddLeaf struct {
	// IsCA marks the leaf CA:TRUE (basic constraints).
	IsCA bool
	// Key is the leaf's key; nil means a fresh P-256 key.
	Key crypto.Signer
}

// IssueOdd mints a localhost leaf shaped by odd, signed by the
// intermediate. Its key is PEM PKCS #8.
func (ca *CA) IssueOdd(odd OddLeaf) (Set, error) {
	key := odd.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return Set{}, err
		}
		key = k
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:  pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if odd.IsCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	return ca.IssueTemplate(tmpl, key)
}

// WeakRSAKey is an RSA key of bits bits (1024: one certctl must refuse).
func WeakRSAKey(bits int) (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }

// Package localca is the local CA issuer: it mints a key and a certificate
// signed by a CA whose certificate and key are files on the certctl worker,
// so renewal runs end to end on one machine.
//
// Nothing here ever puts key bytes in an error: messages name files and
// formats only.
package localca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/issuers"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/profile"
)

// MaxFileSize bounds the CA files.
const MaxFileSize = 1 << 20

// Backdate is how far before now a leaf becomes valid, for clocks a little
// behind.
const Backdate = 5 * time.Minute

// errf is a problem with the CA or the request: a *contract.FieldError
// naming the profile field at fault.
func errf(field, format string, args ...any) error {
	return contract.Fieldf(field, format, args...)
}

// CA is a loaded signing CA.
type CA struct {
	Cert *x509.Certificate
	// Chain is the CA certificate followed by whatever else its file holds
	// (its own issuers): the chain served after a leaf.
	Chain []*x509.Certificate
	key   crypto.Signer
}

// Load reads the CA certificate (first PEM certificate of certPath; the
// rest is its chain) and its private key. The key file must not be readable
// by group or others.
func Load(certPath, keyPath string) (*CA, error) {
	certPEM, err := readFile("issuer.ca_cert", certPath)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	rest := certPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, errf("issuer.ca_cert", "%s: PEM block %d is not a CERTIFICATE", certPath, len(chain)+1)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, errf("issuer.ca_cert", "%s: certificate %d does not parse: %v", certPath, len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errf("issuer.ca_cert", "%s holds no PEM certificate", certPath)
	}
	ca := chain[0]
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return nil, errf("issuer.ca_cert", "%s: %s is not a CA certificate (basic constraints)", certPath, ca.Subject)
	}
	if ca.KeyUsage != 0 && ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errf("issuer.ca_cert", "%s: %s may not sign certificates (key usage)", certPath, ca.Subject)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, errf("issuer.ca_key", "%v", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, errf("issuer.ca_key", "%s is mode %04o: a CA key must be 0600 or stricter", keyPath, fi.Mode().Perm())
	}
	keyPEM, err := readFile("issuer.ca_key", keyPath)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyPath, keyPEM)
	if err != nil {
		return nil, err
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pk, ok := key.Public().(equaler); !ok || !pk.Equal(ca.PublicKey) {
		return nil, errf("issuer.ca_key", "%s does not belong to the CA certificate %s", keyPath, ca.Subject)
	}
	return &CA{Cert: ca, Chain: chain, key: key}, nil
}

func readFile(field, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, errf(field, "%v", err)
	}
	if fi.Size() > MaxFileSize {
		return nil, errf(field, "%s is larger than %d bytes", path, MaxFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errf(field, "%v", err)
	}
	return b, nil
}

// parseKey reads one PEM private key. Errors name the file and the format,
// never the block type's words or any byte of the key.
func parseKey(path string, data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errf("issuer.ca_key", "%s holds no PEM key", path)
	}
	var key any
	var err error
	switch {
	case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
		return nil, errf("issuer.ca_key", "%s is encrypted; the worker signs unattended and needs it unencrypted (protect it with file permissions)", path)
	case b.Type == "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case b.Type == "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case b.Type == "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, errf("issuer.ca_key", "%s: want a PKCS #8, SEC 1 (EC) or PKCS #1 (RSA) key in PEM", path)
	}
	if err != nil {
		return nil, errf("issuer.ca_key", "%s: the key does not parse", path)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, errf("issuer.ca_key", "%s: unsupported key type %T", path, key)
	}
	return s, nil
}

// Request and Issued are the issuers package's.
type (
	Request = issuers.Request
	Issued  = issuers.Issued
)

func init() { issuers.Register(profile.IssuerLocalCA, issuer{}) }

// issuer is the registered localca: the CA the profile's issuer.ca_cert and
// issuer.ca_key name, loaded for each issue.
type issuer struct{}

func (issuer) Issue(cfg profile.Issuer, req Request, now time.Time) (*Issued, error) {
	ca, err := Load(cfg.CACert, cfg.CAKey)
	if err != nil {
		return nil, err
	}
	return ca.Issue(req, now)
}

// Issue mints a fresh key and a leaf for it, valid from now-Backdate for
// Validity (never past the CA's own expiry), checked as material before it
// is returned.
func (ca *CA) Issue(req Request, now time.Time) (*Issued, error) {
	if len(req.SANs) == 0 {
		return nil, errf("sans", "at least one DNS name or IP address is required")
	}
	key, err := newKey(req.KeyType)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               req.Subject.Name(),
		NotBefore:             now.Add(-Backdate),
		NotAfter:              now.Add(req.Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if _, isRSA := key.(*rsa.PrivateKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, s := range req.SANs {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, errf("issuer.ca_cert", "the CA %s expired at %s", ca.Cert.Subject, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign the leaf for %s: %w", tmpl.Subject, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode the new key: %T", key)
	}
	m := material.Material{
		CertPEM:  string(material.EncodeCerts(leaf)),
		ChainPEM: string(material.EncodeCerts(ca.Chain...)),
		KeyPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
	}
	b, err := material.Parse(m)
	if err != nil {
		return nil, fmt.Errorf("the minted material does not parse: %w", err)
	}
	if err := b.Check(now, ""); err != nil {
		return nil, fmt.Errorf("the minted material does not check: %w", err)
	}
	return &Issued{Material: m, Leaf: leaf, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Issuer: ca.Cert.Subject.String()}, nil
}

func newKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case profile.KeyECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case profile.KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, errf("key_type", "%q: want %s or %s", keyType, profile.KeyECDSAP256, profile.KeyRSA2048)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n.Add(n, big.NewInt(1))
}

// Create writes a new self-signed CA (ECDSA P-256) to certPath (0644) and
// keyPath (0600), for a dev or test machine. It refuses to overwrite.
func Create(certPath, keyPath, commonName string, validity time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: commonName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := bytes.NewReader(data).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

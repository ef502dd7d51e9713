// Package material parses and checks certificate material: a leaf, its chain
// and its private key. Nothing here ever puts key bytes into an error.
package material

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"strings"
	"time"
)

// Material is what an operator hands to a deploy, as PEM text.
type Material struct {
	CertPEM  string `json:"cert_pem"`
	ChainPEM string `json:"chain_pem,omitempty"`
	KeyPEM   string `json:"key_pem"`
}

// Error is a problem with the material; Field names the input at fault.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

func errf(field, format string, args ...any) error {
	return &Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Bundle is parsed material.
type Bundle struct {
	Leaf  *x509.Certificate
	Chain []*x509.Certificate // issuer of Leaf first
	Key   crypto.Signer
}

// Parse reads the material. A cert_pem holding several certificates (a
// "fullchain") contributes the extras to the chain, ahead of chain_pem.
func Parse(m Material) (*Bundle, error) {
	certs, err := parseCerts("cert_pem", m.CertPEM, true)
	if err != nil {
		return nil, err
	}
	chain, err := parseCerts("chain_pem", m.ChainPEM, false)
	if err != nil {
		return nil, err
	}
	key, err := parseKey("key_pem", m.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &Bundle{Leaf: certs[0], Chain: append(certs[1:], chain...), Key: key}, nil
}

// ParseConcatenated reads certificates and one key from a single PEM stream in
// any order of blocks, as the files of a deploy hold them once staged: the
// first certificate is the leaf.
func ParseConcatenated(field string, data []byte) (*Bundle, error) {
	var certs, keys bytes.Buffer
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			_ = pem.Encode(&certs, b)
		} else if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			_ = pem.Encode(&keys, b)
		} else {
			return nil, errf(field, "unexpected PEM block %s", blockType(b.Type))
		}
	}
	return Parse(Material{CertPEM: certs.String(), KeyPEM: keys.String()})
}

func parseCerts(field, text string, required bool) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, errf(field, "PEM block %d is %s, want CERTIFICATE", len(out)+1, blockType(b.Type))
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, errf(field, "certificate %d does not parse: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errf(field, "holds text that is not PEM after certificate %d", len(out))
	}
	if required && len(out) == 0 {
		return nil, errf(field, "holds no PEM certificate")
	}
	return out, nil
}

func parseKey(field, text string) (crypto.Signer, error) {
	b, rest := pem.Decode([]byte(text))
	if b == nil {
		return nil, errf(field, "holds no PEM private key")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errf(field, "holds more than one PEM block")
	}
	// Messages name key formats, never the PEM type: an error travels into
	// workflow history, which must never show "PRIVATE KEY".
	var key any
	var err error
	var format string
	switch {
	case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
		return nil, errf(field, "is encrypted; servers reload unattended and need an unencrypted key")
	case b.Type == "PRIVATE KEY":
		format = "PKCS #8"
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case b.Type == "RSA PRIVATE KEY":
		format = "PKCS #1 RSA"
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case b.Type == "EC PRIVATE KEY":
		format = "SEC 1 EC"
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case strings.Contains(b.Type, "PRIVATE KEY"):
		return nil, errf(field, "holds an unsupported kind of private key; want PEM of PKCS #8, PKCS #1 (RSA) or SEC 1 (EC)")
	default:
		return nil, errf(field, "PEM block is %s, want a private key", blockType(b.Type))
	}
	if err != nil {
		// The parser's own message never holds key bytes, but keep it generic.
		return nil, errf(field, "%s private key does not parse", format)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, errf(field, "unsupported private key type %T", key)
	}
	return s, nil
}

// blockType names a PEM block type for an error message: quoted, unless it is
// a private key's, which is named without the words "PRIVATE KEY".
func blockType(t string) string {
	if strings.Contains(t, "PRIVATE KEY") {
		return "a private key"
	}
	return fmt.Sprintf("%q", t)
}

// Check is what must hold before anything is written: the key belongs to the
// leaf, the chain links to the leaf in order, the leaf is valid at now (a
// zero now skips this), and host (when not empty) is covered by the leaf.
func (b *Bundle) Check(now time.Time, host string) error {
	if !publicKeysEqual(b.Key.Public(), b.Leaf.PublicKey) {
		return errf("key_pem", "private key does not match the certificate (leaf %s)", b.Leaf.Subject)
	}
	prev := b.Leaf
	for i, c := range b.Chain {
		if err := prev.CheckSignatureFrom(c); err != nil {
			return errf("chain_pem", "certificate %d (%s) did not sign %s: chain out of order or not linking", i+1, c.Subject, prev.Subject)
		}
		prev = c
	}
	// A zero now skips the validity window: a deploy forced on purpose.
	if !now.IsZero() && now.Before(b.Leaf.NotBefore) {
		return errf("cert_pem", "certificate is not valid until %s (deploy it anyway with --force-validity)", b.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if !now.IsZero() && now.After(b.Leaf.NotAfter) {
		return errf("cert_pem", "certificate expired at %s (deploy it anyway with --force-validity)", b.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if host != "" {
		if err := b.Leaf.VerifyHostname(host); err != nil {
			return errf("cert_pem", "certificate does not cover the verify host %q (SANs: %s)", host, sans(b.Leaf))
		}
	}
	return nil
}

// LeafSHA256 is the hex SHA-256 of the leaf's DER, the fingerprint compared
// with what a server serves.
func (b *Bundle) LeafSHA256() string { return Fingerprint(b.Leaf.Raw) }

// Fingerprint is the hex SHA-256 of der.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// SHA256 is the hex SHA-256 of arbitrary bytes (file contents).
func SHA256(b []byte) string { return Fingerprint(b) }

// EncodeCerts writes certificates as PEM.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	switch k := a.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k.(equaler).Equal(b)
	}
	return false
}

func sans(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// HostOf returns the host part of a host:port endpoint.
func HostOf(endpoint string) string {
	h, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return endpoint
	}
	return h
}

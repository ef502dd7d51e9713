package material

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"strings"
)

// Name is how a message names a certificate: its subject's common name,
// else its first subject alternative name (DNS, IP, email, URI, in that
// order), else "sha256:" and the first 16 hex digits of its fingerprint. An
// ACME leaf often has an empty subject, so the subject itself would read
// "()".
func Name(c *x509.Certificate) string {
	if c == nil {
		return "(none)"
	}
	if cn := strings.TrimSpace(c.Subject.CommonName); cn != "" {
		return cn
	}
	switch {
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String()
	case len(c.EmailAddresses) > 0:
		return c.EmailAddresses[0]
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	}
	return "sha256:" + Fingerprint(c.Raw)[:16]
}

// Issued reports whether c was issued by someone else (its issuer is not
// its subject): a leaf from a CA, which clients verify only through the
// intermediates the server sends with it. A self-signed leaf needs none.
func Issued(c *x509.Certificate) bool {
	return !bytes.Equal(c.RawIssuer, c.RawSubject)
}

// CertRef is a certificate as a step's input or result refers to it: its
// SHA-256 and its Name.
type CertRef struct {
	SHA256 string `json:"sha256"`
	Name   string `json:"name"`
}

// Ref is c's CertRef.
func Ref(c *x509.Certificate) CertRef { return CertRef{SHA256: Fingerprint(c.Raw), Name: Name(c)} }

// Refs are the CertRefs of certs, in order.
func Refs(certs ...*x509.Certificate) []CertRef {
	out := make([]CertRef, 0, len(certs))
	for _, c := range certs {
		out = append(out, Ref(c))
	}
	return out
}

// String is the certificate's name with its fingerprint's first 12 hex
// digits, so two certificates of one name (an old and a new leaf) differ.
func (r CertRef) String() string {
	if strings.HasPrefix(r.Name, "sha256:") || len(r.SHA256) < 12 {
		return r.Name
	}
	return fmt.Sprintf("%s (sha256:%s)", r.Name, r.SHA256[:12])
}

// RefList says certificates in order: "a (sha256:…), then b (sha256:…)", or
// "no certificate".
func RefList(refs []CertRef) string {
	if len(refs) == 0 {
		return "no certificate"
	}
	var s []string
	for _, r := range refs {
		s = append(s, r.String())
	}
	return strings.Join(s, ", then ")
}

// ServedChain is the bundle's certificates as a server must send them: the leaf,
// then each intermediate in order.
func (b *Bundle) ServedChain() []CertRef {
	return Refs(append([]*x509.Certificate{b.Leaf}, b.Chain...)...)
}

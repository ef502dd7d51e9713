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
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/certctl/certctl/contract"
)

// Material is what an operator hands to a deploy, as PEM text.
type Material struct {
	CertPEM  string `json:"cert_pem"`
	ChainPEM string `json:"chain_pem,omitempty"`
	KeyPEM   string `json:"key_pem"`
}

// errf is a problem with the material: a *contract.FieldError naming the
// input at fault (cert_pem, chain_pem, key_pem).
func errf(field, format string, args ...any) error {
	return contract.Fieldf(field, format, args...)
}

// Bundle is parsed material.
type Bundle struct {
	Leaf  *x509.Certificate
	Chain []*x509.Certificate // issuer of Leaf first
	Key   crypto.Signer

	// keyType and keyDER are the key as it is written: its standard PEM
	// type and its DER re-encoded from the parsed key.
	keyType string
	keyDER  []byte
	// fromCert is how many of Chain came from cert_pem (a fullchain's).
	fromCert int
}

// Limits on what material may be. MaxPEMSize bounds each field: a
// certificate, a chain of intermediates or a key is a few kilobytes, so
// anything near this is text that does not belong in a server's files.
const (
	MaxPEMSize = 64 << 10
	MinRSABits = 2048
	MinECBits  = 256 // P-256
)

// Parse reads the material. A cert_pem holding several certificates (a
// "fullchain") contributes the extras to the chain, ahead of chain_pem.
//
// It accepts what servers read: text around the PEM blocks (comments), CRLF
// line ends, an EC PARAMETERS block ahead of an EC key (`openssl ecparam
// -genkey` writes one). None of that is kept: LeafPEM, ChainPEM and KeyPEM
// re-encode the parsed certificates and key. It refuses a leaf that is a CA
// certificate and keys weaker than RSA 2048 or EC P-256.
func Parse(m Material) (*Bundle, error) {
	certs, err := parseCerts("cert_pem", m.CertPEM, true)
	if err != nil {
		return nil, err
	}
	if c := certs[0]; c.BasicConstraintsValid && c.IsCA {
		return nil, errf("cert_pem", "certificate 1 (%s) is a CA certificate (basic constraints CA:TRUE), not a server's leaf: "+
			"put the server's own certificate first, its issuers after it or in chain_pem", Name(c))
	}
	chain, err := parseCerts("chain_pem", m.ChainPEM, false)
	if err != nil {
		return nil, err
	}
	key, typ, der, err := parseKey("key_pem", m.KeyPEM)
	if err != nil {
		return nil, err
	}
	return &Bundle{Leaf: certs[0], Chain: append(certs[1:], chain...), Key: key, keyType: typ, keyDER: der, fromCert: len(certs) - 1}, nil
}

// ParseConcatenated reads certificates and one key from a single PEM stream in
// any order of blocks, as the files of a deploy hold them once staged: the
// first certificate is the leaf. A certificate that comes again, byte for
// byte, counts once: a fullchain file beside the cert and chain files holds
// the same leaf and chain a second time.
func ParseConcatenated(field string, data []byte) (*Bundle, error) {
	var certs, keys bytes.Buffer
	blocks, err := decodeBlocks(field, data)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, b := range blocks {
		if b.Type == "CERTIFICATE" {
			if !seen[string(b.Bytes)] {
				seen[string(b.Bytes)] = true
				_ = pem.Encode(&certs, b)
			}
		} else if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			_ = pem.Encode(&keys, b)
		} else {
			return nil, errf(field, "unexpected PEM block %s", blockType(b.Type))
		}
	}
	return Parse(Material{CertPEM: certs.String(), KeyPEM: keys.String()})
}

// ErrNoCertificate is FirstCertificate's error for data without a
// CERTIFICATE block.
var ErrNoCertificate = errors.New("holds no PEM certificate")

// FirstCertificate is the first CERTIFICATE block of a PEM file, parsed: the
// leaf of a cert (or fullchain, or combined) file as a server reads it. Text
// and blocks of other types before it are skipped.
func FirstCertificate(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, ErrNoCertificate
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("holds a first certificate that does not parse: %w", err)
		}
		return c, nil
	}
}

var (
	pemBegin = []byte("-----BEGIN ")
	pemEnd   = []byte("-----END ")
)

// decodeBlocks returns the PEM blocks of data in order. It reads PEM as
// OpenSSL does (nginx, haproxy, apache, postfix, dovecot all read through
// it): text outside the blocks is skipped; a BEGIN line counts only at the
// start of a line (an indented one is text, as OpenSSL reads it); a block
// whose base64 holds a blank line is refused, as OpenSSL refuses it. A BEGIN
// line whose block does not decode (no END line, bad base64, END of another
// type) is refused, never skipped over.
func decodeBlocks(field string, data []byte) ([]*pem.Block, error) {
	if len(data) > MaxPEMSize {
		return nil, errf(field, "is %d bytes, more than the %d any certificate, chain or key needs: give only the PEM blocks", len(data), MaxPEMSize)
	}
	var out []*pem.Block
	rest := data
	for {
		i := bytes.Index(rest, pemBegin)
		if i < 0 {
			return out, nil
		}
		if i > 0 && rest[i-1] != '\n' {
			// Not at the start of a line: text, as OpenSSL reads it.
			rest = rest[i+len(pemBegin):]
			continue
		}
		rest = rest[i:]
		n := len(out) + 1
		j := bytes.Index(rest, pemEnd)
		if j < 0 || bytes.Contains(rest[len(pemBegin):j], pemBegin) {
			return nil, errf(field, "PEM block %d has no END line: the text is cut short or not PEM", n)
		}
		end := len(rest)
		if k := bytes.IndexByte(rest[j:], '\n'); k >= 0 {
			end = j + k + 1
		}
		if blankInBase64(rest[:j]) {
			return nil, errf(field, "PEM block %d has a blank line inside its base64, which servers (OpenSSL) refuse: remove it", n)
		}
		b, tail := pem.Decode(rest[:end])
		if b == nil || len(bytes.TrimSpace(tail)) > 0 {
			return nil, errf(field, "PEM block %d does not decode (bad base64, or BEGIN and END lines that differ): it is not PEM", n)
		}
		out = append(out, b)
		rest = rest[end:]
	}
}

// blankInBase64 reports whether a block (its BEGIN line up to its END line)
// has an empty line among its base64 lines. Headers ("Name: value" lines)
// and the one blank line after them are not base64.
func blankInBase64(block []byte) bool {
	lines := strings.Split(strings.ReplaceAll(string(block), "\r", ""), "\n")
	if len(lines) > 0 {
		lines = lines[1:] // the BEGIN line
	}
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // the END line's own start
	}
	i := 0
	if len(lines) > 0 && strings.Contains(lines[0], ":") {
		for i < len(lines) && strings.Contains(lines[i], ":") {
			i++
		}
		if i < len(lines) && strings.TrimSpace(lines[i]) == "" {
			i++
		}
	}
	for ; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == "" {
			return true
		}
	}
	return false
}

func parseCerts(field, text string, required bool) ([]*x509.Certificate, error) {
	blocks, err := decodeBlocks(field, []byte(text))
	if err != nil {
		return nil, err
	}
	if len(blocks) == 0 && IsDER([]byte(text)) {
		return nil, errf(field, "%s", DERAdvice(field, "FILE"))
	}
	var out []*x509.Certificate
	for i, b := range blocks {
		if b.Type == "TRUSTED CERTIFICATE" {
			// nginx and haproxy read it (OpenSSL's X509_AUX), but its trust
			// settings are a trust store's, not a served certificate's.
			return nil, errf(field, "PEM block %d is a TRUSTED CERTIFICATE (a certificate with OpenSSL trust settings, for a trust store): "+
				"convert it with `openssl x509 -in FILE -out FILE.pem`", i+1)
		}
		// "X509 CERTIFICATE" is OpenSSL's old name for the same block.
		if b.Type != "CERTIFICATE" && b.Type != "X509 CERTIFICATE" {
			return nil, errf(field, "PEM block %d is %s, want CERTIFICATE", i+1, blockType(b.Type))
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, errf(field, "certificate %d does not parse: %v", i+1, err)
		}
		out = append(out, c)
	}
	switch {
	case required && len(out) == 0:
		return nil, errf(field, "holds no PEM certificate")
	case len(out) == 0 && len(bytes.TrimSpace([]byte(text))) > 0:
		return nil, errf(field, "holds text but no PEM certificate: give the PEM file of the intermediates, or nothing")
	}
	return out, nil
}

// parseKey reads the one private key of text, and returns it with the PEM
// type and DER it is written as.
func parseKey(field, text string) (crypto.Signer, string, []byte, error) {
	blocks, err := decodeBlocks(field, []byte(text))
	if err != nil {
		return nil, "", nil, err
	}
	var b *pem.Block
	params := false
	for i, blk := range blocks {
		switch {
		case blk.Type == "EC PARAMETERS":
			// Servers skip it, before or after the key; the curve is the
			// key's own.
			params = true
		case blk.Type == "CERTIFICATE":
			// A key file that holds its certificate too (a combined
			// file): servers read the key and skip the rest. Nothing of
			// it is written.
		case b != nil:
			return nil, "", nil, errf(field, "holds more than one PEM block after the key (block %d is %s): give one key", i+1, blockType(blk.Type))
		default:
			b = blk
		}
	}
	if b == nil && IsDER([]byte(text)) {
		return nil, "", nil, errf(field, "%s", DERAdvice(field, "FILE"))
	}
	if b == nil && len(blocks) > 0 && blocks[0].Type == "CERTIFICATE" {
		return nil, "", nil, errf(field, "holds a certificate but no private key: give the key's file (certbot: privkey.pem)")
	}
	if b == nil {
		return nil, "", nil, errf(field, "holds no PEM private key")
	}
	// Messages name key formats, never the PEM type: an error travels into
	// workflow history, which must never show "PRIVATE KEY".
	var key any
	var format string
	switch {
	case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
		return nil, "", nil, errf(field, "is encrypted; servers reload unattended and need an unencrypted key")
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
		return nil, "", nil, errf(field, "holds an unsupported kind of private key; want PEM of PKCS #8, PKCS #1 (RSA) or SEC 1 (EC)")
	default:
		return nil, "", nil, errf(field, "PEM block is %s, want a private key", blockType(b.Type))
	}
	if err != nil {
		// The parser's own message never holds key bytes, but keep it generic.
		return nil, "", nil, errf(field, "%s private key does not parse", format)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, "", nil, errf(field, "unsupported private key type %T", key)
	}
	if _, ec := s.(*ecdsa.PrivateKey); params && !ec {
		return nil, "", nil, errf(field, "has an EC PARAMETERS block before a key that is not an EC key: give the key alone")
	}
	if err := checkStrength(field, s); err != nil {
		return nil, "", nil, err
	}
	// Written re-encoded, in the format it came in: what the operator gave,
	// without anything the parser skipped (attributes, trailing bytes).
	var der []byte
	switch b.Type {
	case "RSA PRIVATE KEY":
		der = x509.MarshalPKCS1PrivateKey(s.(*rsa.PrivateKey))
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(s.(*ecdsa.PrivateKey))
	default:
		der, err = x509.MarshalPKCS8PrivateKey(s)
	}
	if err != nil {
		return nil, "", nil, errf(field, "%s private key cannot be re-encoded", format)
	}
	return s, b.Type, der, nil
}

// checkStrength refuses keys servers and clients no longer trust.
func checkStrength(field string, k crypto.Signer) error {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return errf(field, "RSA key is %d bits, fewer than %d: issue the certificate for a new key of %d bits or more (or EC P-256)", n, MinRSABits, MinRSABits)
		}
	case *ecdsa.PrivateKey:
		if p := k.Curve.Params(); p.BitSize < MinECBits {
			return errf(field, "EC key is on %s, smaller than P-256: issue the certificate for a new key on P-256, P-384 or P-521", p.Name)
		}
	}
	return nil
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
		return errf("key_pem", "private key does not match the certificate (leaf %s)", Name(b.Leaf))
	}
	if err := noRepeats(append([]*x509.Certificate{b.Leaf}, b.Chain[:b.fromCert]...), b.Chain[b.fromCert:]); err != nil {
		return err
	}
	prev := b.Leaf
	for i, c := range b.Chain {
		if err := prev.CheckSignatureFrom(c); err != nil {
			return errf("chain_pem", "certificate %d (%s) did not sign %s: chain out of order or not linking", i+1, Name(c), Name(prev))
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
			msg := fmt.Sprintf("certificate does not cover the verify host %q (SANs: %s)", host, sans(b.Leaf))
			if isLoopback(host) {
				// An endpoint on loopback (a verify from the host itself)
				// is dialed by address; the name to check is the site's.
				msg += fmt.Sprintf(": the verify endpoint is on loopback, so set post_deploy_verify.server_name to a name the certificate covers (%s): "+
					"verify sends it as SNI and checks the leaf against it", firstName(b.Leaf))
			}
			return errf("cert_pem", "%s", msg)
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

// LeafPEM is the leaf as it is written: one CERTIFICATE block.
func (b *Bundle) LeafPEM() []byte { return EncodeCerts(b.Leaf) }

// ChainPEM is the chain as it is written, issuer of the leaf first.
func (b *Bundle) ChainPEM() []byte { return EncodeCerts(b.Chain...) }

// KeyPEM is the key as it is written: one block of its standard type (PKCS
// #8, PKCS #1 or SEC 1, the format it came in) holding its re-encoded DER,
// no headers, nothing around it.
func (b *Bundle) KeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: b.keyType, Bytes: b.keyDER})
}

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

// isLoopback: host is a loopback address or "localhost".
func isLoopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	return strings.EqualFold(host, "localhost")
}

// firstName is the leaf's first DNS name, else its Name.
func firstName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return Name(c)
}

// noRepeats refuses a certificate given twice: cert_pem's (a fullchain)
// again in chain_pem — `--cert fullchain.pem --chain chain.pem` — or one
// twice within a field. Servers would send it twice.
func noRepeats(certs, chain []*x509.Certificate) error {
	inCert := map[string]bool{}
	for i, c := range certs {
		if inCert[string(c.Raw)] {
			return errf("cert_pem", "holds certificate %d (%s) twice: give each certificate once", i+1, Name(c))
		}
		inCert[string(c.Raw)] = true
	}
	inChain := map[string]bool{}
	var repeated []string
	for i, c := range chain {
		switch {
		case inCert[string(c.Raw)]:
			repeated = append(repeated, Name(c))
		case inChain[string(c.Raw)]:
			return errf("chain_pem", "holds certificate %d (%s) twice: give each intermediate once", i+1, Name(c))
		}
		inChain[string(c.Raw)] = true
	}
	if len(repeated) > 0 {
		return errf("chain_pem", "the chain repeats certificates already in cert_pem (%s): cert_pem is a fullchain already, so give no chain_pem, "+
			"or give only the leaf in cert_pem (certbot: cert.pem with chain.pem, or fullchain.pem alone)", strings.Join(repeated, ", "))
	}
	return nil
}

// HostOf returns the host part of a host:port endpoint.
func HostOf(endpoint string) string {
	h, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return endpoint
	}
	return h
}

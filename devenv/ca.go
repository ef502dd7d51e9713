// Package devenv is the embedded default `certctl dev` runs, and the ground
// the integration tests (package testsuite) stand on: temporal-dev.yaml and
// the Temporal dev server from the temporal CLI in the tool cache, child
// processes, a private nginx on loopback, a throwaway CA, a host policy
// file. Production code may import it: it holds no test scaffolding.
package devenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/certctl/certctl/material"
)

// CA is a root and an intermediate that issue leaves.
type CA struct {
	Root, Intermediate       *x509.Certificate
	rootKey, intermediateKey crypto.Signer
}

// Set is one leaf with its chain and key, as PEM, plus its fingerprint.
type Set struct {
	material.Material
	LeafSHA256 string
}

// NewCA mints a fresh root and intermediate.
func NewCA(name string) (*CA, error) {
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name + " Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	root, err := sign(rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	intKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	intTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name + " Intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign,
	}
	inter, err := sign(intTmpl, root, intKey.Public(), rootKey)
	if err != nil {
		return nil, err
	}
	return &CA{Root: root, Intermediate: inter, rootKey: rootKey, intermediateKey: intKey}, nil
}

// LeafOptions shape a leaf; zero values give a one-day leaf for localhost
// and 127.0.0.1.
type LeafOptions struct {
	CommonName          string
	DNSNames            []string
	IPs                 []net.IP
	NotBefore, NotAfter time.Time
}

// Issue mints a leaf signed by the intermediate; the chain is the
// intermediate.
func (ca *CA) Issue(o LeafOptions) (Set, error) {
	if o.CommonName == "" {
		o.CommonName = "localhost"
	}
	if o.DNSNames == nil && o.IPs == nil {
		o.DNSNames, o.IPs = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Minute)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(24 * time.Hour)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Set{}, err
	}
	return ca.IssueTemplate(&x509.Certificate{
		Subject:  pkix.Name{CommonName: o.CommonName},
		DNSNames: o.DNSNames, IPAddresses: o.IPs, NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, key)
}

// IssueTemplate signs tmpl for key with the intermediate (a fresh serial
// when tmpl has none) and returns the set: how a test shapes a leaf Issue
// would not mint.
func (ca *CA) IssueTemplate(tmpl *x509.Certificate, key crypto.Signer) (Set, error) {
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = serial()
	}
	leaf, err := sign(tmpl, ca.Intermediate, key.Public(), ca.intermediateKey)
	if err != nil {
		return Set{}, err
	}
	return newSet(leaf, ca.Intermediate, key)
}

// newSet is leaf with its chain and key (PEM PKCS #8).
func newSet(leaf, chain *x509.Certificate, key crypto.Signer) (Set, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Set{}, err
	}
	return Set{
		Material: material.Material{
			CertPEM:  string(material.EncodeCerts(leaf)),
			ChainPEM: string(material.EncodeCerts(chain)),
			KeyPEM:   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		},
		LeafSHA256: material.Fingerprint(leaf.Raw),
	}, nil
}

// SelfSigned is a localhost leaf that is its own trust anchor (its chain is
// itself): what a fresh server install serves before certctl deploys.
func SelfSigned() (Set, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Set{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "localhost (self-signed)"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
	}
	cert, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return Set{}, err
	}
	return newSet(cert, cert, key)
}

// Write puts the set's files in dir as cert.pem, chain.pem and key.pem (key
// 0600) and returns their paths.
func (s Set) Write(dir string) (cert, chain, key string, err error) {
	cert, chain, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		p, v string
		m    os.FileMode
	}{{cert, s.CertPEM, 0o644}, {chain, s.ChainPEM, 0o644}, {key, s.KeyPEM, 0o600}} {
		if err = os.WriteFile(f.p, []byte(f.v), f.m); err != nil {
			return
		}
	}
	return
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// ECParamsKeyPEM is s's P-256 key as `openssl ecparam -name prime256v1
// -genkey` writes it: an EC PARAMETERS block, then the SEC 1 EC PRIVATE KEY
// block. The second result is that key block alone, as certctl writes it.
func (s Set) ECParamsKeyPEM() (string, string, error) {
	b, _ := pem.Decode([]byte(s.KeyPEM))
	if b == nil {
		return "", "", errors.New("set has no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return "", "", err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return "", "", errors.New("set's key is not EC")
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		return "", "", err
	}
	params := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}})
	keyBlock := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	return string(params) + string(keyBlock), string(keyBlock), nil
}

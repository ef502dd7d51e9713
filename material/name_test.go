package material_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/material"
)

// A certificate is named by its CN, else its first SAN, else a SHA-256
// prefix: never "()" or empty, as an ACME leaf without a subject used to
// read.
func TestName(t *testing.T) {
	p := getPKI(t)
	now := p.now
	key, err := ecKey()
	if err != nil {
		t.Fatal(err)
	}
	mk := func(tmpl *x509.Certificate) *x509.Certificate {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(time.Hour)
		c, err := create(tmpl, nil, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	u, _ := url.Parse("spiffe://example.org/web")
	noNames := mk(&x509.Certificate{})
	for _, tc := range []struct {
		name string
		c    *x509.Certificate
		want string
	}{
		{"common name", p.leaf, "web-1.example.com"},
		{"DNS SAN of a subject-less ACME leaf", mk(&x509.Certificate{DNSNames: []string{"acme.example.com", "www.acme.example.com"}}), "acme.example.com"},
		{"IP SAN", mk(&x509.Certificate{IPAddresses: []net.IP{net.ParseIP("192.0.2.7")}}), "192.0.2.7"},
		{"email SAN", mk(&x509.Certificate{EmailAddresses: []string{"ops@example.com"}}), "ops@example.com"},
		{"URI SAN", mk(&x509.Certificate{URIs: []*url.URL{u}}), "spiffe://example.org/web"},
		{"blank CN falls to the SAN", mk(&x509.Certificate{Subject: pkix.Name{CommonName: " "}, DNSNames: []string{"b.example.com"}}), "b.example.com"},
		{"nothing to go by", noNames, "sha256:" + material.Fingerprint(noNames.Raw)[:16]},
	} {
		if got := material.Name(tc.c); got != tc.want {
			t.Errorf("%s: Name = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A subject-less leaf in an error is named, not "()".
func TestSubjectlessLeafNamedInErrors(t *testing.T) {
	p := getPKI(t)
	key, err := ecKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := create(&x509.Certificate{DNSNames: []string{"acme.example.com"}, NotBefore: p.now.Add(-time.Hour), NotAfter: p.now.Add(time.Hour)}, nil, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	// inter1 did not sign the (self-signed) leaf.
	b, err := material.Parse(material.Material{CertPEM: certs(leaf), ChainPEM: certs(p.inter1), KeyPEM: pkcs8(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Check(time.Time{}, "")
	if err == nil || !strings.Contains(err.Error(), "certificate 1 (Test Intermediate 1) did not sign acme.example.com") || strings.Contains(err.Error(), "()") {
		t.Errorf("error %v, want it to name both certificates", err)
	}
	b, err = material.Parse(material.Material{CertPEM: certs(leaf), KeyPEM: pkcs8(t, p.otherKey)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(time.Time{}, ""); err == nil || !strings.Contains(err.Error(), "(leaf acme.example.com)") {
		t.Errorf("error %v, want it to name the leaf", err)
	}
}

// A DER file where PEM is wanted says so and how to convert it.
func TestDERSaysHowToConvert(t *testing.T) {
	p := getPKI(t)
	keyDER := mustDER(t, pkcs8(t, p.leafKey))
	for _, tc := range []struct {
		name  string
		m     material.Material
		field string
		msg   string
	}{
		{"DER certificate", material.Material{CertPEM: string(p.leaf.Raw), KeyPEM: pkcs8(t, p.leafKey)}, "cert_pem", "is DER, not PEM: convert it with `openssl x509 -inform der -in FILE -out FILE.pem`"},
		{"DER chain", material.Material{CertPEM: certs(p.leaf), ChainPEM: string(p.inter2.Raw), KeyPEM: pkcs8(t, p.leafKey)}, "chain_pem", "is DER, not PEM: convert it with `openssl x509 -inform der"},
		{"DER key", material.Material{CertPEM: certs(p.leaf), KeyPEM: string(keyDER)}, "key_pem", "is DER, not PEM: convert it with `openssl pkey -inform der -in FILE -out FILE.pem`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := material.Parse(tc.m)
			checkErr(t, err, tc.field, tc.msg, p.keyPEMs...)
		})
	}
	if material.IsDER([]byte("0 not DER")) || material.IsDER(append(p.leaf.Raw, '\n', 'x')) {
		t.Errorf("IsDER takes text for DER")
	}
}

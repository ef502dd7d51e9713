// Package issuers holds what mints certificates for renewal: one package per
// issuer type (issuers/localca), each registering itself here under the
// profile's issuer.type, as connectors register under target_type. Renewal
// looks the issuer up by that name; issuers/all registers every one.
package issuers

import (
	"crypto/x509"
	"fmt"
	"sort"
	"time"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/profile"
)

// Issuer mints a fresh key and a certificate.
type Issuer interface {
	// Issue mints for req with cfg, the profile's issuer settings. Errors
	// about the settings or the request are *contract.FieldError naming
	// the profile field (issuer.ca_key, sans); none carries key bytes.
	Issue(cfg profile.Issuer, req Request, now time.Time) (*Issued, error)
}

// Request is what to mint: the profile's certificate fields.
type Request struct {
	Subject  profile.Subject
	SANs     []string
	KeyType  string
	Validity time.Duration
}

// Issued is a minted certificate: the material a deploy lands, and facts
// about the leaf for the operator.
type Issued struct {
	Material  material.Material
	Leaf      *x509.Certificate
	NotBefore time.Time
	NotAfter  time.Time
	// Issuer names who signed it (the CA's subject).
	Issuer string
}

// registered is written only by Register, from package init functions:
// after init it is read-only.
var registered = map[string]Issuer{}

// Register makes an issuer available under the issuer.type name. Issuer
// packages call it from init.
func Register(name string, i Issuer) { registered[name] = i }

// Get returns the issuer for a profile's issuer.type.
func Get(name string) (Issuer, error) {
	if i, ok := registered[name]; ok {
		return i, nil
	}
	return nil, fmt.Errorf("unknown issuer %q (known: %v)", name, Names())
}

// Names lists the registered issuer types.
func Names() []string {
	n := make([]string, 0, len(registered))
	for k := range registered {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Package profile holds a certificate profile: what a certificate looks like
// (subject, SANs, key type, validity), who must approve its issuance, which
// issuer mints it and which targets it deploys to. The YAML an operator
// writes is parsed strictly, like a target file; the resolved profile (target
// files read and inlined) is what RenewWorkflow carries as JSON.
package profile

import (
	"bytes"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/identity"
	"github.com/certctl/certctl/strictyaml"
	"github.com/certctl/certctl/target"
)

// MaxFileSize bounds a profile file.
const MaxFileSize = 256 << 10

// Key types an issuer can mint.
const (
	KeyECDSAP256 = "ecdsa-p256"
	KeyRSA2048   = "rsa-2048"
)

// Defaults applied when a field is absent.
const (
	DefaultKeyType  = KeyECDSAP256
	DefaultValidity = 90 * 24 * time.Hour
	// MinValidity refuses certificates that expire before anyone could
	// approve their renewal.
	MinValidity = time.Hour
)

// IssuerLocalCA is the local CA issuer: a CA certificate and key on the
// certctl worker's disk.
const IssuerLocalCA = "localca"

// Profile is one certificate profile, resolved: every target is inline.
type Profile struct {
	ProfileID        string `json:"profile_id" yaml:"profile_id"`
	RequiresApproval bool   `json:"requires_approval" yaml:"requires_approval"`
	// RequiredApprovals is M of M-of-N: how many distinct approvers from the
	// pool must approve. 0 means 1.
	RequiredApprovals int `json:"required_approvals,omitempty" yaml:"required_approvals,omitempty"`
	// Approvers is the pool; empty means anyone but the requester.
	Approvers []string `json:"approvers,omitempty" yaml:"approvers,omitempty"`

	KeyType  string          `json:"key_type,omitempty" yaml:"key_type,omitempty"`
	Validity target.Duration `json:"validity,omitempty" yaml:"validity,omitempty"`
	// RenewBefore is the renewal window: a scheduled renewal runs when the
	// deployed certificate expires within it. 0 means a third of Validity.
	RenewBefore target.Duration `json:"renew_before,omitempty" yaml:"renew_before,omitempty"`
	Subject     Subject         `json:"subject" yaml:"subject"`
	SANs        []string        `json:"sans" yaml:"sans"`

	Issuer  Issuer          `json:"issuer" yaml:"issuer"`
	Targets []target.Target `json:"targets" yaml:"-"`
	// Rollout is how a renewal lands the certificate on the targets: the
	// canary first, then in batches, halting on failure (as certctl
	// rollout does).
	Rollout Rollout `json:"rollout,omitempty" yaml:"rollout,omitempty"`
}

// Rollout is a profile's rollout settings; unset fields take certctl
// rollout's defaults (canary 1, batch 10, max_failures 0).
type Rollout struct {
	Canary      *int `json:"canary,omitempty" yaml:"canary,omitempty"`
	Batch       int  `json:"batch,omitempty" yaml:"batch,omitempty"`
	MaxFailures int  `json:"max_failures,omitempty" yaml:"max_failures,omitempty"`
}

// Subject is the certificate's distinguished name.
type Subject struct {
	CommonName         string   `json:"common_name,omitempty" yaml:"common_name,omitempty"`
	Organization       []string `json:"organization,omitempty" yaml:"organization,omitempty"`
	OrganizationalUnit []string `json:"organizational_unit,omitempty" yaml:"organizational_unit,omitempty"`
	Locality           []string `json:"locality,omitempty" yaml:"locality,omitempty"`
	Province           []string `json:"province,omitempty" yaml:"province,omitempty"`
	Country            []string `json:"country,omitempty" yaml:"country,omitempty"`
}

// Name is the subject as an X.509 name.
func (s Subject) Name() pkix.Name {
	return pkix.Name{CommonName: s.CommonName, Organization: s.Organization, OrganizationalUnit: s.OrganizationalUnit,
		Locality: s.Locality, Province: s.Province, Country: s.Country}
}

// String is the RFC 2253 form an approver reads: "CN=shop.example.com,O=Example".
func (s Subject) String() string { return s.Name().String() }

// Issuer names the connector that mints the certificate and its settings.
type Issuer struct {
	Type string `json:"type" yaml:"type"`
	// CACert and CAKey are paths on the certctl worker (localca): the CA
	// certificate (followed by its own chain, if any) and its private key
	// (mode 0600 or stricter).
	CACert string `json:"ca_cert,omitempty" yaml:"ca_cert,omitempty"`
	CAKey  string `json:"ca_key,omitempty" yaml:"ca_key,omitempty"`
}

// fieldErr names the field of a profile that is wrong.
func fieldErr(field, format string, args ...any) error {
	return contract.Fieldf(field, format, args...)
}

// file is the YAML form: targets are inline target objects or paths of
// target files, in any mix.
type file struct {
	ProfileID         string          `yaml:"profile_id"`
	RequiresApproval  bool            `yaml:"requires_approval"`
	RequiredApprovals int             `yaml:"required_approvals"`
	Approvers         []string        `yaml:"approvers"`
	KeyType           string          `yaml:"key_type"`
	Validity          target.Duration `yaml:"validity"`
	RenewBefore       target.Duration `yaml:"renew_before"`
	Subject           Subject         `yaml:"subject"`
	SANs              []string        `yaml:"sans"`
	Issuer            Issuer          `yaml:"issuer"`
	Targets           []yaml.Node     `yaml:"targets"`
}

// Load reads a profile file; relative target paths are taken from the
// profile's directory.
func Load(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, filepath.Dir(path))
}

// Parse reads a profile (YAML; JSON is YAML too) strictly: unknown fields
// and extra documents are refused. dir resolves relative target paths.
func Parse(r io.Reader, dir string) (*Profile, error) {
	data, err := strictyaml.Read(r, MaxFileSize)
	if msg, ok := strictyaml.Describe(err, "profile"); ok {
		return nil, fieldErr("profile", "%s", msg)
	} else if err != nil {
		return nil, err
	}
	raw, err := decode(data)
	if err != nil {
		return nil, err
	}
	p := &Profile{
		ProfileID: raw.ProfileID, RequiresApproval: raw.RequiresApproval, RequiredApprovals: raw.RequiredApprovals,
		Approvers: raw.Approvers, KeyType: raw.KeyType, Validity: raw.Validity, RenewBefore: raw.RenewBefore,
		Subject: raw.Subject, SANs: raw.SANs, Issuer: raw.Issuer,
	}
	for i := range raw.Targets {
		t, err := resolveTarget(&raw.Targets[i], dir)
		if err != nil {
			return nil, prefixed(fmt.Sprintf("targets[%d]", i), err)
		}
		p.Targets = append(p.Targets, *t)
	}
	p.ApplyDefaults()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func decode(data []byte) (f file, err error) {
	if err = strictyaml.Decode(data, &f); err == nil {
		return f, nil
	}
	if msg, ok := strictyaml.Describe(err, "profile"); ok {
		return f, fieldErr("profile", "%s", msg)
	}
	return f, decodeErr(err)
}

// decodeErr turns yaml.v3's "line 4: field approver not found in type
// profile.file" into an error naming the field.
func decodeErr(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		var line int
		var name string
		if _, serr := fmt.Sscanf(te.Errors[0], "line %d: field %s not found", &line, &name); serr == nil {
			return fieldErr(name, "line %d: unknown field (a typo never falls back to a default)", line)
		}
		return fieldErr("profile", "%s", strings.Join(te.Errors, "; "))
	}
	return fieldErr("profile", "%v", err)
}

// resolveTarget reads one element of targets: a path (scalar) or an inline
// target (mapping), each parsed as strictly as a target file.
func resolveTarget(n *yaml.Node, dir string) (*target.Target, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		p := n.Value
		if p == "" {
			return nil, fmt.Errorf("empty path")
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		t, err := target.Parse(f)
		if err != nil {
			// The file's own field names are relative to the file.
			return nil, errors.New(p + ": " + err.Error())
		}
		return t, nil
	case yaml.MappingNode:
		b, err := yaml.Marshal(n)
		if err != nil {
			return nil, err
		}
		return target.Parse(bytes.NewReader(b))
	}
	return nil, fmt.Errorf("want a target object or the path of a target file")
}

// prefixed names a nested field of an inline target,
// targets[0].target_config.cert_path; any other error is about targets[0].
func prefixed(prefix string, err error) error {
	var fe *contract.FieldError
	if errors.As(err, &fe) {
		return &contract.FieldError{Field: prefix + "." + fe.Field, Msg: fe.Msg}
	}
	return &contract.FieldError{Field: prefix, Msg: err.Error()}
}

// ApplyDefaults fills the fields an operator may leave out.
func (p *Profile) ApplyDefaults() {
	if p.RequiredApprovals == 0 {
		p.RequiredApprovals = 1
	}
	if p.KeyType == "" {
		p.KeyType = DefaultKeyType
	}
	if p.Validity == 0 {
		p.Validity = target.Duration(DefaultValidity)
	}
	if p.RenewBefore == 0 {
		p.RenewBefore = p.Validity / 3
	}
	if p.Subject.CommonName == "" && len(p.SANs) > 0 {
		p.Subject.CommonName = p.SANs[0]
	}
}

// Validate checks the profile without touching the disk: RenewWorkflow runs
// it again on what it was given.
func (p *Profile) Validate() error {
	if err := CheckID("profile_id", p.ProfileID); err != nil {
		return err
	}
	if p.RequiredApprovals < 1 {
		return fieldErr("required_approvals", "must be at least 1")
	}
	seen := map[string]bool{}
	for i, a := range p.Approvers {
		if strings.TrimSpace(a) == "" {
			return fieldErr(fmt.Sprintf("approvers[%d]", i), "is empty")
		}
		k, err := identity.Canonical(a)
		if err != nil {
			return fieldErr(fmt.Sprintf("approvers[%d]", i), "%v", err)
		}
		if seen[k] {
			return fieldErr(fmt.Sprintf("approvers[%d]", i), "%q is listed twice (names compare after PRECIS mapping: trimmed, case-folded, width-mapped)", a)
		}
		seen[k] = true
	}
	switch r := p.Rollout; {
	case r.Canary != nil && *r.Canary < 0:
		return fieldErr("rollout.canary", "is %d: want 0 or more", *r.Canary)
	case r.Batch < 0:
		return fieldErr("rollout.batch", "is %d: want 1 or more (0: 10)", r.Batch)
	case r.MaxFailures < 0:
		return fieldErr("rollout.max_failures", "is %d: want 0 or more", r.MaxFailures)
	}
	if len(p.Approvers) > 0 && p.RequiredApprovals > len(p.Approvers) {
		return fieldErr("required_approvals", "%d exceeds the %d approvers in the pool", p.RequiredApprovals, len(p.Approvers))
	}
	switch p.KeyType {
	case KeyECDSAP256, KeyRSA2048:
	default:
		return fieldErr("key_type", "%q: want %s or %s", p.KeyType, KeyECDSAP256, KeyRSA2048)
	}
	if p.Validity.D() < MinValidity {
		return fieldErr("validity", "%s is shorter than %s", p.Validity, MinValidity)
	}
	if p.RenewBefore.D() <= 0 || p.RenewBefore >= p.Validity {
		return fieldErr("renew_before", "%s must be positive and shorter than validity (%s)", p.RenewBefore, p.Validity)
	}
	if len(p.SANs) == 0 {
		return fieldErr("sans", "at least one DNS name or IP address is required")
	}
	for i, s := range p.SANs {
		if err := checkSAN(s); err != nil {
			return fieldErr(fmt.Sprintf("sans[%d]", i), "%v", err)
		}
	}
	if strings.ContainsAny(p.Subject.CommonName, "\x00\n") {
		return fieldErr("subject.common_name", "must be one line")
	}
	switch p.Issuer.Type {
	case IssuerLocalCA:
		for _, f := range []struct{ name, path string }{{"issuer.ca_cert", p.Issuer.CACert}, {"issuer.ca_key", p.Issuer.CAKey}} {
			if f.path == "" {
				return fieldErr(f.name, "is required for the localca issuer")
			}
			if err := target.CheckPath(f.path); err != nil {
				return fieldErr(f.name, "%v (the certctl worker reads it)", err)
			}
		}
	case "":
		return fieldErr("issuer.type", "is required (known: %s)", IssuerLocalCA)
	default:
		return fieldErr("issuer.type", "unknown issuer %q (known: %s)", p.Issuer.Type, IssuerLocalCA)
	}
	if len(p.Targets) == 0 {
		return fieldErr("targets", "at least one target is required")
	}
	ids := map[string]bool{}
	for i := range p.Targets {
		t := &p.Targets[i]
		if err := t.Validate(); err != nil {
			return prefixed(fmt.Sprintf("targets[%d]", i), err)
		}
		if ids[t.TargetID] {
			return fieldErr(fmt.Sprintf("targets[%d].target_id", i), "%q appears twice", t.TargetID)
		}
		ids[t.TargetID] = true
	}
	return nil
}

// CheckID accepts the identifiers that end up in workflow IDs, search
// attributes and metric labels: letters, digits, '.', '_' and '-', at most
// 128 of them.
func CheckID(field, v string) error {
	if v == "" {
		return fieldErr(field, "is required")
	}
	if len(v) > 128 {
		return fieldErr(field, "is longer than 128 characters")
	}
	for _, r := range v {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-')) {
			return fieldErr(field, "%q: use letters, digits, '.', '_' and '-' only", v)
		}
	}
	return nil
}

func checkSAN(s string) error {
	if net.ParseIP(s) != nil {
		return nil
	}
	name := strings.TrimPrefix(s, "*.")
	if name == "" || len(s) > 253 {
		return fmt.Errorf("%q is not a DNS name or IP address", s)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("%q is not a DNS name or IP address", s)
		}
		for _, r := range label {
			if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-')) {
				return fmt.Errorf("%q is not a DNS name or IP address (IDNs must be written in punycode)", s)
			}
		}
	}
	return nil
}

// ActorKey is how actor names compare: trimmed, then case-folded (every rune
// mapped to the smallest member of its Unicode simple case-folding orbit, so
// " ALICE " and "alice" are one person, as strings.EqualFold would say).
func ActorKey(s string) string {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
		b.WriteRune(m)
	}
	return b.String()
}

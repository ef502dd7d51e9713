package testsuite

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/certctl/certctl/material"
)

// PebbleVersion is the pebble the tests run: the Makefile's PEBBLE_VERSION,
// built by `make pebble` (part of `make deps`) into the tool cache.
const PebbleVersion = "v2.10.3"

// PebbleBinary finds pebble: $CERTCTL_PEBBLE_BIN, else the tool cache for
// PebbleVersion.
func PebbleBinary() (string, error) {
	if p := os.Getenv("CERTCTL_PEBBLE_BIN"); p != "" {
		return p, nil
	}
	cached := filepath.Join(ToolCache(), "pebble-"+PebbleVersion, "pebble")
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	return "", fmt.Errorf("pebble %s not found at %s: run `make pebble` (go install github.com/letsencrypt/pebble/v2/cmd/pebble@%s into that directory), or set CERTCTL_PEBBLE_BIN",
		PebbleVersion, cached, PebbleVersion)
}

// Pebble is a real pebble, Let's Encrypt's test ACME server, on loopback.
// It runs with PEBBLE_VA_ALWAYS_VALID=1: every challenge passes without a
// listener, so issuing needs no port 80. Its CA (root and intermediate) is
// fresh on every start: Root and Intermediate read them from its management
// port.
type Pebble struct {
	Directory  string // the ACME directory URL
	Management string // the management API's base URL
	// HTTPClient trusts the TLS certificate pebble serves its API with.
	HTTPClient *http.Client
	proc       *Process
	dir        string
}

// StartPebble starts pebble under dir, serving its API with a localhost
// certificate issued by ca, and waits until its directory answers.
func StartPebble(dir string, ca *CA) (*Pebble, error) {
	bin, err := PebbleBinary()
	if err != nil {
		return nil, err
	}
	api, err := ca.Issue(LeafOptions{})
	if err != nil {
		return nil, err
	}
	cert, _, key, err := api.Write(dir)
	if err != nil {
		return nil, err
	}
	// pebble serves its certificate file as it is: the chain goes with it.
	if err := os.WriteFile(cert, []byte(api.CertPEM+api.ChainPEM), 0o644); err != nil {
		return nil, err
	}
	var ports [2]int
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           "127.0.0.1:" + strconv.Itoa(ports[0]),
		"managementListenAddress": "127.0.0.1:" + strconv.Itoa(ports[1]),
		"certificate":             cert,
		"privateKey":              key,
		// Challenges are not dialed (PEBBLE_VA_ALWAYS_VALID), but the
		// config wants the ports.
		"httpPort": 5002, "tlsPort": 5001,
		"externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(conf)
	cfg := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root)
	p := &Pebble{
		Directory:  fmt.Sprintf("https://127.0.0.1:%d/dir", ports[0]),
		Management: fmt.Sprintf("https://127.0.0.1:%d", ports[1]),
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		dir:        dir,
	}
	// No nonce is rejected at random, no authorization reused, no sleep in
	// validation: every run issues the same way, quickly.
	penv := []string{"PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
	if p.proc, err = StartProcess("pebble", filepath.Join(dir, "pebble.log"), penv, bin, "-config", cfg); err != nil {
		return nil, err
	}
	ok, state := Poll(20*time.Second, func() (bool, string) {
		resp, err := p.HTTPClient.Get(p.Directory)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if !ok {
		p.Stop()
		return nil, fmt.Errorf("pebble did not answer at %s: %s\n%s", p.Directory, state, p.Logs())
	}
	return p, nil
}

// Stop stops pebble.
func (p *Pebble) Stop() { p.proc.Stop() }

// Logs is pebble's output.
func (p *Pebble) Logs() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "pebble.log"))
	return string(b)
}

// Root is pebble's root of this run, from its management port.
func (p *Pebble) Root() (*x509.Certificate, error) { return p.managed("/roots/0") }

// Intermediate is the intermediate that signs this run's leaves.
func (p *Pebble) Intermediate() (*x509.Certificate, error) { return p.managed("/intermediates/0") }

func (p *Pebble) managed(path string) (*x509.Certificate, error) {
	resp, err := p.HTTPClient.Get(p.Management + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if resp.StatusCode != http.StatusOK || blk == nil {
		return nil, fmt.Errorf("pebble %s: %s %q", path, resp.Status, b)
	}
	return x509.ParseCertificate(blk.Bytes)
}

// Issued is what an ACME order returned: the leaf and its chain as the
// server sent them (issuer of the leaf first), and the key.
type Issued struct {
	Leaf  *x509.Certificate
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// Issue orders a certificate for names (DNS names or IP addresses) with key
// through golang.org/x/crypto/acme, as an ACME client does: a new account,
// an order, each authorization's http-01 challenge accepted (pebble deems it
// valid), a CSR, the certificate with its chain.
func (p *Pebble) Issue(ctx context.Context, key crypto.Signer, names ...string) (Issued, error) {
	var out Issued
	acctKey, err := newECKey()
	if err != nil {
		return out, err
	}
	c := &acme.Client{Key: acctKey, DirectoryURL: p.Directory, HTTPClient: p.HTTPClient, UserAgent: "certctl-testsuite"}
	if _, err := c.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		return out, fmt.Errorf("acme register: %w", err)
	}
	var ids []acme.AuthzID
	var dns []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ids, ips = append(ids, acme.AuthzID{Type: "ip", Value: n}), append(ips, ip)
		} else {
			ids, dns = append(ids, acme.AuthzID{Type: "dns", Value: n}), append(dns, n)
		}
	}
	o, err := c.AuthorizeOrder(ctx, ids)
	if err != nil {
		return out, fmt.Errorf("acme order: %w", err)
	}
	// An order read back (WaitOrder) has no URI of its own: keep this one.
	orderURL := o.URI
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return out, fmt.Errorf("acme authorization: %w", err)
		}
		if z.Status == acme.StatusValid {
			continue
		}
		var chal *acme.Challenge
		for _, ch := range z.Challenges {
			if ch.Type == "http-01" {
				chal = ch
			}
		}
		if chal == nil {
			return out, errors.New("acme: no http-01 challenge offered")
		}
		if _, err := c.Accept(ctx, chal); err != nil {
			return out, fmt.Errorf("acme accept: %w", err)
		}
		if _, err := c.WaitAuthorization(ctx, z.URI); err != nil {
			return out, fmt.Errorf("acme authorization: %w", err)
		}
	}
	if o, err = c.WaitOrder(ctx, orderURL); err != nil {
		return out, fmt.Errorf("acme order: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{DNSNames: dns, IPAddresses: ips}, key)
	if err != nil {
		return out, err
	}
	ders, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		// pebble finalizes in the background ("processing") and its
		// finalize response has no Location header (RFC 8555 needs none),
		// so the library's wait has no order URL: wait on the order's
		// and fetch the certificate from it.
		if o, err = c.WaitOrder(ctx, orderURL); err != nil {
			return out, fmt.Errorf("acme order after finalize: %w", err)
		}
		if ders, err = c.FetchCert(ctx, o.CertURL, true); err != nil {
			return out, fmt.Errorf("acme certificate: %w", err)
		}
	}
	var certs []*x509.Certificate
	for _, d := range ders {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			return out, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return out, errors.New("acme: no certificate returned")
	}
	return Issued{Leaf: certs[0], Chain: certs[1:], Key: key}, nil
}

// WriteLineage writes is as certbot writes a lineage under configDir
// (certbot's /etc/letsencrypt): archive/NAME/{cert,chain,fullchain,privkey}N.pem
// and live/NAME/*.pem symbolic links to them, relative as certbot makes
// them. It returns live/NAME, what certbot hands a deploy hook as
// RENEWED_LINEAGE.
func (is Issued) WriteLineage(configDir, name string, n int) (string, error) {
	archive, live := filepath.Join(configDir, "archive", name), filepath.Join(configDir, "live", name)
	for _, d := range []string{archive, live} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(is.Key)
	if err != nil {
		return "", err
	}
	leaf, chain := material.EncodeCerts(is.Leaf), material.EncodeCerts(is.Chain...)
	files := []struct {
		base string
		data []byte
		mode os.FileMode
	}{
		{"cert", leaf, 0o644},
		{"chain", chain, 0o644},
		{"fullchain", append(append([]byte{}, leaf...), chain...), 0o644},
		{"privkey", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
	}
	for _, f := range files {
		file := fmt.Sprintf("%s%d.pem", f.base, n)
		if err := os.WriteFile(filepath.Join(archive, file), f.data, f.mode); err != nil {
			return "", err
		}
		link := filepath.Join(live, f.base+".pem")
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join("..", "..", "archive", name, file), link); err != nil {
			return "", err
		}
	}
	return live, nil
}

func newECKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

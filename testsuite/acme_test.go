package testsuite_test

// An ACME client's deploy hook, end to end: a real pebble issues RSA and
// ECDSA certificates through a real ACME client library
// (golang.org/x/crypto/acme), they are written as certbot writes a lineage
// (live/ links into archive/), and `certctl deploy --lineage` lands them on a
// real nginx, whose served chain must be the leaf then pebble's
// intermediate. And the messages of the first hour, asserted by text.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// acmeName is the name pebble issues for; the targets send it as SNI
// (post_deploy_verify.server_name), as a host verifying its own loopback
// endpoint does.
const acmeName = "web.certctl.test"

// certctl runs the certctl binary with args and the tests' environment.
func certctl(t *testing.T, args ...string) deployRun {
	t.Helper()
	return runLogged(t, "certctl", certctlExec(args...))
}

// targetFile writes tg as YAML and returns its path.
func targetFile(t *testing.T, tg target.Target) string {
	t.Helper()
	text, err := yamlOf(tg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "target.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	pebbleOnce sync.Once
	thePebble  *testsuite.Pebble
	pebbleErr  error
)

// pebble is one pebble for the package's ACME tests (its CA is fresh each
// start; one start keeps its root and intermediate the same for them all).
func pebble(t *testing.T) *testsuite.Pebble {
	t.Helper()
	pebbleOnce.Do(func() {
		dir := filepath.Join(env.workDir, "pebble")
		if pebbleErr = os.MkdirAll(dir, 0o700); pebbleErr == nil {
			thePebble, pebbleErr = testsuite.StartPebble(dir, env.ca)
		}
	})
	if pebbleErr != nil {
		t.Fatal(pebbleErr)
	}
	return thePebble
}

func acmeIssue(t *testing.T, key crypto.Signer) testsuite.Issued {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	is, err := pebble(t).Issue(ctx, key, acmeName)
	if err != nil {
		t.Fatalf("issue from pebble: %v\n%s", err, thePebble.Logs())
	}
	return is
}

// acmeNginx is a real nginx and its target, verified as acmeName.
func acmeNginx(t *testing.T) (*testsuite.Nginx, target.Target) {
	t.Helper()
	n, _ := startNginx(t)
	tg := n.Target(strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), testHost)
	tg.Config.PostDeployVerify.ServerName = acmeName
	return n, tg
}

func TestACMELineageDeploysServedChain(t *testing.T) {
	p := pebble(t)
	root, err := p.Root()
	if err != nil {
		t.Fatal(err)
	}
	inter, err := p.Intermediate()
	if err != nil {
		t.Fatal(err)
	}
	n, tg := acmeNginx(t)
	tf := targetFile(t, tg)
	certbot := t.TempDir() // certbot's /etc/letsencrypt
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"RSA2048", rsaKey}, {"ECDSAP256", ecKey}} {
		t.Run(tc.name, func(t *testing.T) {
			is := acmeIssue(t, tc.key)
			if len(is.Chain) == 0 || !is.Chain[0].Equal(inter) {
				t.Fatalf("pebble's chain does not start with its intermediate")
			}
			// A renewal: the second lineage is archive/…2.pem behind the
			// same live/ links.
			live, err := is.WriteLineage(certbot, acmeName, i+1)
			if err != nil {
				t.Fatal(err)
			}
			r := certctl(t, "deploy", "--target", tf, "--lineage", live, "--output", "json")
			res := r.result(t)
			if r.code != 0 || res.Outcome != contract.Deployed {
				t.Fatalf("exit %d outcome %s: %s", r.code, res.Outcome, res.Error)
			}
			if strings.Contains(r.stdout, `"chain_missing"`) {
				t.Errorf("a lineage with its chain reported chain_missing")
			}
			served, err := testsuite.ServedChain(context.Background(), n.Endpoint, testsuite.ProtoTLS)
			if err != nil {
				t.Fatal(err)
			}
			if len(served) != 1+len(is.Chain) || !served[0].Equal(is.Leaf) {
				t.Fatalf("nginx sends %d certificate(s) (%v); want the leaf then pebble's chain, each once", len(served), material.Refs(served...))
			}
			for j, c := range is.Chain {
				if !served[1+j].Equal(c) {
					t.Errorf("served certificate %d is %s, want %s", j+1, material.Name(served[1+j]), material.Name(c))
				}
			}
			// What a client does: verify the served chain to pebble's root.
			roots, inters := x509.NewCertPool(), x509.NewCertPool()
			roots.AddCert(root)
			for _, c := range served[1:] {
				inters.AddCert(c)
			}
			if _, err := served[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: acmeName}); err != nil {
				t.Errorf("a client holding only pebble's root cannot verify what nginx sends: %v", err)
			}
			// nginx's cert_path holds leaf and chain; chain_path the chain,
			// for ssl_trusted_certificate.
			if got := stateOf(t, n.CertPath).data; got != string(material.EncodeCerts(append([]*x509.Certificate{is.Leaf}, is.Chain...)...)) {
				t.Errorf("cert_path does not hold the leaf then its chain")
			}
			if got := stateOf(t, n.ChainPath).data; got != string(material.EncodeCerts(is.Chain...)) {
				t.Errorf("chain_path does not hold the chain")
			}
		})
	}
}

// A CA-issued leaf deployed without its chain is deployed, with a warning
// line, and "chain_missing": true in JSON.
func TestACMEChainMissingWarns(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := acmeIssue(t, key)
	live, err := is.WriteLineage(t.TempDir(), acmeName, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, tg := acmeNginx(t)
	// No chain to write: chain_path (nginx's ssl_trusted_certificate) stays
	// as it is, out of the target.
	tg.Config.ChainPath = ""
	tf := targetFile(t, tg)
	args := []string{"deploy", "--target", tf, "--cert", filepath.Join(live, "cert.pem"), "--key", filepath.Join(live, "privkey.pem")}
	r := certctl(t, args...)
	wantOutcome(t, r, 0, contract.Deployed)
	issuer := is.Leaf.Issuer.String()
	want := "warning: no chain: leaf " + acmeName + ` is issued by "` + issuer + `" and the server will send it alone; ` +
		`clients that do not hold that issuer's certificate fail ("unable to verify the first certificate"): give --chain CHAIN.pem (the intermediates), or --lineage DIR`
	if !strings.Contains(r.stdout, want+"\n") {
		t.Errorf("no warning line\nwant %s", want)
	}
	r = certctl(t, append(args, "--output", "json")...)
	var out struct {
		ChainMissing *bool  `json:"chain_missing"`
		Outcome      string `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	if r.code != 0 || out.ChainMissing == nil || !*out.ChainMissing || out.Outcome != contract.SkippedIdempotent {
		t.Errorf("exit %d, chain_missing %v, outcome %s; want 0, true, SkippedIdempotent", r.code, out.ChainMissing, out.Outcome)
	}
}

// A server that does not send the chain certctl deployed fails verify,
// naming what it served and what was expected, and is rolled back. Here a
// target of the separate-files layout (leaf alone in cert_path, the chain in
// chain_path, as apache's SSLCertificateChainFile reads it) points at an
// nginx, which sends only ssl_certificate: the misconfiguration that used
// to end Deployed while clients failed.
func TestVerifyChainMismatchRollsBack(t *testing.T) {
	n, initial := startNginx(t)
	tg := n.Target("chain-mismatch", testHost)
	tg.TargetType = "apache"
	tg.Config.PostDeployVerifyAttempts = 1
	fresh := issue(t)
	r := deploy(t, tg, fresh)
	wantOutcome(t, r, 1, contract.VerifyFailed)
	b, err := material.Parse(fresh.Material)
	if err != nil {
		t.Fatal(err)
	}
	leaf, inter := b.ServedChain()[0], b.ServedChain()[1]
	want := "verify " + n.Endpoint + ": serves the chain " + leaf.String() + "; want " + leaf.String() + ", then " + inter.String() +
		" (the leaf, then each intermediate of the deployed chain, in order)"
	var line string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "verify ") && strings.Contains(l, "FAILED") {
			line = l
		}
	}
	if !strings.Contains(line, want) || strings.Contains(r.stdout, "Encoded failure") {
		t.Errorf("verify's step line %q\nwant it decoded, saying %q", line, want)
	}
	wantServed(t, n, initial.LeafSHA256)
}

package testsuite_test

// The messages of a first hour with certctl deploy, each asserted by text:
// each says what is wrong and what to do.

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/testsuite"
)

func TestDeployMessagesSayWhatToDo(t *testing.T) {
	n, _ := startNginx(t)
	tg := n.Target("messages", testHost)
	tf := targetFile(t, tg)
	s := issue(t)
	dir := t.TempDir()
	cert, chain, key, err := s.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fullchain := write("fullchain.pem", []byte(s.CertPEM+s.ChainPEM))
	der := func(text string) []byte {
		b, _ := pem.Decode([]byte(text))
		return b.Bytes
	}
	certDER, keyDER := write("cert.der", der(s.CertPEM)), write("key.der", der(s.KeyPEM))
	trusted := write("trusted.pem", pem.EncodeToMemory(&pem.Block{Type: "TRUSTED CERTIFICATE", Bytes: append(der(s.CertPEM), 0x30, 0x00)}))
	// A leaf for a name only: the loopback endpoint's address is not in it.
	named, err := env.ca.Issue(testsuite.LeafOptions{CommonName: acmeName, DNSNames: []string{acmeName}})
	if err != nil {
		t.Fatal(err)
	}
	ncert, nchain, nkey, err := named.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"lineage and files", []string{"--lineage", dir, "--cert", cert, "--chain", chain},
			"invalid input: --lineage and --cert, --chain: give the lineage directory or the files, not both"},
		{"neither", nil, "invalid input: --cert and --key: required (or --lineage DIR for an ACME client's lineage)"},
		{"lineage without certbot's files", []string{"--lineage", t.TempDir()}, "has no cert.pem (want certbot's layout: cert.pem, chain.pem, privkey.pem)"},
		{"DER certificate", []string{"--cert", certDER, "--key", key},
			"--cert " + certDER + ": is DER, not PEM: convert it with `openssl x509 -inform der -in " + certDER + " -out " + certDER + ".pem`"},
		{"DER key", []string{"--cert", cert, "--key", keyDER},
			"--key " + keyDER + ": is DER, not PEM: convert it with `openssl pkey -inform der -in " + keyDER + " -out " + keyDER + ".pem`"},
		{"TRUSTED CERTIFICATE", []string{"--cert", trusted, "--chain", chain, "--key", key},
			"--cert " + trusted + ": cert_pem: PEM block 1 is a TRUSTED CERTIFICATE (a certificate with OpenSSL trust settings, for a trust store): convert it with `openssl x509 -in " + trusted + " -out " + trusted + ".pem`"},
		{"fullchain and chain", []string{"--cert", fullchain, "--chain", chain, "--key", key},
			"--chain " + chain + ": chain_pem: the chain repeats certificates already in --cert (certctl itest Intermediate)"},
		{"loopback endpoint without server_name", []string{"--cert", ncert, "--chain", nchain, "--key", nkey},
			`certificate does not cover the verify host "127.0.0.1" (SANs: ` + acmeName + `): the verify endpoint is on loopback, so set post_deploy_verify.server_name to a name the certificate covers (` + acmeName + `)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := certctl(t, append([]string{"deploy", "--target", tf}, tc.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q\nwant exit 2 saying %q", r.code, r.stderr, tc.want)
			}
		})
	}

	// certbot's live/ file as a destination: refused at plan, and the hint
	// sends the operator to --lineage, not into archive/.
	link := filepath.Join(n.Dir, "live-cert.pem")
	if err := os.Symlink(n.CertPath, link); err != nil {
		t.Fatal(err)
	}
	lt := tg
	lt.Config.CertPath = link
	r := certctl(t, "deploy", "--target", targetFile(t, lt), "--cert", cert, "--chain", chain, "--key", key)
	wantOutcome(t, r, 2, contract.InvalidInput)
	want := "is a symbolic link, and certctl never writes through one: point the target at files of the server's own (not at certbot's live/ or archive/), " +
		"and give certbot's lineage to `certctl deploy --lineage /etc/letsencrypt/live/NAME`"
	if !strings.Contains(r.stdout, want) {
		t.Errorf("want the symlink hint %q", want)
	}
}

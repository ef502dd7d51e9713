package testsuite_test

// Key and certificate framings: each set of bytes goes to the real `nginx -t`
// and `haproxy -c` (cert and key files as each reads them), and to certctl's
// parser; certctl must accept exactly what both servers accept, and write
// only canonical blocks from it. Where certctl refuses what the servers
// take, the row says why (refuse: the safe choice); where the servers
// disagree, the row must say so too, and certctl refuses.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/testsuite"
)

// framingPKI is a root, an intermediate and two leaves (EC P-256, RSA 2048)
// under it, made here so every key form can be written.
type framingPKI struct {
	inter, ecLeaf, rsaLeaf *x509.Certificate
	ecKey                  *ecdsa.PrivateKey
	rsaKey                 *rsa.PrivateKey
}

func newFramingPKI(t *testing.T) framingPKI {
	t.Helper()
	now := time.Now()
	mk := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
		n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = n, now.Add(-time.Hour), now.Add(24*time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca := func(cn string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	leaf := func() *x509.Certificate {
		return &x509.Certificate{DNSNames: []string{"framing.example"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	}
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var p framingPKI
	var err error
	p.ecKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if p.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	root := mk(ca("Framing Root"), nil, &rootKey.PublicKey, rootKey)
	p.inter = mk(ca("Framing Intermediate"), root, &interKey.PublicKey, rootKey)
	p.ecLeaf = mk(leaf(), p.inter, &p.ecKey.PublicKey, interKey)
	p.rsaLeaf = mk(leaf(), p.inter, &p.rsaKey.PublicKey, interKey)
	return p
}

func pemOf(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// framingServers runs nginx -t and haproxy -c on one cert file and one key
// file.
type framingServers struct {
	dir   string
	nginx string
	port  int
}

func newFramingServers(t *testing.T) framingServers {
	t.Helper()
	bin, err := testsuite.NginxBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testsuite.HAProxyBinary(); err != nil {
		t.Fatal(err)
	}
	port, err := testsuite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return framingServers{dir: t.TempDir(), nginx: bin, port: port}
}

// accepts reports whether nginx -t and haproxy -c take cert and key, with
// their output when they do not. haproxy reads the key from "<crt>.key"
// when the crt file holds none (ssl-load-extra-files' default).
func (s framingServers) accepts(t *testing.T, name string, cert, key []byte) (nginxOK, haproxyOK bool, out string) {
	t.Helper()
	dir := filepath.Join(s.dir, strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name))
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "site.pem"), filepath.Join(dir, "site.pem.key")
	if err := os.WriteFile(certPath, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	nconf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(nconf, []byte(fmt.Sprintf(`daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 16; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen 127.0.0.1:%[2]d ssl;
        ssl_certificate %[3]s;
        ssl_certificate_key %[4]s;
    }
}
`, dir, s.port, certPath, keyPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	hconf := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(hconf, []byte(fmt.Sprintf(`defaults
    mode http
    timeout connect 2s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:%d ssl crt %s
    http-request return status 200
`, s.port, certPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	n, nerr := exec.Command(s.nginx, "-t", "-p", dir+"/", "-c", nconf, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	h, herr := exec.Command("haproxy", "-c", "-f", hconf).CombinedOutput()
	return nerr == nil, herr == nil, fmt.Sprintf("nginx -t: %s\nhaproxy -c: %s", n, h)
}

func TestFramingsAcceptedExactlyAsServersDo(t *testing.T) {
	p := newFramingPKI(t)
	srv := newFramingServers(t)
	leaf, inter := pemOf("CERTIFICATE", p.ecLeaf.Raw), pemOf("CERTIFICATE", p.inter.Raw)
	full := leaf + inter
	pkcs8, err := x509.MarshalPKCS8PrivateKey(p.ecKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p.ecKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, err := x509.MarshalPKCS8PrivateKey(p.rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	key := pemOf("PRIVATE KEY", pkcs8)
	sec1Key := pemOf("EC PRIVATE KEY", sec1)
	// What `openssl ecparam -name prime256v1 -genkey` writes first.
	ecParams := pemOf("EC PARAMETERS", []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7})
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	bag := func(c *x509.Certificate, block string) string {
		// As `openssl pkcs12 -nodes` exports it.
		return "Bag Attributes\n    localKeyID: 6B 2F 0E 11 \n    friendlyName: framing\nsubject=CN = " + material.Name(c) + "\n\nissuer=CN = Framing Root\n\n" + block
	}
	oneLine := func(block string) string {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		return lines[0] + "\n" + strings.Join(lines[1:len(lines)-1], "") + "\n" + lines[len(lines)-1] + "\n"
	}
	perLine := func(block string, f func(string) string) string {
		lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
		for i := 1; i < len(lines)-1; i++ {
			lines[i] = f(lines[i])
		}
		return strings.Join(lines, "\n") + "\n"
	}
	rewrap := func(der []byte, typ string, width int) string {
		b64 := base64.StdEncoding.EncodeToString(der)
		var sb strings.Builder
		sb.WriteString("-----BEGIN " + typ + "-----\n")
		for len(b64) > width {
			sb.WriteString(b64[:width] + "\n")
			b64 = b64[width:]
		}
		sb.WriteString(b64 + "\n-----END " + typ + "-----\n")
		return sb.String()
	}
	for _, tc := range []struct {
		name      string
		cert, key string
		rsa       bool
		// refuse: certctl refuses though both servers accept, and why.
		refuse string
	}{
		{name: "canonical fullchain, PKCS #8", cert: full, key: key},
		{name: "SEC 1 EC key", cert: full, key: sec1Key},
		{name: "PKCS #1 RSA key", cert: pemOf("CERTIFICATE", p.rsaLeaf.Raw) + inter, key: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.rsaKey)), rsa: true},
		{name: "PKCS #8 RSA key", cert: pemOf("CERTIFICATE", p.rsaLeaf.Raw) + inter, key: pemOf("PRIVATE KEY", rsaPKCS8), rsa: true},
		{name: "openssl ecparam -genkey: EC PARAMETERS then EC PRIVATE KEY", cert: full, key: ecParams + sec1Key},
		{name: "EC PARAMETERS after the key", cert: full, key: sec1Key + ecParams},
		{name: "CRLF", cert: crlf(full), key: crlf(key)},
		{name: "no final newline", cert: strings.TrimSuffix(full, "\n"), key: strings.TrimSuffix(key, "\n")},
		{name: "comment lines before, between and after", cert: "# web-1, renewed 2026-12-01\n" + leaf + "# issuer:\n" + inter + "# end\n", key: "# the key\n" + key + "# end of key\n"},
		{name: "text without a newline after the END line", cert: full + "trailing text", key: key + "trailing text"},
		{name: "PKCS #12 export: Bag Attributes", cert: bag(p.ecLeaf, leaf) + bag(p.inter, inter), key: "Bag Attributes\n    localKeyID: 6B 2F 0E 11 \nKey Attributes: <No Attributes>\n" + key},
		{name: "key file holding the certificate after the key", cert: full, key: key + full},
		{name: "key file holding the certificate before the key", cert: full, key: full + key},
		{name: "base64 in one long line", cert: oneLine(leaf) + oneLine(inter), key: oneLine(key)},
		{name: "base64 in 76-character lines", cert: rewrap(p.ecLeaf.Raw, "CERTIFICATE", 76) + rewrap(p.inter.Raw, "CERTIFICATE", 76), key: rewrap(pkcs8, "PRIVATE KEY", 76)},
		{name: "trailing spaces on base64 lines", cert: perLine(leaf, func(l string) string { return l + "  " }) + inter, key: perLine(key, func(l string) string { return l + " " })},
		{name: "blank line inside the base64", cert: perLine(leaf, func(l string) string { return l + "\n" }) + inter, key: key},
		{name: "indented BEGIN line", cert: "  " + leaf + inter, key: key},
		{name: "indented base64 lines", cert: perLine(leaf, func(l string) string { return "  " + l }) + inter, key: key},
		{name: "old type name X509 CERTIFICATE", cert: pemOf("X509 CERTIFICATE", p.ecLeaf.Raw) + inter, key: key},
		{name: "TRUSTED CERTIFICATE leaf (openssl x509 -trustout)", cert: pemOf("TRUSTED CERTIFICATE", append(append([]byte{}, p.ecLeaf.Raw...), 0x30, 0x00)) + inter, key: key,
			refuse: "trust settings belong to a trust store, not to a served certificate; the message gives the openssl command that drops them"},
		{name: "DER certificate", cert: string(p.ecLeaf.Raw), key: key},
		{name: "DER key", cert: full, key: string(pkcs8)},
		{name: "key in the certificate file", cert: full + key, key: key,
			refuse: "a private key in the certificate input is a key the operator may not mean to deploy (and not the one --key names): give it once, with --key"},
		{name: "two keys in the key file", cert: full, key: key + pemOf("PRIVATE KEY", rsaPKCS8),
			refuse: "servers take the first key and ignore the second; which one was meant is a guess: give one key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nginxOK, haproxyOK, out := srv.accepts(t, tc.name, []byte(tc.cert), []byte(tc.key))
			b, perr := material.Parse(material.Material{CertPEM: tc.cert, KeyPEM: tc.key})
			if perr == nil {
				perr = b.Check(time.Time{}, "")
			}
			certctlOK := perr == nil
			t.Logf("nginx %v, haproxy %v, certctl %v (%v)", nginxOK, haproxyOK, certctlOK, perr)
			switch {
			case nginxOK != haproxyOK && tc.refuse == "":
				t.Fatalf("nginx accepts: %v, haproxy accepts: %v: the servers disagree; decide what is safe and say it in the row\n%s", nginxOK, haproxyOK, out)
			case tc.refuse != "" && certctlOK:
				t.Errorf("certctl accepts what it means to refuse (%s)", tc.refuse)
			case tc.refuse != "" && !(nginxOK && haproxyOK) && nginxOK == haproxyOK:
				t.Errorf("the servers refuse this too: the row's reason to differ is stale\n%s", out)
			case tc.refuse == "" && certctlOK != nginxOK:
				t.Errorf("certctl accepts: %v (%v); both servers accept: %v\n%s", certctlOK, perr, nginxOK, out)
			}
			if !certctlOK {
				return
			}
			// What certctl writes is canonical: the re-encoded blocks only.
			wantCert, wantKey := leaf+inter, pemOf("PRIVATE KEY", pkcs8)
			if tc.rsa {
				wantCert = pemOf("CERTIFICATE", p.rsaLeaf.Raw) + inter
				if strings.Contains(tc.key, "RSA PRIVATE KEY") {
					wantKey = pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(p.rsaKey))
				} else {
					wantKey = pemOf("PRIVATE KEY", rsaPKCS8)
				}
			} else if strings.Contains(tc.key, "EC PRIVATE KEY") {
				wantKey = sec1Key
			}
			if got := string(append(b.LeafPEM(), b.ChainPEM()...)); got != wantCert {
				t.Errorf("certctl would write the certificate file as\n%s\nwant\n%s", got, wantCert)
			}
			if got := b.KeyPEM(); !bytes.Equal(got, []byte(wantKey)) {
				t.Errorf("certctl would not write the key as one canonical block")
			}
		})
	}
}

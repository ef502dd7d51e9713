package all_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/envoy"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/connectors/kubernetes"
	"github.com/certctl/certctl/connectors/traefik"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// configFor is a target_config each connector's Check accepts. A connector
// registered without one here fails the test below: every connector must
// be shown to write only canonical blocks.
func configFor(t *testing.T, name string, c connectors.Connector) target.Config {
	t.Helper()
	for _, cfg := range []target.Config{
		{CertPath: "/d/cert.pem", ChainPath: "/d/chain.pem", KeyPath: "/d/key.pem"},
		{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem"},
		{Own: &haproxy.Config{PEMPath: "/d/site.pem"}},
		{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem", Own: &traefik.Config{DynamicConfigPath: "/d/dynamic.yaml"}},
		{CertPath: "/d/cert.pem", KeyPath: "/d/key.pem", Own: &envoy.Config{SDSPath: "/d/sds.yaml", SDSSecretName: "site"}},
		{Own: &kubernetes.Config{Namespace: "shop", SecretName: "site-tls"}},
		{Own: &javakeystore.Config{KeystorePath: "/d/s.jks", KeystoreType: "JKS", Alias: "site", KeystorePasswordFile: "/d/pw"}},
	} {
		if c.Check(cfg) == nil {
			return cfg
		}
	}
	t.Fatalf("%s: no test config passes its Check: add one to configFor", name)
	return target.Config{}
}

// Whatever text surrounds the operator's blocks, every registered
// connector's files hold only the re-encoded blocks: the one home for the
// bytes written is material.Bundle's encoders.
func TestEveryConnectorWritesCanonicalBlocks(t *testing.T) {
	ca, err := testsuite.NewCA("canonical test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(b.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "JUNK-MARKER"
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	odd := material.Material{
		CertPEM:  "# " + marker + "\n" + crlf(s.CertPEM) + marker + "\n",
		ChainPEM: marker + " issuer:\n" + s.ChainPEM + "# " + marker,
		KeyPEM: strings.Repeat(marker+" \x1b[2J\n", 500) +
			crlf(string(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}))) +
			string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Comment": marker}, Bytes: sec1})) +
			"# " + marker + "\n",
	}
	wantKey := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	names := connectors.Names()
	if len(names) < 8 {
		t.Fatalf("only %v registered", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c, _ := connectors.Get(name)
			cfg, want := configFor(t, name, c), wantKey
			files, err := c.Files(cfg, bundle(t, odd))
			if cl, ok := c.(connectors.CurrentLayout); ok {
				// A keystore is not PEM: what it serves, read back, is
				// checked instead; its key is PKCS #8, as the format has it.
				current := map[string][]byte{"/d/pw": []byte("canonical-test\n")}
				if files, err = cl.FilesFrom(cfg, bundle(t, odd), current); err == nil {
					for i := range files {
						if files[i].Bytes, err = cl.Served(cfg, files[i].Role, files[i].Bytes, current); err != nil {
							break
						}
					}
				}
				pkcs8, _ := x509.MarshalPKCS8PrivateKey(b.Key)
				want = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
			}
			if err != nil {
				t.Fatalf("Files: %v", err)
			}
			sawKey := false
			for _, f := range files {
				for _, bad := range []string{marker, "EC PARAMETERS", "\r", "Comment:"} {
					if bytes.Contains(f.Bytes, []byte(bad)) {
						t.Errorf("%s %s holds %q", f.Role, f.Path, bad)
					}
				}
				if !bytes.Contains(f.Bytes, []byte("-----BEGIN ")) {
					continue // an index file naming the others
				}
				if f.HoldsKey {
					sawKey = true
					if !strings.HasSuffix(string(f.Bytes), want) {
						t.Errorf("%s %s does not end with the canonical key block", f.Role, f.Path)
					}
				}
				var canon []byte
				for rest := f.Bytes; ; {
					var blk *pem.Block
					blk, rest = pem.Decode(rest)
					if blk == nil {
						if len(rest) > 0 {
							t.Errorf("%s %s holds %d bytes after its blocks", f.Role, f.Path, len(rest))
						}
						break
					}
					canon = append(canon, pem.EncodeToMemory(&pem.Block{Type: blk.Type, Bytes: blk.Bytes})...)
				}
				if !bytes.Equal(canon, f.Bytes) {
					t.Errorf("%s %s is not only canonical PEM blocks:\n%q", f.Role, f.Path, f.Bytes)
				}
			}
			if !sawKey {
				t.Errorf("no file holds the key")
			}
		})
	}
}

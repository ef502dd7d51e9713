package localca

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/profile"
)

func newCA(t *testing.T, validity time.Duration) (certPath, keyPath string) {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := Create(certPath, keyPath, "certctl test CA", validity); err != nil {
		t.Fatal(err)
	}
	return
}

func TestIssueECDSAAndRSA(t *testing.T) {
	certPath, keyPath := newCA(t, 24*time.Hour*365)
	ca, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, kt := range []string{profile.KeyECDSAP256, profile.KeyRSA2048} {
		t.Run(kt, func(t *testing.T) {
			is, err := ca.Issue(Request{Subject: profile.Subject{CommonName: "shop.example.com", Organization: []string{"Example"}},
				SANs: []string{"shop.example.com", "127.0.0.1"}, KeyType: kt, Validity: 720 * time.Hour}, now)
			if err != nil {
				t.Fatal(err)
			}
			b, err := material.Parse(is.Material)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Check(now, "127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			if err := b.Check(now, "shop.example.com"); err != nil {
				t.Fatal(err)
			}
			switch kt {
			case profile.KeyECDSAP256:
				if _, ok := b.Key.(*ecdsa.PrivateKey); !ok {
					t.Fatalf("key %T", b.Key)
				}
			case profile.KeyRSA2048:
				k, ok := b.Key.(*rsa.PrivateKey)
				if !ok || k.N.BitLen() != 2048 || b.Leaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
					t.Fatalf("key %T", b.Key)
				}
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Cert)
			if _, err := b.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "shop.example.com", CurrentTime: now}); err != nil {
				t.Fatalf("leaf does not verify to the CA: %v", err)
			}
			if got := is.NotAfter.Sub(now); got < 719*time.Hour || got > 721*time.Hour {
				t.Fatalf("validity %s", got)
			}
			if b.Leaf.Subject.String() != "CN=shop.example.com,O=Example" || len(b.Chain) != 1 || !b.Chain[0].Equal(ca.Cert) {
				t.Fatalf("subject %s, chain %d", b.Leaf.Subject, len(b.Chain))
			}
		})
	}
}

func TestIssueNeverOutlivesTheCA(t *testing.T) {
	certPath, keyPath := newCA(t, 48*time.Hour)
	ca, err := Load(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue(Request{SANs: []string{"localhost"}, Validity: 90 * 24 * time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !is.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Fatalf("leaf not after %s, CA %s", is.NotAfter, ca.Cert.NotAfter)
	}
}

// noKey fails when err carries key text: the PEM type's words or any line
// of the key file.
func noKey(t *testing.T, err error, keyFile string) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	if strings.Contains(msg, "PRIVATE KEY") {
		t.Fatalf("error names the key's PEM type: %s", msg)
	}
	data, _ := os.ReadFile(keyFile)
	for _, line := range strings.Split(string(data), "\n") {
		if len(line) > 8 && !strings.HasPrefix(line, "-----") && strings.Contains(msg, line[:8]) {
			t.Fatalf("error carries key bytes: %s", msg)
		}
	}
}

func TestLoadRefusals(t *testing.T) {
	certPath, keyPath := newCA(t, 24*time.Hour)
	t.Run("key readable by others", func(t *testing.T) {
		if err := os.Chmod(keyPath, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(keyPath, 0o600)
		_, err := Load(certPath, keyPath)
		var le *contract.FieldError
		if !errors.As(err, &le) || le.Field != "issuer.ca_key" || !strings.Contains(err.Error(), "0600") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("key of another CA", func(t *testing.T) {
		_, otherKey := newCA(t, 24*time.Hour)
		_, err := Load(certPath, otherKey)
		noKey(t, err, otherKey)
		if !strings.Contains(err.Error(), "does not belong") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("corrupt key", func(t *testing.T) {
		data, _ := os.ReadFile(keyPath)
		lines := strings.Split(string(data), "\n")
		lines[1] = "AAAA" + lines[1][4:]
		bad := filepath.Join(t.TempDir(), "bad.key")
		if err := os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(certPath, bad)
		noKey(t, err, bad)
	})
	t.Run("leaf is not a CA", func(t *testing.T) {
		ca, err := Load(certPath, keyPath)
		if err != nil {
			t.Fatal(err)
		}
		is, err := ca.Issue(Request{SANs: []string{"localhost"}, Validity: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		leaf, key := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "leaf.key")
		_ = os.WriteFile(leaf, []byte(is.Material.CertPEM), 0o644)
		_ = os.WriteFile(key, []byte(is.Material.KeyPEM), 0o600)
		_, err = Load(leaf, key)
		if err == nil || !strings.Contains(err.Error(), "not a CA") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing files", func(t *testing.T) {
		if _, err := Load(filepath.Join(t.TempDir(), "nope.pem"), keyPath); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("create refuses to overwrite", func(t *testing.T) {
		if err := Create(certPath, keyPath, "again", time.Hour); err == nil {
			t.Fatal("Create overwrote an existing CA")
		}
	})
}

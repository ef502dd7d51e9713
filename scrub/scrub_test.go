package scrub_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/scrub"
)

type testKey struct {
	name string
	key  crypto.Signer
	der  []byte // PKCS#8
	pem  []byte
	// the private scalars, big-endian
	scalars [][]byte
	// legacy encoding (PKCS#1, SEC 1) when there is one
	legacy []byte
}

func newKeys(t *testing.T) []testKey {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ek)
	if err != nil {
		t.Fatal(err)
	}
	ed, _ := ek.Bytes()
	keys := []testKey{
		{name: "rsa2048", key: rk, scalars: [][]byte{rk.D.Bytes(), rk.Primes[0].Bytes(), rk.Primes[1].Bytes()}, legacy: x509.MarshalPKCS1PrivateKey(rk)},
		{name: "p256", key: ek, scalars: [][]byte{ed}, legacy: sec1},
		{name: "ed25519", key: edk, scalars: [][]byte{edk.Seed()}},
	}
	for i := range keys {
		der, err := x509.MarshalPKCS8PrivateKey(keys[i].key)
		if err != nil {
			t.Fatal(err)
		}
		keys[i].der = der
		keys[i].pem = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	return keys
}

func wrap(s string, n int, indent string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(indent + s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(indent + s)
	return b.String()
}

func colonHex(b []byte, upper bool) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
		if upper {
			parts[i] = strings.ToUpper(parts[i])
		}
	}
	return strings.Join(parts, ":")
}

// opensslText prints a scalar as `openssl pkey -text` does: a leading 00
// when the top bit is set, 15 bytes a line, indented four spaces.
func opensslText(name string, b []byte) string {
	if b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	var lines []string
	for len(b) > 0 {
		n := min(15, len(b))
		l := "    " + colonHex(b[:n], false)
		b = b[n:]
		if len(b) > 0 {
			l += ":"
		}
		lines = append(lines, l)
	}
	return name + ":\n" + strings.Join(lines, "\n")
}

// encodings are the ways a command could print k.
func encodings(k testKey) map[string]string {
	body := strings.Join(strings.Split(strings.TrimSpace(string(k.pem)), "\n")[1:len(strings.Split(strings.TrimSpace(string(k.pem)), "\n"))-1], "\n")
	e := map[string]string{
		"pem":              string(k.pem),
		"pem-body":         body,
		"pem-body-indent":  "    " + strings.ReplaceAll(body, "\n", "\n    "),
		"pem-body-crlf":    strings.ReplaceAll(body, "\n", "\r\n"),
		"b64-std":          base64.StdEncoding.EncodeToString(k.der),
		"b64-raw":          base64.RawStdEncoding.EncodeToString(k.der),
		"b64-url":          base64.URLEncoding.EncodeToString(k.der),
		"b64-rawurl":       base64.RawURLEncoding.EncodeToString(k.der),
		"b64-76":           wrap(base64.StdEncoding.EncodeToString(k.der), 76, ""),
		"b64-of-pem-file":  wrap(base64.StdEncoding.EncodeToString(k.pem), 76, ""),
		"b64-of-pem-1line": base64.StdEncoding.EncodeToString(k.pem),
		"hex-der":          hex.EncodeToString(k.der),
		"hex-der-upper":    strings.ToUpper(hex.EncodeToString(k.der)),
		"hex-der-xxd":      wrap(hex.EncodeToString(k.der), 60, ""),
		"raw-der":          string(k.der),
		"tail-cut-b64":     base64.StdEncoding.EncodeToString(k.der)[len(base64.StdEncoding.EncodeToString(k.der))/4+1:],
		"pem-line-at-a-time": func() string {
			var out []string
			for _, l := range strings.Split(body, "\n") {
				out = append(out, base64.StdEncoding.EncodeToString([]byte(l+"\n")))
			}
			return strings.Join(out, "\n")
		}(),
	}
	if k.legacy != nil {
		e["b64-legacy"] = base64.StdEncoding.EncodeToString(k.legacy)
		e["raw-legacy"] = string(k.legacy)
	}
	for i, s := range k.scalars {
		e[fmt.Sprintf("scalar%d-hex", i)] = hex.EncodeToString(s)
		e[fmt.Sprintf("scalar%d-HEX", i)] = strings.ToUpper(hex.EncodeToString(s))
		e[fmt.Sprintf("scalar%d-colons", i)] = colonHex(s, false)
		e[fmt.Sprintf("scalar%d-COLONS", i)] = colonHex(s, true)
		e[fmt.Sprintf("scalar%d-openssl", i)] = opensslText("privateExponent", s)
		e[fmt.Sprintf("scalar%d-jwk", i)] = base64.RawURLEncoding.EncodeToString(s)
		e[fmt.Sprintf("scalar%d-0x", i)] = "0x" + hex.EncodeToString(s)
	}
	return e
}

// leaks reports a piece of enc (24 characters, at any position) left in out.
func leaks(out, enc string) (string, bool) {
	const n = 24
	for i := 0; i+n <= len(enc); i++ {
		piece := enc[i : i+n]
		if strings.TrimSpace(piece) != piece || strings.ContainsAny(piece, "\n:") {
			continue
		}
		if strings.Contains(out, piece) {
			return piece, true
		}
	}
	return "", false
}

// leaksKey is leaks, except that raw DER is checked for the private scalars
// only: its public part (an EC point) may stay.
func leaksKey(out, name, enc string, k testKey) (string, bool) {
	if !strings.HasPrefix(name, "raw-") {
		return leaks(out, enc)
	}
	for _, sc := range k.scalars {
		for i := 0; i+scrub.MinSecret <= len(sc); i++ {
			if strings.Contains(out, string(sc[i:i+scrub.MinSecret])) {
				return fmt.Sprintf("%x", sc[i:i+scrub.MinSecret]), true
			}
		}
	}
	return "", false
}

func TestEveryEncodingScrubbed(t *testing.T) {
	for _, k := range newKeys(t) {
		s := scrub.New(k.key)
		for name, enc := range encodings(k) {
			text := "reload: config error near line 3\n" + enc + "\nnginx: [emerg] done"
			out := s.String(text)
			if p, bad := leaksKey(out, name, enc, k); bad {
				t.Errorf("%s %s: %q survives in %q", k.name, name, p, out)
			}
			if !strings.HasPrefix(out, "reload: config error near line 3") || !strings.HasSuffix(out, "nginx: [emerg] done") {
				t.Errorf("%s %s: the text around the key was lost: %q", k.name, name, out)
			}
			if !strings.Contains(out, scrub.Redacted) {
				t.Errorf("%s %s: nothing redacted", k.name, name)
			}
		}
	}
}

// The key as AddPEM reads it from a file finds the same encodings.
func TestAddPEMFromFile(t *testing.T) {
	for _, k := range newKeys(t) {
		var s scrub.Scrubber
		s.AddPEM(append([]byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), k.pem...))
		if s.Empty() {
			t.Fatalf("%s: AddPEM found no key", k.name)
		}
		for name, enc := range encodings(k) {
			if p, bad := leaksKey(s.String("x "+enc+" y"), name, enc, k); bad {
				t.Errorf("%s %s: %q survives", k.name, name, p)
			}
		}
	}
}

// openssl itself prints the key's scalars: its output is scrubbed, the public
// parts it prints (modulus, public point) are not what matters, the private
// ones are gone.
func TestOpenSSLTextScrubbed(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	for _, k := range newKeys(t)[:2] {
		p := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(p, k.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("openssl", "pkey", "-text", "-noout", "-in", p).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl: %v %s", err, out)
		}
		got := scrub.New(k.key).String(string(out))
		for i, sc := range k.scalars {
			for _, enc := range []string{hex.EncodeToString(sc), colonHex(sc, false)} {
				if p, bad := leaks(strings.NewReplacer(":", "", "\n", "", " ", "").Replace(got), strings.ReplaceAll(enc, ":", "")); bad {
					t.Errorf("%s scalar %d: %q survives in\n%s", k.name, i, p, got)
				}
			}
		}
		for _, word := range []string{"Private-Key", "publicExponent"} {
			if k.name == "rsa2048" && !strings.Contains(got, word) {
				t.Errorf("%s: lost the labels: %s", k.name, got)
			}
		}
		out, err = exec.Command("openssl", "pkey", "-in", p, "-outform", "DER").Output()
		if err != nil {
			t.Fatal(err)
		}
		if p, bad := leaksKey(scrub.New(k.key).String("x"+string(out)+"y"), "raw-openssl", string(out), k); bad {
			t.Errorf("%s: raw DER from openssl: %s survives", k.name, p)
		}
	}
}

// What is not the key stays: the certificate in every spelling, its
// fingerprint, other keys, ordinary output.
func TestUnrelatedKept(t *testing.T) {
	keys := newKeys(t)
	s := scrub.New(keys[0].key, keys[1].key, keys[2].key)
	other := newKeys(t)
	for _, k := range keys[:2] {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "web-1.example.com"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"web-1.example.com"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.key.Public(), k.key)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(der)
		spki, _ := x509.MarshalPKIXPublicKey(k.key.Public())
		kept := []string{
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})),
			base64.StdEncoding.EncodeToString(der),
			hex.EncodeToString(der),
			hex.EncodeToString(sum[:]),
			colonHex(sum[:], true),
			string(der),
			"nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\nnginx: configuration file /etc/nginx/nginx.conf test is successful",
			"deadbeefcafebabe0123456789abcdef0123456789abcdef deadbeef",
			base64.StdEncoding.EncodeToString(other[0].der),
			hex.EncodeToString(other[1].scalars[0]),
		}
		if rk, ok := k.key.(*rsa.PrivateKey); ok {
			kept = append(kept, opensslText("modulus", rk.N.Bytes()), hex.EncodeToString(rk.N.Bytes()))
		}
		if _, err := exec.LookPath("openssl"); err == nil {
			p := filepath.Join(t.TempDir(), "cert.pem")
			os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
			out, err := exec.Command("openssl", "x509", "-text", "-noout", "-in", p).Output()
			if err != nil {
				t.Fatal(err)
			}
			kept = append(kept, string(out))
		}
		for i, text := range kept {
			if got := s.String(text); got != text {
				t.Errorf("%s kept[%d] changed:\n%q\n→\n%q", k.name, i, text, got)
			}
		}
	}
}

// A PEM private key block goes whatever key it holds, with or without a
// Scrubber (the behaviour the worker always had).
func TestPEMBlocksAlwaysRedacted(t *testing.T) {
	k := newKeys(t)[1]
	for _, s := range []*scrub.Scrubber{nil, scrub.New()} {
		for _, text := range []string{
			"a\n" + string(k.pem) + "b",
			"a\n" + string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k.legacy})) + "b",
			"a\n" + string(k.pem[:100]),
		} {
			got := s.String(text)
			if strings.Contains(got, "PRIVATE KEY") || !strings.HasPrefix(got, "a\n"+scrub.Redacted) {
				t.Errorf("%q → %q", text, got)
			}
		}
	}
}

// Fuzz-ish: the key's base64 and hex cut at random places, surrounded by
// random text, never leaves MinSecret bytes of it.
func TestRandomCutsScrubbed(t *testing.T) {
	k := newKeys(t)[0]
	s := scrub.New(k.key)
	// From the private exponent on, the DER is all secret (the modulus
	// before it is public: a piece of it is no leak).
	der := k.legacy[bytes.Index(k.legacy, k.scalars[0])-4:]
	encs := []string{base64.StdEncoding.EncodeToString(der), hex.EncodeToString(der), colonHex(k.scalars[0], false)}
	buf := make([]byte, 8)
	for i := 0; i < 300; i++ {
		rand.Read(buf)
		enc := encs[int(buf[0])%len(encs)]
		a := int(buf[1]) * 3 % (len(enc) - 80)
		b := a + 80 + int(buf[2])*2%(len(enc)-a-80+1)
		piece := enc[a:b]
		noise := base64.StdEncoding.EncodeToString(buf[3:])
		text := noise + " " + piece + " " + noise
		if p, bad := leaks(s.String(text), piece); bad {
			t.Fatalf("cut [%d:%d]: %q survives", a, b, p)
		}
	}
}

func BenchmarkScrub64KiB(b *testing.B) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	s := scrub.New(rk)
	text := bytes.Repeat([]byte("nginx: [warn] 0123456789abcdef ZGVhZGJlZWYK line\n"), 64<<10/50)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.String(string(text))
	}
}

func BenchmarkScrub64KiBBase64(b *testing.B) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	s := scrub.New(rk)
	junk := make([]byte, 48<<10)
	rand.Read(junk)
	text := wrap(base64.StdEncoding.EncodeToString(junk), 76, "")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.String(text)
	}
}

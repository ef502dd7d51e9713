package codec

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// certBundle stands in for the cert material workflows carry.
type certBundle struct {
	Name   string
	KeyPEM string
}

// testKey returns a fresh key and its raw bytes and base64 text.
func testKey(t testing.TB, id string) (Key, []byte, string) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(id, raw)
	if err != nil {
		t.Fatal(err)
	}
	return k, raw, base64.StdEncoding.EncodeToString(raw)
}

func mustNew(t testing.TB, keys ...Key) *Codec {
	t.Helper()
	c, err := New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func toPayload(t testing.TB, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func pemKey(t testing.TB) string {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func encodeOne(t testing.TB, c *Codec, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	out, err := c.Encode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("Encode returned %d payloads, want 1", len(out))
	}
	return out[0]
}

func decodeOne(t testing.TB, c *Codec, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	out, err := c.Decode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("Decode returned %d payloads, want 1", len(out))
	}
	return out[0]
}

func assertNoLeak(t *testing.T, what string, b []byte, secrets ...[]byte) {
	t.Helper()
	for _, s := range secrets {
		if len(s) > 0 && bytes.Contains(b, s) {
			t.Errorf("%s contains %q", what, s)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	if c.KeyID() != "k1" {
		t.Fatalf("KeyID = %q, want k1", c.KeyID())
	}
	bundle := certBundle{Name: "www.example.com", KeyPEM: pemKey(t)}
	cases := map[string]any{
		"string": "hello, plaintext world",
		"struct": bundle,
		"nil":    nil,
		"bytes":  []byte("raw bytes payload"),
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			p := toPayload(t, v)
			enc := encodeOne(t, c, p)

			md := enc.GetMetadata()
			if got := string(md[converter.MetadataEncoding]); got != MetadataEncoding {
				t.Errorf("encoding = %q, want %q", got, MetadataEncoding)
			}
			if got := string(md[MetadataKeyID]); got != "k1" {
				t.Errorf("key id = %q, want k1", got)
			}
			if len(md) != 3 {
				t.Errorf("metadata has %d entries, want 3 (no plaintext metadata): %v", len(md), md)
			}
			if len(p.Data) >= 4 {
				assertNoLeak(t, "encoded Data", enc.Data, p.Data)
			}
			assertNoLeak(t, "encoded Data", enc.Data, []byte("PRIVATE KEY"), []byte("www.example.com"), []byte("plaintext"))
			for mk, mv := range md {
				assertNoLeak(t, "metadata "+mk, mv, []byte("PRIVATE KEY"))
			}

			dec := decodeOne(t, c, enc)
			if !proto.Equal(dec, p) {
				t.Fatalf("round trip changed the payload:\n got %v\nwant %v", dec, p)
			}
		})
	}

	// The struct decodes back to the same value.
	p := toPayload(t, bundle)
	dec := decodeOne(t, c, encodeOne(t, c, p))
	var got certBundle
	if err := converter.GetDefaultDataConverter().FromPayload(dec, &got); err != nil {
		t.Fatal(err)
	}
	if got != bundle {
		t.Fatalf("got %+v, want %+v", got, bundle)
	}
}

func TestEncodeFreshNonce(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	p := toPayload(t, certBundle{Name: "a", KeyPEM: "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"})
	a := encodeOne(t, c, p)
	b := encodeOne(t, c, p)
	if bytes.Equal(a.Data, b.Data) {
		t.Fatal("two encodings of the same payload are identical")
	}
	ns := 12
	if bytes.Equal(a.Data[:ns], b.Data[:ns]) {
		t.Fatal("two encodings share a nonce")
	}
	// Both decode.
	for _, e := range []*commonpb.Payload{a, b} {
		if !proto.Equal(decodeOne(t, c, e), p) {
			t.Fatal("round trip mismatch")
		}
	}
}

func TestEncodeDecodeSeveral(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	in := []*commonpb.Payload{toPayload(t, "one"), toPayload(t, 2), toPayload(t, certBundle{Name: "three"})}
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(dec) != len(in) {
		t.Fatalf("got %d payloads, want %d", len(dec), len(in))
	}
	for i := range in {
		if !proto.Equal(dec[i], in[i]) {
			t.Errorf("payload %d: got %v, want %v", i, dec[i], in[i])
		}
	}
	// Empty input.
	if out, err := c.Encode(nil); err != nil || len(out) != 0 {
		t.Errorf("Encode(nil) = %v, %v", out, err)
	}
	if out, err := c.Decode(nil); err != nil || len(out) != 0 {
		t.Errorf("Decode(nil) = %v, %v", out, err)
	}
}

func TestRotation(t *testing.T) {
	a, _, _ := testKey(t, "A")
	b, _, _ := testKey(t, "B")
	old := mustNew(t, a)
	rotated := mustNew(t, a, b)
	if rotated.KeyID() != "B" {
		t.Fatalf("KeyID = %q, want B (the last key)", rotated.KeyID())
	}
	p := toPayload(t, certBundle{Name: "rotate", KeyPEM: "secret"})

	// Written before the rotation, read after it.
	underA := encodeOne(t, old, p)
	if got := string(underA.Metadata[MetadataKeyID]); got != "A" {
		t.Fatalf("key id = %q, want A", got)
	}
	if !proto.Equal(decodeOne(t, rotated, underA), p) {
		t.Fatal("payload under A does not decode with New(A, B)")
	}

	// Written after the rotation: under B.
	underB := encodeOne(t, rotated, p)
	if got := string(underB.Metadata[MetadataKeyID]); got != "B" {
		t.Fatalf("key id = %q, want B", got)
	}
	if !proto.Equal(decodeOne(t, rotated, underB), p) {
		t.Fatal("payload under B does not decode with New(A, B)")
	}

	// The old codec does not know B: the error names it.
	_, err := old.Decode([]*commonpb.Payload{underB})
	if err == nil {
		t.Fatal("New(A) decoded a payload under B")
	}
	if !strings.Contains(err.Error(), `"B"`) {
		t.Errorf("error %q does not name key id B", err)
	}
	if !strings.Contains(err.Error(), "A") {
		t.Errorf("error %q does not list the loaded keys", err)
	}
}

func TestDecodeUnknownKeyID(t *testing.T) {
	a, _, _ := testKey(t, "A")
	c := mustNew(t, a)
	enc := encodeOne(t, c, toPayload(t, "x"))
	enc.Metadata[MetadataKeyID] = []byte("retired-2023")
	_, err := c.Decode([]*commonpb.Payload{enc})
	if err == nil {
		t.Fatal("decoded a payload under an unknown key id")
	}
	if !strings.Contains(err.Error(), "retired-2023") {
		t.Errorf("error %q does not name the key id", err)
	}
}

func TestDecodeSameIDOtherKey(t *testing.T) {
	a1, _, _ := testKey(t, "A")
	a2, raw2, b642 := testKey(t, "A")
	enc := encodeOne(t, mustNew(t, a1), toPayload(t, "x"))
	_, err := mustNew(t, a2).Decode([]*commonpb.Payload{enc})
	if err == nil {
		t.Fatal("decoded with the wrong key material")
	}
	assertNoLeak(t, "error", []byte(err.Error()), raw2, []byte(b642))
}

func TestDecodeTampered(t *testing.T) {
	k, raw, b64 := testKey(t, "k1")
	c := mustNew(t, k)
	p := toPayload(t, certBundle{Name: "tamper", KeyPEM: pemKey(t)})
	enc := encodeOne(t, c, p)

	tamper := map[string]func(q *commonpb.Payload){
		"flip nonce byte":      func(q *commonpb.Payload) { q.Data[0] ^= 1 },
		"flip ciphertext byte": func(q *commonpb.Payload) { q.Data[len(q.Data)/2] ^= 0x80 },
		"flip tag byte":        func(q *commonpb.Payload) { q.Data[len(q.Data)-1] ^= 1 },
		"truncate":             func(q *commonpb.Payload) { q.Data = q.Data[:len(q.Data)-1] },
		"shorter than nonce":   func(q *commonpb.Payload) { q.Data = q.Data[:5] },
		"nonce only":           func(q *commonpb.Payload) { q.Data = q.Data[:12] },
		"empty":                func(q *commonpb.Payload) { q.Data = nil },
		"append":               func(q *commonpb.Payload) { q.Data = append(q.Data, 0) },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			q := proto.Clone(enc).(*commonpb.Payload)
			f(q)
			out, err := c.Decode([]*commonpb.Payload{q})
			if err == nil {
				t.Fatalf("tampered payload decoded: %v", out)
			}
			if out != nil {
				t.Errorf("Decode returned payloads with an error: %v", out)
			}
			msg := err.Error()
			assertNoLeak(t, "error", []byte(msg), raw, []byte(b64), []byte("PRIVATE KEY"))
			if !strings.Contains(msg, "k1") {
				t.Errorf("error %q does not name the key id", msg)
			}
		})
	}

	// The key id is authenticated: relabelling a payload under another
	// loaded key fails too.
	t.Run("relabel key id", func(t *testing.T) {
		other, _, _ := testKey(t, "k2")
		c2 := mustNew(t, k, other)
		q := proto.Clone(enc).(*commonpb.Payload)
		q.Metadata[MetadataKeyID] = []byte("k2")
		if _, err := c2.Decode([]*commonpb.Payload{q}); err == nil {
			t.Fatal("relabelled payload decoded")
		}
	})
}

func TestDecodePlainPassThrough(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	plain := []*commonpb.Payload{
		toPayload(t, "written before encryption"),
		toPayload(t, certBundle{Name: "old"}),
		toPayload(t, nil),
		{Data: []byte("no metadata at all")},
	}
	want := make([]*commonpb.Payload, len(plain))
	for i, p := range plain {
		want[i] = proto.Clone(p).(*commonpb.Payload)
	}
	// Mixed with an encrypted one.
	enc := encodeOne(t, c, toPayload(t, "new"))
	in := append(append([]*commonpb.Payload{}, plain...), enc)
	out, err := c.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		if !proto.Equal(out[i], want[i]) {
			t.Errorf("plain payload %d changed: got %v, want %v", i, out[i], want[i])
		}
	}
	if !proto.Equal(out[len(plain)], toPayload(t, "new")) {
		t.Errorf("encrypted payload among plain ones: got %v", out[len(plain)])
	}
}

func TestParseKeys(t *testing.T) {
	_, _, b1 := testKey(t, "x")
	_, _, b2 := testKey(t, "x")
	_, _, b3 := testKey(t, "x")
	cases := []struct {
		name string
		text string
		ids  []string
	}{
		{"colon", "k1:" + b1, []string{"k1"}},
		{"space", "k1 " + b1, []string{"k1"}},
		{"colon with spaces", "  k1 : " + b1 + "  ", []string{"k1"}},
		{"several spaces", "k1    " + b1, []string{"k1"}},
		{"comma", "k1:" + b1 + ",k2:" + b2 + ", k3:" + b3, []string{"k1", "k2", "k3"}},
		{"newline", "k1:" + b1 + "\nk2 " + b2 + "\r\nk3:" + b3 + "\n", []string{"k1", "k2", "k3"}},
		{"comments and blanks", "# rotated 2024-01\n\nold " + b1 + "\n   # current\nnew:" + b2 + "\n\n", []string{"old", "new"}},
		{"trailing comma", "k1:" + b1 + ",", []string{"k1"}},
		{"empty", "", nil},
		{"only comments", "# nothing\n#here\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseKeys(tc.text)
			if err != nil {
				t.Fatalf("ParseKeys: %v", err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.ids, ",") {
				t.Fatalf("ids = %v, want %v", ids, tc.ids)
			}
		})
	}

	// Parsed keys work, and the last one encrypts.
	keys, err := ParseKeys("a:" + b1 + "\nb:" + b2)
	if err != nil {
		t.Fatal(err)
	}
	c := mustNew(t, keys...)
	if c.KeyID() != "b" {
		t.Fatalf("KeyID = %q, want b", c.KeyID())
	}
	p := toPayload(t, "parsed")
	if !proto.Equal(decodeOne(t, c, encodeOne(t, c, p)), p) {
		t.Fatal("round trip with parsed keys failed")
	}

	// The same base64 text under the same id in two codecs decrypts.
	k1, _ := ParseKeys("a:" + b1)
	k2, _ := ParseKeys("a " + b1)
	if !proto.Equal(decodeOne(t, mustNew(t, k2...), encodeOne(t, mustNew(t, k1...), p)), p) {
		t.Fatal("a key parsed twice from the same text does not decrypt")
	}
}

func TestParseKeysErrors(t *testing.T) {
	_, _, good := testKey(t, "x")
	// A secret that is not valid base64: the error must not echo it.
	secret := "s3cr3t!!notbase64$$" + good[:20]
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	long := base64.StdEncoding.EncodeToString(make([]byte, 64))
	cases := []struct {
		name   string
		text   string
		secret string
		want   string
	}{
		{"bad base64", "k1:" + secret, secret, "base64"},
		{"bad base64 space form", "k1 " + secret, secret, "base64"},
		{"bad base64 second entry", "k0:" + good + ",k1:" + secret, secret, "base64"},
		{"truncated base64", "k1:" + good[:len(good)-3], good[:len(good)-3], "base64"},
		{"16-byte key", "k1:" + short, short, "16 bytes"},
		{"64-byte key", "k1:" + long, long, "64 bytes"},
		{"empty key", "k1:", "", "0 bytes"},
		{"no separator", good, good, "id:base64key"},
		{"empty id", ":" + good, good, "id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseKeys(tc.text)
			if err == nil {
				t.Fatalf("ParseKeys accepted %q: %d keys", tc.text, len(keys))
			}
			if keys != nil {
				t.Errorf("keys returned with an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q echoes the secret", err)
			}
			if strings.Contains(err.Error(), good) {
				t.Errorf("error %q echoes a good key", err)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	raw := make([]byte, 32)
	for _, id := range []string{"", "a b", "a:b", "a,b", "a\tb", "a\nb"} {
		if _, err := NewKey(id, raw); err == nil {
			t.Errorf("NewKey(%q) accepted", id)
		}
	}
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := NewKey("k", make([]byte, n)); err == nil {
			t.Errorf("NewKey with %d bytes accepted", n)
		}
	}
	if k, err := NewKey("k-2024.1_x", raw); err != nil || k.ID != "k-2024.1_x" {
		t.Errorf("NewKey: %v, %v", k, err)
	}
}

func TestGenerateKey(t *testing.T) {
	k, b64, err := GenerateKey("gen")
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "gen" {
		t.Fatalf("ID = %q", k.ID)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != 32 {
		t.Fatalf("base64 %q: %d bytes, %v", b64, len(raw), err)
	}
	// The text parses back to the same key.
	parsed, err := ParseKeys("gen:" + b64)
	if err != nil {
		t.Fatal(err)
	}
	p := toPayload(t, "gen")
	if !proto.Equal(decodeOne(t, mustNew(t, parsed...), encodeOne(t, mustNew(t, k), p)), p) {
		t.Fatal("generated key and its base64 text differ")
	}
	if _, other, _ := GenerateKey("gen"); other == b64 {
		t.Fatal("two generated keys are equal")
	}
	if _, _, err := GenerateKey("bad id"); err == nil {
		t.Fatal("GenerateKey accepted a bad id")
	}
}

func TestNew(t *testing.T) {
	if _, err := New(); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("New() = %v, want ErrNoKeys", err)
	}
	a, _, _ := testKey(t, "A")
	a2, _, _ := testKey(t, "A")
	b, _, _ := testKey(t, "B")
	if _, err := New(a, b, a2); err == nil || !strings.Contains(err.Error(), `"A"`) {
		t.Fatalf("New with duplicate id: %v", err)
	}
	if _, err := New(a, a); err == nil {
		t.Fatal("New(a, a) accepted")
	}
	// A Key not made by NewKey has no cipher: refused, not a panic later.
	if _, err := New(Key{ID: "zero"}); err == nil {
		t.Fatal("New accepted a zero Key")
	}
	if _, err := New(a, Key{}); err == nil {
		t.Fatal("New accepted a zero Key")
	}
}

func writeKeyFile(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "codec.keys")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f, mode); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFromEnv(t *testing.T) {
	_, _, b1 := testKey(t, "x")
	_, _, b2 := testKey(t, "x")
	p := toPayload(t, certBundle{Name: "env", KeyPEM: "k"})

	t.Run("neither set", func(t *testing.T) {
		t.Setenv(EnvKeyFile, "")
		t.Setenv(EnvKeys, "")
		if _, err := FromEnv(); !errors.Is(err, ErrNoKeys) {
			t.Fatalf("FromEnv = %v, want ErrNoKeys", err)
		}
	})

	t.Run("unset", func(t *testing.T) {
		t.Setenv(EnvKeyFile, "")
		t.Setenv(EnvKeys, "")
		os.Unsetenv(EnvKeyFile)
		os.Unsetenv(EnvKeys)
		if _, err := FromEnv(); !errors.Is(err, ErrNoKeys) {
			t.Fatalf("FromEnv = %v, want ErrNoKeys", err)
		}
	})

	t.Run("env keys", func(t *testing.T) {
		t.Setenv(EnvKeyFile, "")
		t.Setenv(EnvKeys, "old:"+b1+",new:"+b2)
		c, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if c.KeyID() != "new" {
			t.Fatalf("KeyID = %q, want new", c.KeyID())
		}
		if !proto.Equal(decodeOne(t, c, encodeOne(t, c, p)), p) {
			t.Fatal("round trip failed")
		}
	})

	t.Run("env keys bad", func(t *testing.T) {
		t.Setenv(EnvKeyFile, "")
		t.Setenv(EnvKeys, "k:not*base64*"+b1)
		_, err := FromEnv()
		if err == nil {
			t.Fatal("FromEnv accepted bad base64")
		}
		if !strings.Contains(err.Error(), EnvKeys) {
			t.Errorf("error %q does not name %s", err, EnvKeys)
		}
		if strings.Contains(err.Error(), b1) {
			t.Errorf("error %q echoes the secret", err)
		}
	})

	t.Run("file 0600", func(t *testing.T) {
		f := writeKeyFile(t, "# certctl keys\nold "+b1+"\nnew:"+b2+"\n", 0o600)
		t.Setenv(EnvKeyFile, f)
		t.Setenv(EnvKeys, "")
		c, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if c.KeyID() != "new" {
			t.Fatalf("KeyID = %q, want new", c.KeyID())
		}
		if !proto.Equal(decodeOne(t, c, encodeOne(t, c, p)), p) {
			t.Fatal("round trip failed")
		}
	})

	t.Run("file 0400", func(t *testing.T) {
		f := writeKeyFile(t, "k "+b1+"\n", 0o400)
		t.Setenv(EnvKeyFile, f)
		t.Setenv(EnvKeys, "")
		if _, err := FromEnv(); err != nil {
			t.Fatal(err)
		}
	})

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run("file "+mode.String(), func(t *testing.T) {
			f := writeKeyFile(t, "k "+b1+"\n", mode)
			t.Setenv(EnvKeyFile, f)
			t.Setenv(EnvKeys, "")
			_, err := FromEnv()
			if err == nil {
				t.Fatalf("FromEnv accepted a key file of mode %v", mode)
			}
			if !strings.Contains(err.Error(), "0600") {
				t.Errorf("error %q does not say 0600", err)
			}
			if strings.Contains(err.Error(), b1) {
				t.Errorf("error %q echoes the key", err)
			}
		})
	}

	t.Run("file missing", func(t *testing.T) {
		t.Setenv(EnvKeyFile, filepath.Join(t.TempDir(), "absent"))
		t.Setenv(EnvKeys, "k:"+b1)
		if _, err := FromEnv(); err == nil {
			t.Fatal("FromEnv accepted a missing key file")
		}
	})

	t.Run("file bad", func(t *testing.T) {
		f := writeKeyFile(t, "k "+b1[:10]+"%%"+"\n", 0o600)
		t.Setenv(EnvKeyFile, f)
		t.Setenv(EnvKeys, "")
		_, err := FromEnv()
		if err == nil {
			t.Fatal("FromEnv accepted a bad key file")
		}
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name the file", err)
		}
		if strings.Contains(err.Error(), b1[:10]) {
			t.Errorf("error %q echoes the secret", err)
		}
	})

	t.Run("file empty", func(t *testing.T) {
		f := writeKeyFile(t, "# no keys yet\n", 0o600)
		t.Setenv(EnvKeyFile, f)
		t.Setenv(EnvKeys, "")
		if _, err := FromEnv(); !errors.Is(err, ErrNoKeys) {
			t.Fatalf("FromEnv = %v, want ErrNoKeys", err)
		}
	})

	t.Run("file and env", func(t *testing.T) {
		f := writeKeyFile(t, "old "+b1+"\n", 0o600)
		t.Setenv(EnvKeyFile, f)
		t.Setenv(EnvKeys, "new:"+b2)
		c, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if c.KeyID() != "new" {
			t.Fatalf("KeyID = %q, want new (env keys come after the file)", c.KeyID())
		}
		// A payload under the file's key still decodes.
		t.Setenv(EnvKeys, "")
		oldOnly, err := FromEnv()
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(decodeOne(t, c, encodeOne(t, oldOnly, p)), p) {
			t.Fatal("payload under the file's key does not decode")
		}
	})

	t.Run("file and env duplicate id", func(t *testing.T) {
		f := writeKeyFile(t, "k "+b1+"\n", 0o600)
		t.Setenv(EnvKeyFile, f)
		t.Setenv(EnvKeys, "k:"+b2)
		if _, err := FromEnv(); err == nil {
			t.Fatal("FromEnv accepted the same id twice")
		}
	})
}

func TestDataConverter(t *testing.T) {
	a, _, _ := testKey(t, "A")
	b, _, _ := testKey(t, "B")
	c := mustNew(t, a, b)
	dc := c.DataConverter()
	in := certBundle{Name: "dc.example.com", KeyPEM: pemKey(t)}

	p, err := dc.ToPayload(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(p.Metadata[converter.MetadataEncoding]); got != MetadataEncoding {
		t.Fatalf("encoding = %q, want %q", got, MetadataEncoding)
	}
	if got := string(p.Metadata[MetadataKeyID]); got != "B" {
		t.Fatalf("key id = %q, want B", got)
	}
	assertNoLeak(t, "Data", p.Data, []byte("PRIVATE KEY"), []byte("dc.example.com"))

	var out certBundle
	if err := dc.FromPayload(p, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("got %+v, want %+v", out, in)
	}

	// Several values.
	ps, err := dc.ToPayloads("first", 42, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range ps.Payloads {
		if string(q.Metadata[converter.MetadataEncoding]) != MetadataEncoding {
			t.Fatalf("payload not encrypted: %v", q)
		}
	}
	var s string
	var n int
	var bundle certBundle
	if err := dc.FromPayloads(ps, &s, &n, &bundle); err != nil {
		t.Fatal(err)
	}
	if s != "first" || n != 42 || bundle != in {
		t.Fatalf("got %q %d %+v", s, n, bundle)
	}

	// A history written before encryption still reads (unless a payload
	// holds a private key: see TestDecodeRefusesPlaintextPrivateKey).
	plain, err := converter.GetDefaultDataConverter().ToPayload("a fingerprint")
	if err != nil {
		t.Fatal(err)
	}
	var fromPlain string
	if err := dc.FromPayload(plain, &fromPlain); err != nil {
		t.Fatal(err)
	}
	if fromPlain != "a fingerprint" {
		t.Fatalf("plain: got %q", fromPlain)
	}

	// ToString of an encrypted payload decodes it.
	if str := dc.ToString(p); !strings.Contains(str, "dc.example.com") {
		t.Errorf("ToString = %q", str)
	}
}

func FuzzDecode(f *testing.F) {
	k, _, _ := testKey(f, "k1")
	c := mustNew(f, k)
	enc, err := c.Encode([]*commonpb.Payload{toPayload(f, certBundle{Name: "seed", KeyPEM: "x"})})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc[0].Data, "k1")
	f.Add([]byte{}, "k1")
	f.Add(make([]byte, 12), "k1")
	f.Add(make([]byte, 28), "k1")
	f.Add(make([]byte, 64), "")
	f.Add([]byte("not encrypted at all"), "other")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		p := &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncoding),
				MetadataKeyID:              []byte(id),
				metadataCipher:             []byte(cipherName),
			},
			Data: data,
		}
		out, err := c.Decode([]*commonpb.Payload{p})
		if err == nil && (len(out) != 1 || out[0] == nil) {
			t.Fatalf("Decode returned %v without an error", out)
		}
		if err != nil && out != nil {
			t.Fatalf("Decode returned payloads with an error")
		}
	})
}

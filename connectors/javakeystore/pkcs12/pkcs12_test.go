package pkcs12

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func seeded(n byte) *rand.ChaCha8 { return rand.NewChaCha8([32]byte{n}) }

func bagsOf(t *testing.T, data []byte, password []byte) *Store {
	t.Helper()
	s, err := Decode(data, password)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantEntries(t *testing.T, s *Store, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, e := range s.Entries() {
		got[e.Alias] = e.Type
	}
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for a, typ := range want {
		if got[a] != typ {
			t.Fatalf("entries %v, want %v", got, want)
		}
	}
}

func wantKey(t *testing.T, s *Store, alias string, password []byte, c chain) {
	t.Helper()
	key, ch, err := s.Key(alias, password)
	if err != nil {
		t.Fatalf("%s: %v", alias, err)
	}
	if !bytes.Equal(key, c.key) {
		t.Fatalf("%s: another key", alias)
	}
	if len(ch) < len(c.certs) {
		t.Fatalf("%s: a chain of %d, want at least %d", alias, len(ch), len(c.certs))
	}
	for i := range c.certs {
		if !bytes.Equal(ch[i], c.certs[i]) {
			t.Fatalf("%s: chain[%d] differs", alias, i)
		}
	}
}

// TestRoundTrip writes two key entries (one under its own key password) and
// a trusted certificate, reads them back, renews one and checks the others
// are kept bag for bag and no chain certificate piles up.
func TestRoundTrip(t *testing.T) {
	c1, c2 := newChain(t, "tomcat.test"), newChain(t, "other.test")
	keyPW := []byte("key-secret")
	s := New()
	if err := s.SetKey("tomcat", c1.key, c1.certs, pw, c1.leaf.NotBefore, seeded(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetKey("other", c2.key, c2.certs, keyPW, c2.leaf.NotBefore, seeded(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTrusted("trusted", c1.root); err != nil {
		t.Fatal(err)
	}
	data, err := s.Encode(pw, seeded(3))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Encode(pw, seeded(3)); !bytes.Equal(again, data) {
		t.Fatal("the same seed wrote different bytes")
	}
	if other, _ := s.Encode(pw, seeded(4)); bytes.Equal(other, data) {
		t.Fatal("another seed wrote the same bytes: the salts do not come from the reader")
	}

	got := bagsOf(t, data, pw)
	wantEntries(t, got, map[string]string{"tomcat": PrivateKeyEntry, "other": PrivateKeyEntry, "trusted": TrustedCertEntry})
	wantKey(t, got, "tomcat", pw, c1)
	wantKey(t, got, "other", keyPW, c2)
	if _, _, err := got.Key("other", pw); !errors.Is(err, ErrKeyPassword) {
		t.Fatalf("other under the store password: %v, want ErrKeyPassword", err)
	}
	if _, ch, _ := got.Key("tomcat", pw); len(ch) != 3 || !bytes.Equal(ch[2], c1.root) {
		t.Fatalf("tomcat's chain is %d long: want the root (a trusted entry) found by issuer, as Java does", len(ch))
	}

	// Renewal from the same intermediate: same number of bags, the others
	// byte for byte.
	before := map[string]bool{}
	for _, b := range got.bags {
		if !(b.friendlyName == "tomcat") {
			before[string(b.raw)] = true
		}
	}
	n := len(got.bags)
	c3 := c1.renewed(t, "tomcat.test")
	if err := got.SetKey("tomcat", c3.key, c3.certs, pw, c3.leaf.NotBefore, seeded(5)); err != nil {
		t.Fatal(err)
	}
	if len(got.bags) != n {
		t.Fatalf("%d bags after renewal, %d before: the intermediate piled up or went", len(got.bags), n)
	}
	for _, b := range got.bags {
		if b.friendlyName != "tomcat" && !before[string(b.raw)] {
			t.Fatalf("a bag of another entry changed (%s %q)", b.id, b.friendlyName)
		}
	}
	data, err = got.Encode(pw, seeded(6))
	if err != nil {
		t.Fatal(err)
	}
	got = bagsOf(t, data, pw)
	wantEntries(t, got, map[string]string{"tomcat": PrivateKeyEntry, "other": PrivateKeyEntry, "trusted": TrustedCertEntry})
	wantKey(t, got, "tomcat", pw, c3)
	wantKey(t, got, "other", keyPW, c2)

	// Renewal to another CA: the old intermediate goes, the new one comes.
	c4 := newChain(t, "tomcat.test")
	if err := got.SetKey("tomcat", c4.key, c4.certs, pw, c4.leaf.NotBefore, seeded(7)); err != nil {
		t.Fatal(err)
	}
	if got.hasCert(c1.inter.Raw) || !got.hasCert(c4.certs[1]) {
		t.Fatal("the old intermediate stayed or the new one is missing")
	}
	wantKey(t, got, "tomcat", pw, c4)
}

// TestPasswords: the wrong store password and a tampered store are
// ErrPassword, before any bag is read.
func TestPasswords(t *testing.T) {
	c := newChain(t, "tomcat.test")
	s := New()
	if err := s.SetKey("tomcat", c.key, c.certs, pw, c.leaf.NotBefore, seeded(1)); err != nil {
		t.Fatal(err)
	}
	data, err := s.Encode(pw, seeded(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data, []byte("not-the-password")); !errors.Is(err, ErrPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	// Flip one byte in the middle: inside the MAC'd content (the MacData
	// is the last hundred bytes).
	tampered := append([]byte{}, data...)
	tampered[len(tampered)/2] ^= 1
	if _, err := Decode(tampered, pw); !errors.Is(err, ErrPassword) {
		t.Fatalf("tampered store: %v, want ErrPassword", err)
	}
	if _, err := Decode(data[:len(data)-1], pw); err == nil || errors.Is(err, ErrPassword) {
		t.Fatalf("truncated store: %v, want malformed", err)
	}
}

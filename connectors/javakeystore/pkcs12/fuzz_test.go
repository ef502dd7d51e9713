package pkcs12

import (
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzDecode feeds Decode arbitrary stores and passwords, seeded with real
// ones (a key entry and a trusted entry, under the right and a wrong
// password): it must never panic, and a store it accepts must list, read
// and re-encode without panicking. Its limits (size, bags, iterations) keep
// each input cheap. `go test -run '^$' -fuzz FuzzDecode ./connectors/javakeystore/pkcs12/`
// explores further; in `make test` the seeds run once.
func FuzzDecode(f *testing.F) {
	c := newChain(&testing.T{}, "fuzz.example")
	s := New()
	pw := []byte("changeit")
	if err := s.SetKey("tomcat", c.key, c.certs, pw, time.Unix(1700000000, 0), rand.NewChaCha8([32]byte{1})); err != nil {
		f.Fatal(err)
	}
	if err := s.AddTrusted("root", c.root); err != nil {
		f.Fatal(err)
	}
	data, err := s.Encode(pw, rand.NewChaCha8([32]byte{2}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data, pw)
	f.Add(data, []byte("wrong"))
	f.Add(data[:len(data)/2], pw)
	f.Add([]byte{0x30, 0x80, 0x02, 0x01, 0x03}, pw)
	f.Fuzz(func(t *testing.T, data, password []byte) {
		s, err := Decode(data, password)
		if err != nil {
			return
		}
		for _, e := range s.Entries() {
			_, _, _ = s.Key(e.Alias, password)
		}
		out, err := s.Encode(password, rand.NewChaCha8([32]byte{3}))
		if err != nil {
			return
		}
		again, err := Decode(out, password)
		if err != nil {
			t.Fatalf("a store Decode accepted does not read back after Encode: %v", err)
		}
		if len(again.Entries()) != len(s.Entries()) {
			t.Fatalf("entries %d after a round trip, %d before", len(again.Entries()), len(s.Entries()))
		}
	})
}

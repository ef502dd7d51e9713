package pkcs12

// The attacker's tests: a store planted on the host by someone who can
// write keystore_path must not hang the worker, exhaust its memory or be
// taken for a good store. Each must fail (not hang) for the bound it tests.

import (
	"bytes"
	"encoding/asn1"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var pw = []byte("store-secret")

// signed is a PFX around authSafe with a MAC that verifies with pw (one
// iteration): the store of a planter who knows the password.
func signed(authSafe []byte) []byte {
	h, v, _ := digest(oidSHA256)
	return pfx(authSafe, 1, mac(h, v, pw, make([]byte, 20), 1, authSafe))
}

// pfx is a PFX around authSafe (an AuthenticatedSafe's DER) with a MacData
// of macIter iterations and the digest sum (no MacData when sum is nil).
func pfx(authSafe []byte, macIter int64, sum []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddBytes(dataInfo(authSafe))
		if sum == nil {
			return
		}
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidSHA256)
					b.AddASN1NULL()
				})
				b.AddASN1OctetString(sum)
			})
			b.AddASN1OctetString(make([]byte, 20))
			b.AddASN1Int64(macIter)
		})
	})
	return b.BytesOrPanic()
}

// authSafe is an AuthenticatedSafe of the ContentInfos infos.
func authSafe(infos ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, i := range infos {
			b.AddBytes(i)
		}
	})
	return b.BytesOrPanic()
}

// encryptedInfo is an encryptedData ContentInfo with the algorithm alg (an
// AlgorithmIdentifier's DER) and ciphertext ct.
func encryptedInfo(alg, ct []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidEncryptedData)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(0)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidData)
					b.AddBytes(alg)
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ct) })
				})
			})
		})
	})
	return b.BytesOrPanic()
}

// pbes2Alg is a PBES2 AlgorithmIdentifier with iter PBKDF2 iterations.
func pbes2Alg(iter int64) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidPBES2)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidPBKDF2)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(make([]byte, 8))
					b.AddASN1Int64(iter)
				})
			})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256CBC)
				b.AddASN1OctetString(make([]byte, 16))
			})
		})
	})
	return b.BytesOrPanic()
}

func wantLimit(t *testing.T, err error, what string) {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), what) {
		t.Fatalf("got %v, want a refusal naming %q", err, what)
	}
}

// A MAC asking for 2^31 iterations is refused before one is computed.
func TestAttackMACIterations(t *testing.T) {
	_, err := Decode(pfx(authSafe(), 1<<31, make([]byte, 32)), pw)
	wantLimit(t, err, "iteration count of 2147483648")
}

// An encryptedData asking for 2^31 iterations (PBES2 or the PKCS #12 PBE)
// is refused before any is computed.
func TestAttackCipherIterations(t *testing.T) {
	_, err := Decode(signed(authSafe(encryptedInfo(pbes2Alg(1<<31), make([]byte, 32)))), pw)
	wantLimit(t, err, "iteration count of 2147483648")

	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidPBEWithSHAAnd3DES)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(make([]byte, 8))
			b.AddASN1Int64(1 << 31)
		})
	})
	_, err = Decode(signed(authSafe(encryptedInfo(b.BytesOrPanic(), make([]byte, 32)))), pw)
	wantLimit(t, err, "iteration count of 2147483648")
}

// A key bag asking for 2^31 iterations in a store whose MAC verifies (its
// planter knew the store password) is refused when the key is read.
func TestAttackKeyIterations(t *testing.T) {
	var v cryptobyte.Builder
	v.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(pbes2Alg(1 << 31))
		b.AddASN1OctetString(make([]byte, 32))
	})
	kb, err := newBag(oidShroudedKeyBag, v.BytesOrPanic(), "tomcat", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{bags: []*bag{kb}}
	data, err := s.encode(pw, rand.NewChaCha8([32]byte{}), params{iter: 1, macIter: 1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data, pw)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = got.Key("tomcat", pw)
	wantLimit(t, err, "iteration count of 2147483648")
}

// Key derivations each within MaxIterations but summing past MaxWork are
// refused at the one that passes it.
func TestAttackWorkSum(t *testing.T) {
	r := rand.NewChaCha8([32]byte{})
	var infos [][]byte
	for range MaxWork/MaxIterations + 1 {
		alg, ct, err := encrypt(safeContents(nil), pw, MaxIterations, r)
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, encryptedInfo(alg, ct))
	}
	_, err := Decode(signed(authSafe(infos...)), pw)
	wantLimit(t, err, "summing to more than")
}

// safeContentsBag nested 20,000 deep (under MaxSize): refused at the first
// level, no recursion.
func TestAttackNesting(t *testing.T) {
	// Built inside out as header prefixes (no copying of the inner levels):
	// each level is SafeContents{SafeBag{safeContentsBag, [0]{level}}}.
	der := func(tag byte, n int) []byte {
		if n < 128 {
			return []byte{tag, byte(n)}
		}
		var l []byte
		for ; n > 0; n >>= 8 {
			l = append([]byte{byte(n)}, l...)
		}
		return append([]byte{tag, 0x80 | byte(len(l))}, l...)
	}
	var oid cryptobyte.Builder
	oid.AddASN1ObjectIdentifier(oidSafeContents)
	oidDER := oid.BytesOrPanic()
	core := safeContents(nil)
	n := len(core)
	var prefixes [][]byte
	for range 20000 {
		ctx := der(0xa0, n)
		bagLen := len(oidDER) + len(ctx) + n
		p := append(append(append(der(0x30, bagLen+len(der(0x30, bagLen))), der(0x30, bagLen)...), oidDER...), ctx...)
		n += len(p)
		prefixes = append(prefixes, p)
	}
	var inner []byte
	for i := len(prefixes) - 1; i >= 0; i-- {
		inner = append(inner, prefixes[i]...)
	}
	inner = append(inner, core...)
	if len(inner) != n {
		t.Fatalf("built %d bytes, counted %d", len(inner), n)
	}
	data := signed(authSafe(dataInfo(inner)))
	if len(data) > MaxSize {
		t.Fatalf("the test store is %d bytes: over MaxSize, so it tests the size bound instead", len(data))
	}
	_, err := Decode(data, pw)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "nested SafeContents") {
		t.Fatalf("got %v", err)
	}
}

// More than MaxSize bytes, or more than MaxBags bags, is refused.
func TestAttackSizeAndCount(t *testing.T) {
	_, err := Decode(make([]byte, MaxSize+1), pw)
	wantLimit(t, err, "bytes (more than")

	var many [][]byte
	for range MaxBags + 1 {
		b, err := newBag(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 5}, []byte{5, 0}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		many = append(many, b.raw)
	}
	_, err = Decode(signed(authSafe(dataInfo(safeContents(many)))), pw)
	wantLimit(t, err, "bags")
}

// A store without a MAC is refused: rewritten, its planted bags would come
// out under a MAC that verifies.
func TestAttackNoMAC(t *testing.T) {
	c := newChain(t, "evil.test")
	s := New()
	if err := s.AddTrusted("evil", c.root); err != nil {
		t.Fatal(err)
	}
	var bags [][]byte
	for _, b := range s.bags {
		bags = append(bags, b.raw)
	}
	data := pfx(authSafe(dataInfo(safeContents(bags))), 0, nil)
	var ue *UnsupportedError
	if _, err := Decode(data, pw); !errors.As(err, &ue) || !strings.Contains(err.Error(), "without a MAC") {
		t.Fatalf("got %v", err)
	}
	if _, err := Decode(signed(authSafe(dataInfo(safeContents(bags)))), pw); err != nil {
		t.Fatalf("the same store with a MAC: %v", err)
	}
}

// BER's indefinite lengths are refused as malformed, not read.
func TestAttackIndefiniteLength(t *testing.T) {
	data := []byte{0x30, 0x80, 0x02, 0x01, 0x03, 0x00, 0x00}
	if _, err := Decode(data, pw); !errors.Is(err, errMalformed) {
		t.Fatalf("got %v", err)
	}
}

// Certificates each the other's issuer: chain building stops, no loop.
func TestAttackChainLoop(t *testing.T) {
	x, y := crossPair(t)
	k, err := newBag(oidKeyBag, []byte{5, 0}, "a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{bags: []*bag{k}}
	for i, d := range [][]byte{x, y} {
		var id []byte
		if i == 0 {
			id = []byte("1")
		}
		b, err := newBag(oidCertBag, certValue(d), "", id)
		if err != nil {
			t.Fatal(err)
		}
		s.bags = append(s.bags, b)
	}
	if ch := s.chainOf(k); len(ch) != 2 || !bytes.Equal(ch[0], x) || !bytes.Equal(ch[1], y) {
		t.Fatalf("chain of %d", len(ch))
	}
}

// Package scrub removes private keys from text: command output and error
// messages that are about to reach a log, an error or a workflow history.
//
// A key leaks in many spellings, and the worker knows the key, so it can
// recognise all of them: the PEM block, the DER (raw bytes), base64 of the
// DER (standard, unpadded, URL alphabet, whole or one PEM line at a time, or
// of the PEM text itself), and hex of the private scalars (RSA's private
// exponent and primes, EC's D, Ed25519's seed) in either case, with or
// without colons, split over indented lines as `openssl pkey -text` prints
// them, in groups separated by spaces, dashes or commas, "0x"-prefixed, or
// as a decimal number; base64 split into groups by spaces or tabs. Rather
// than list encodings, the Scrubber decodes every run of hex, of base64 and
// of decimal digits in the text and redacts the run when the decoded bytes
// hold MinSecret consecutive bytes of a key's secret. Pieces that are
// public (a modulus, an EC point: they are in the certificate too) never
// count, so a certificate, its PEM or its fingerprint is kept.
package scrub

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Redacted replaces what was removed.
const Redacted = "[key material redacted]"

// MinSecret is how many consecutive bytes of a secret make a match: short
// enough to catch a fragment cut by an output tail, long enough (2^128) that
// unrelated data never matches by chance.
const MinSecret = 16

// minRun is the shortest run of text worth decoding: one that cannot hold
// MinSecret bytes is skipped.
const (
	minHexDigits = 2 * MinSecret
	minB64Chars  = (MinSecret*4 + 2) / 3
)

// maxDepth bounds decoding of encodings of encodings (base64 of a PEM file).
const maxDepth = 2

type window [MinSecret]byte

// Scrubber knows a set of private keys. The zero value and nil know none and
// still remove PEM private key blocks. A Scrubber is safe for concurrent use
// once built.
type Scrubber struct {
	// secret holds every MinSecret-byte window of a key's secret scalars,
	// and every window of its DER encodings that overlaps one: never one of
	// the public parts (a modulus, a point) or the structure every key of a
	// kind shares.
	secret map[window]struct{}
}

// New returns a Scrubber for keys (crypto.PrivateKey values: *rsa.PrivateKey,
// *ecdsa.PrivateKey, ed25519.PrivateKey).
func New(keys ...crypto.PrivateKey) *Scrubber {
	s := &Scrubber{}
	for _, k := range keys {
		s.AddKey(k)
	}
	return s
}

// AddKey adds one private key. Unknown types are ignored.
func (s *Scrubber) AddKey(k crypto.PrivateKey) { s.addKey(k) }

// addKey adds k with its canonical DER encodings and the encodings given.
func (s *Scrubber) addKey(k crypto.PrivateKey, ders ...[]byte) {
	var scalars [][]byte
	switch k := k.(type) {
	case *rsa.PrivateKey:
		scalars = append(scalars, k.D.Bytes())
		for _, p := range k.Primes {
			scalars = append(scalars, p.Bytes())
		}
		if k.Precomputed.Dp != nil {
			scalars = append(scalars, k.Precomputed.Dp.Bytes(), k.Precomputed.Dq.Bytes(), k.Precomputed.Qinv.Bytes())
		}
		ders = append(ders, x509.MarshalPKCS1PrivateKey(k))
	case *ecdsa.PrivateKey:
		if b, err := k.Bytes(); err == nil {
			scalars = append(scalars, b)
		}
		if der, err := x509.MarshalECPrivateKey(k); err == nil {
			ders = append(ders, der)
		}
	case ed25519.PrivateKey:
		scalars = append(scalars, k.Seed())
	default:
		return
	}
	if der, err := x509.MarshalPKCS8PrivateKey(k); err == nil {
		ders = append(ders, der)
	}
	if s.secret == nil {
		s.secret = map[window]struct{}{}
	}
	for _, sc := range scalars {
		eachWindow(sc, func(w window) { s.secret[w] = struct{}{} })
	}
	for _, der := range ders {
		// The windows of the encoding that hold a byte of a scalar: the
		// bytes around a scalar in a stream spell it as much as it does.
		secret := make([]bool, len(der))
		for _, sc := range scalars {
			if len(sc) < MinSecret {
				continue
			}
			for off := 0; ; {
				i := bytes.Index(der[off:], sc)
				if i < 0 {
					break
				}
				for j := off + i; j < off+i+len(sc); j++ {
					secret[j] = true
				}
				off += i + 1
			}
		}
		for i := 0; i+MinSecret <= len(der); i++ {
			if slices.Contains(secret[i:i+MinSecret], true) {
				s.secret[window(der[i:i+MinSecret])] = struct{}{}
			}
		}
	}
}

// AddPEM adds every private key in PEM text (PKCS#8, PKCS#1, SEC 1 blocks)
// with its encoding as written; other blocks and keys that do not parse
// (encrypted ones) are skipped.
func (s *Scrubber) AddPEM(data []byte) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if k, err := parseKey(b.Bytes); err == nil {
			s.addKey(k, b.Bytes)
		}
	}
}

func parseKey(der []byte) (crypto.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return x509.ParseECPrivateKey(der)
}

func eachWindow(b []byte, f func(window)) {
	for i := 0; i+MinSecret <= len(b); i++ {
		f(window(b[i : i+MinSecret]))
	}
}

// Empty reports whether s knows no key.
func (s *Scrubber) Empty() bool { return s == nil || len(s.secret) == 0 }

// String returns text with every private key PEM block (or the start of one
// cut off at the end) and every encoding of a known key replaced by
// Redacted.
func (s *Scrubber) String(text string) string {
	text = redactPEM(text)
	if s.Empty() {
		return text
	}
	return replace(text, s.secretSpans([]byte(text), maxDepth))
}

// secretSpans returns the stretches of b that give a secret away: its bytes
// verbatim and, while depth allows, runs of hex or base64 whose decoding
// does (at any depth). A run's span is widened to whole lines (base64) or
// tokens (hex), so no character that helps spell a secret stays.
func (s *Scrubber) secretSpans(b []byte, depth int) []span {
	spans := s.rawSpans(b)
	if depth == 0 {
		return spans
	}
	for _, r := range append(append(hexRuns(b), base64Runs(b)...), decimalRuns(b)...) {
		for _, c := range r.cands {
			inner := s.secretSpans(c.bytes, depth-1)
			if len(inner) == 0 {
				continue
			}
			sp := span{c.pos[inner[0].start].start, c.pos[inner[0].end-1].end}
			for _, in := range inner[1:] {
				sp = span{min(sp.start, c.pos[in.start].start), max(sp.end, c.pos[in.end-1].end)}
			}
			spans = append(spans, r.widen(sp))
		}
	}
	return spans
}

type span struct{ start, end int }

// rawSpans are the stretches of b that are a secret's bytes verbatim.
func (s *Scrubber) rawSpans(b []byte) []span {
	var out []span
	for i := 0; i+MinSecret <= len(b); i++ {
		if _, ok := s.secret[window(b[i:i+MinSecret])]; !ok {
			continue
		}
		if n := len(out); n > 0 && out[n-1].end >= i {
			out[n-1].end = i + MinSecret
		} else {
			out = append(out, span{i, i + MinSecret})
		}
	}
	return out
}

// replace puts Redacted in place of each span (merging overlaps).
func replace(text string, spans []span) string {
	if len(spans) == 0 {
		return text
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp.end <= last {
			continue
		}
		if sp.start < last {
			sp.start = last
		} else {
			b.WriteString(text[last:sp.start])
			b.WriteString(Redacted)
		}
		last = sp.end
	}
	b.WriteString(text[last:])
	return b.String()
}

// privateKeyPEM matches a PEM private key block, or its start when the
// text ends inside it.
var privateKeyPEM = regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`)

// redactPEM removes PEM private key blocks, whatever key they hold.
func redactPEM(text string) string { return privateKeyPEM.ReplaceAllString(text, Redacted) }

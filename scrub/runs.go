package scrub

import "math/big"

// A run is a stretch of text in one encoding's alphabet, made of elements
// (base64 lines, hex tokens), with the byte strings it may decode to: one
// per plausible alignment and splitting.
type run struct {
	elems []span
	cands []candidate
	// block reports whether an element looks like part of an encoded block
	// (a full base64 line, a hex byte or line) rather than a word beside it.
	block func(e span) bool
}

// candidate is one decoding of a run; pos[k] is the span of text whose
// characters encode bytes[k].
type candidate struct {
	bytes []byte
	pos   []span
}

// widen extends sp to the whole elements it touches, then over the
// neighbouring elements that look like the rest of the same block: the
// public lines of a PEM body go with the private ones, a word before or
// after stays.
func (r run) widen(sp span) span {
	first, last := -1, -1
	for i, e := range r.elems {
		if e.end > sp.start && e.start < sp.end {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return sp
	}
	for first > 0 && r.block(r.elems[first-1]) {
		first--
	}
	for last+1 < len(r.elems) && r.block(r.elems[last+1]) {
		last++
	}
	return span{min(sp.start, r.elems[first].start), max(sp.end, r.elems[last].end)}
}

// char is one character of a run and where it sits in the text.
type char struct {
	c   byte
	pos int
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isHexSep(c byte) bool {
	return c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-' || c == ','
}

// hexPrefix reports a "0x" (or "0X") before a hex digit at b[i], starting a
// token: C arrays and many tools print bytes as "0x3c, 0x5a".
func hexPrefix(b []byte, i int) bool {
	return b[i] == '0' && i+2 < len(b) && (b[i+1] == 'x' || b[i+1] == 'X') && isHex(b[i+2]) && (i == 0 || !isHex(b[i-1]))
}

// hexRuns finds runs of hex digits separated by nothing, colons or
// whitespace ("3c:5a:…:\n    9f:…" as openssl prints a number, "3C5A…",
// "3c 5a …"), dashes or commas ("3C-5A", "0x3c, 0x5a"). Each run decodes three ways: all digits paired from the first,
// all digits paired from the second (a stray digit or word before the
// number), and only the even-length tokens (odd words around the number).
func hexRuns(b []byte) []run {
	var out []run
	for i := 0; i < len(b); {
		if !isHex(b[i]) {
			i++
			continue
		}
		var digits, even []char
		var elems []span
		for i < len(b) && (isHex(b[i]) || isHexSep(b[i])) {
			if hexPrefix(b, i) {
				i += 2
				continue
			}
			if !isHex(b[i]) {
				i++
				continue
			}
			start := len(digits)
			j := i
			for ; j < len(b) && isHex(b[j]); j++ {
				digits = append(digits, char{b[j], j})
			}
			if (j-i)%2 == 0 {
				even = append(even, digits[start:]...)
			}
			elems = append(elems, span{i, j})
			i = j
		}
		if len(digits) < minHexDigits {
			continue
		}
		out = append(out, run{elems, []candidate{decodeHex(digits), decodeHex(digits[1:]), decodeHex(even)}, hexBlock})
	}
	return out
}

// hexBlock: a byte ("3c") or a long stretch of digits.
func hexBlock(e span) bool { n := e.end - e.start; return n == 2 || n >= minHexDigits/2 }

// b64Block: a line long enough to hold a piece of a secret.
func b64Block(e span) bool { return e.end-e.start >= minB64Chars }

func decodeHex(d []char) candidate {
	c := candidate{bytes: make([]byte, len(d)/2), pos: make([]span, len(d)/2)}
	for i := range c.bytes {
		c.bytes[i] = hexVal(d[2*i].c)<<4 | hexVal(d[2*i+1].c)
		c.pos[i] = span{d[2*i].pos, d[2*i+1].pos + 1}
	}
	return c
}

// b64Val maps both base64 alphabets (standard and URL) to their values; -1
// is not base64, -2 is padding.
var b64Val = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = int8(i)
	}
	t['-'], t['_'], t['='] = 62, 63, -2
	return t
}()

// base64Runs finds runs of base64 (either alphabet, padded or not) that
// continue over line breaks and the indentation after them, as PEM bodies
// and wrapped output do, and over spaces and tabs between groups ("MIIE
// vgIB ADAN"). Each run decodes at each of the four alignments:
// whole, line by line, and piece by piece between padding (encodings printed
// one after another).
func base64Runs(b []byte) []run {
	var out []run
	for i := 0; i < len(b); {
		if b64Val[b[i]] == -1 {
			i++
			continue
		}
		r := run{block: b64Block}
		var all []char
		var lines []int  // where each line starts in all
		var breaks []int // where padding split all
		for {
			lineStart := i
			lines = append(lines, len(all))
			for ; i < len(b) && b64Val[b[i]] != -1; i++ {
				if b[i] == '=' {
					breaks = append(breaks, len(all))
					continue
				}
				all = append(all, char{b[i], i})
			}
			r.elems = append(r.elems, span{lineStart, i})
			// Spaces and tabs, a line break and the indentation after it
			// continue the run when more base64 follows.
			j := i
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++
			}
			if j < len(b) && b[j] == '\r' {
				j++
			}
			if j < len(b) && b[j] == '\n' {
				j++
			}
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++
			}
			if j == i {
				break
			}
			if j >= len(b) || b64Val[b[j]] == -1 {
				break
			}
			i = j
		}
		pieces := [][]char{all}
		for _, cuts := range [][]int{lines, breaks} {
			if len(cuts) > 1 || len(cuts) == 1 && cuts[0] > 0 {
				cuts = append(append([]int{0}, cuts...), len(all))
				for k := 0; k+1 < len(cuts); k++ {
					pieces = append(pieces, all[cuts[k]:cuts[k+1]])
				}
			}
		}
		if len(all) < minB64Chars {
			continue
		}
		for _, p := range pieces {
			if len(p) < minB64Chars {
				continue
			}
			for off := 0; off < 4; off++ {
				r.cands = append(r.cands, decodeB64(p[off:]))
			}
		}
		out = append(out, r)
	}
	return out
}

// decodeB64 packs the 6-bit values of s into bytes.
func decodeB64(s []char) candidate {
	n := len(s) * 6 / 8
	c := candidate{bytes: make([]byte, n), pos: make([]span, n)}
	for k := 0; k < n; k++ {
		var v uint32
		for j := 0; j < 8; j++ {
			bit := 8*k + j
			v = v<<1 | uint32(b64Val[s[bit/6].c])>>(5-bit%6)&1
		}
		c.bytes[k] = byte(v)
		first, last := s[8*k/6], s[(8*k+7)/6]
		start := first.pos
		if last.pos-first.pos > (8*k+7)/6-8*k/6 {
			// The byte straddles a gap (a line break, a space between
			// groups): its first char is the end of the text before, which
			// holds at most 6 of its bits. The span starts after the gap, so
			// a word just before the secret ("line 3") is not redacted.
			start = last.pos
		}
		c.pos[k] = span{start, last.pos + 1}
	}
	return c
}

// maxDecimalDigits bounds a decimal run decoded (an RSA-8192 private
// exponent has about 2470 digits).
const maxDecimalDigits = 4096

// minDecimalDigits is the shortest decimal number that can hold MinSecret
// bytes.
const minDecimalDigits = MinSecret*8*3/10 + 1

// decimalRuns finds runs of decimal digits long enough to spell MinSecret
// bytes (a scalar printed as a number, as a big integer's String does): each
// decodes to the number's big-endian bytes, every byte placed on the whole
// run.
func decimalRuns(b []byte) []run {
	var out []run
	for i := 0; i < len(b); {
		if b[i] < '0' || b[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if n := j - i; n >= minDecimalDigits && n <= maxDecimalDigits {
			v, _ := new(big.Int).SetString(string(b[i:j]), 10)
			c := candidate{bytes: v.Bytes()}
			for range c.bytes {
				c.pos = append(c.pos, span{i, j})
			}
			out = append(out, run{elems: []span{{i, j}}, cands: []candidate{c}, block: func(span) bool { return false }})
		}
		i = j
	}
	return out
}

package pkcs12

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certctl/certctl/connectors/javakeystore/pkcs12/internal/rc2"
)

// Algorithm identifiers.
var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidPBMAC1 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}

	oidAES128CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3   = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}

	// PKCS #12 PBE (RFC 7292 appendix C).
	oidPBEWithSHAAnd3DES   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}
	oidPBEWithSHAAnd128RC2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 5}
	oidPBEWithSHAAnd40RC2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 6}
)

// legacy names the PKCS #12 PBE schemes read nowhere here.
var legacy = map[string]string{
	"1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
	"1.2.840.113549.1.12.1.2": "pbeWithSHAAnd40BitRC4",
	"1.2.840.113549.1.12.1.4": "pbeWithSHAAnd2-KeyTripleDES-CBC",
	"1.2.840.113549.1.5.3":    "pbeWithMD5AndDES-CBC",
	"1.2.840.113549.1.5.10":   "pbeWithSHA1AndDES-CBC",
}

// UnsupportedError is a store protected with an algorithm this package does
// not implement (RC4, single DES, PBMAC1 …).
type UnsupportedError struct{ What string }

func (e *UnsupportedError) Error() string { return "pkcs12: unsupported " + e.What }

// LimitError is a store exceeding a bound (size, count, iterations).
type LimitError struct{ What string }

func (e *LimitError) Error() string { return "pkcs12: refused: " + e.What }

var errMalformed = errors.New("pkcs12: malformed")

func malformed(what string) error { return fmt.Errorf("%w %s", errMalformed, what) }

// budget bounds the key-derivation work of one operation: each KDF's
// iteration count is at most MaxIterations, and their sum at most the
// budget's.
type budget struct{ left int64 }

func newBudget() *budget { return &budget{left: MaxWork} }

// spend takes times derivations of iter iterations each from the budget.
func (b *budget) spend(iter, times int64) error {
	switch {
	case iter < 1:
		return malformed(fmt.Sprintf("iteration count %d", iter))
	case iter > MaxIterations:
		return &LimitError{fmt.Sprintf("an iteration count of %d (more than %d)", iter, MaxIterations)}
	case iter*times > b.left:
		return &LimitError{fmt.Sprintf("iteration counts summing to more than %d", MaxWork)}
	}
	b.left -= iter * times
	return nil
}

// bmpPassword is the password as PKCS #12's KDF takes it: UTF-16BE with a
// terminating zero.
func bmpPassword(pw []byte) []byte {
	u := utf16.Encode([]rune(string(pw)))
	out := make([]byte, 0, 2*len(u)+2)
	for _, c := range u {
		out = append(out, byte(c>>8), byte(c))
	}
	return append(out, 0, 0)
}

// kdf is RFC 7292 appendix B.2: n bytes of key material of purpose id
// (1 key, 2 IV, 3 MAC key).
func kdf(h func() hash.Hash, v int, pw, salt []byte, id byte, iter, n int) []byte {
	u := h().Size()
	D := bytes.Repeat([]byte{id}, v)
	fill := func(src []byte) []byte {
		if len(src) == 0 {
			return nil
		}
		out := make([]byte, v*((len(src)+v-1)/v))
		for i := range out {
			out[i] = src[i%len(src)]
		}
		return out
	}
	I := append(fill(salt), fill(pw)...)
	var out []byte
	one := big.NewInt(1)
	for len(out) < n {
		hh := h()
		hh.Write(D)
		hh.Write(I)
		A := hh.Sum(nil)
		for j := 1; j < iter; j++ {
			hh.Reset()
			hh.Write(A)
			A = hh.Sum(A[:0])
		}
		out = append(out, A...)
		if len(out) >= n {
			break
		}
		B := new(big.Int).SetBytes(fill(A[:u])[:v])
		B.Add(B, one)
		mod := new(big.Int).Lsh(one, uint(8*v))
		for k := 0; k < len(I); k += v {
			x := new(big.Int).SetBytes(I[k : k+v])
			x.Add(x, B).Mod(x, mod)
			xb := x.Bytes()
			blk := I[k : k+v]
			clear(blk)
			copy(blk[v-len(xb):], xb)
		}
	}
	return out[:n]
}

// digest is a MAC or PRF hash by its OID: the constructor and block size.
func digest(oid asn1.ObjectIdentifier) (func() hash.Hash, int, bool) {
	switch {
	case oid.Equal(oidSHA1), oid.Equal(oidHMACSHA1):
		return sha1.New, 64, true
	case oid.Equal(oidSHA256), oid.Equal(oidHMACSHA256):
		return sha256.New, 64, true
	case oid.Equal(oidSHA384), oid.Equal(oidHMACSHA384):
		return sha512.New384, 128, true
	case oid.Equal(oidSHA512), oid.Equal(oidHMACSHA512):
		return sha512.New, 128, true
	}
	return nil, 0, false
}

// readAlgorithm reads an AlgorithmIdentifier: its OID and its parameters'
// element (empty when absent).
func readAlgorithm(s *cryptobyte.String) (asn1.ObjectIdentifier, cryptobyte.String, error) {
	var alg, params cryptobyte.String
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return nil, nil, malformed("algorithm identifier")
	}
	if !alg.Empty() {
		var tag cbasn1.Tag
		if !alg.ReadAnyASN1Element(&params, &tag) || !alg.Empty() {
			return nil, nil, malformed("algorithm parameters")
		}
	}
	return oid, params, nil
}

func readInt(s *cryptobyte.String, what string) (int64, error) {
	var n int64
	if !s.ReadASN1Integer(&n) {
		return 0, malformed(what)
	}
	return n, nil
}

// decrypt decrypts ct under the algorithm alg (the AlgorithmIdentifier's
// element) with pw.
func decrypt(alg cryptobyte.String, ct, pw []byte, b *budget) ([]byte, error) {
	oid, params, err := readAlgorithm(&alg)
	if err != nil {
		return nil, err
	}
	var block cipher.Block
	var iv []byte
	switch {
	case oid.Equal(oidPBES2):
		if block, iv, err = pbes2(params, pw, b); err != nil {
			return nil, err
		}
	case oid.Equal(oidPBEWithSHAAnd3DES), oid.Equal(oidPBEWithSHAAnd128RC2), oid.Equal(oidPBEWithSHAAnd40RC2):
		if block, iv, err = pkcs12PBE(oid, params, pw, b); err != nil {
			return nil, err
		}
	default:
		if name, ok := legacy[oid.String()]; ok {
			return nil, &UnsupportedError{"encryption " + name}
		}
		return nil, &UnsupportedError{"encryption algorithm " + oid.String()}
	}
	bs := block.BlockSize()
	if len(ct) == 0 || len(ct)%bs != 0 {
		return nil, malformed("ciphertext length")
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ct)
	n := int(out[len(out)-1])
	if n == 0 || n > bs || n > len(out) {
		return nil, errDecrypt
	}
	for _, c := range out[len(out)-n:] {
		if int(c) != n {
			return nil, errDecrypt
		}
	}
	return out[:len(out)-n], nil
}

// errDecrypt is a padding that does not check: the wrong password.
var errDecrypt = errors.New("pkcs12: decryption failed (wrong password)")

// pkcs12PBE reads pkcs-12PbeParams and derives the cipher and IV of one of
// RFC 7292 appendix C's schemes: 3DES, or RC2 (read only).
func pkcs12PBE(oid asn1.ObjectIdentifier, params cryptobyte.String, pw []byte, b *budget) (cipher.Block, []byte, error) {
	var p cryptobyte.String
	var salt []byte
	if !params.ReadASN1(&p, cbasn1.SEQUENCE) || !p.ReadASN1Bytes(&salt, cbasn1.OCTET_STRING) {
		return nil, nil, malformed("PKCS #12 PBE parameters")
	}
	iter, err := readInt(&p, "PKCS #12 PBE iterations")
	if err != nil {
		return nil, nil, err
	}
	keyLen, newCipher := 24, des.NewTripleDESCipher
	switch {
	case oid.Equal(oidPBEWithSHAAnd128RC2):
		keyLen, newCipher = 16, func(k []byte) (cipher.Block, error) { return rc2.New(k, 128) }
	case oid.Equal(oidPBEWithSHAAnd40RC2):
		keyLen, newCipher = 5, func(k []byte) (cipher.Block, error) { return rc2.New(k, 40) }
	}
	// A key of up to 20 bytes is one SHA-1 block, 3DES's two; the IV one.
	if err := b.spend(iter, int64(1+(keyLen+19)/20)); err != nil {
		return nil, nil, err
	}
	bp := bmpPassword(pw)
	key := kdf(sha1.New, 64, bp, salt, 1, int(iter), keyLen)
	iv := kdf(sha1.New, 64, bp, salt, 2, int(iter), 8)
	block, err := newCipher(key)
	return block, iv, err
}

// pbes2 reads PBES2-params and derives the cipher and IV.
func pbes2(params cryptobyte.String, pw []byte, b *budget) (cipher.Block, []byte, error) {
	var p cryptobyte.String
	if !params.ReadASN1(&p, cbasn1.SEQUENCE) {
		return nil, nil, malformed("PBES2 parameters")
	}
	kdfOID, kdfParams, err := readAlgorithm(&p)
	if err != nil {
		return nil, nil, err
	}
	encOID, encParams, err := readAlgorithm(&p)
	if err != nil {
		return nil, nil, err
	}
	if !kdfOID.Equal(oidPBKDF2) {
		return nil, nil, &UnsupportedError{"PBES2 key derivation " + kdfOID.String()}
	}
	var keyLen int
	var newCipher func([]byte) (cipher.Block, error)
	switch {
	case encOID.Equal(oidAES128CBC):
		keyLen, newCipher = 16, aes.NewCipher
	case encOID.Equal(oidAES192CBC):
		keyLen, newCipher = 24, aes.NewCipher
	case encOID.Equal(oidAES256CBC):
		keyLen, newCipher = 32, aes.NewCipher
	case encOID.Equal(oidDESEDE3):
		keyLen, newCipher = 24, des.NewTripleDESCipher
	default:
		return nil, nil, &UnsupportedError{"PBES2 cipher " + encOID.String()}
	}
	var iv []byte
	if !encParams.ReadASN1Bytes(&iv, cbasn1.OCTET_STRING) {
		return nil, nil, malformed("PBES2 IV")
	}
	h, salt, iter, kl, err := pbkdf2Params(kdfParams)
	if err != nil {
		return nil, nil, err
	}
	if kl != 0 && kl != keyLen {
		return nil, nil, malformed("PBKDF2 key length")
	}
	if err := b.spend(iter, 1); err != nil {
		return nil, nil, err
	}
	key, err := pbkdf2.Key(h, string(pw), salt, int(iter), keyLen)
	if err != nil {
		return nil, nil, err
	}
	block, err := newCipher(key)
	if err != nil {
		return nil, nil, err
	}
	if len(iv) != block.BlockSize() {
		return nil, nil, malformed("PBES2 IV length")
	}
	return block, iv, nil
}

// pbkdf2Params reads PBKDF2-params: the PRF, salt, iterations and key
// length (0: absent).
func pbkdf2Params(params cryptobyte.String) (func() hash.Hash, []byte, int64, int, error) {
	var p cryptobyte.String
	var salt []byte
	if !params.ReadASN1(&p, cbasn1.SEQUENCE) || !p.ReadASN1Bytes(&salt, cbasn1.OCTET_STRING) {
		return nil, nil, 0, 0, malformed("PBKDF2 parameters")
	}
	iter, err := readInt(&p, "PBKDF2 iterations")
	if err != nil {
		return nil, nil, 0, 0, err
	}
	var kl int64
	if p.PeekASN1Tag(cbasn1.INTEGER) {
		if kl, err = readInt(&p, "PBKDF2 key length"); err != nil {
			return nil, nil, 0, 0, err
		}
		if kl < 1 || kl > 64 {
			return nil, nil, 0, 0, malformed("PBKDF2 key length")
		}
	}
	h := sha1.New
	if !p.Empty() {
		prf, _, err := readAlgorithm(&p)
		if err != nil {
			return nil, nil, 0, 0, err
		}
		var ok bool
		if h, _, ok = digest(prf); !ok || !(prf.Equal(oidHMACSHA1) || prf.Equal(oidHMACSHA256) || prf.Equal(oidHMACSHA384) || prf.Equal(oidHMACSHA512)) {
			return nil, nil, 0, 0, &UnsupportedError{"PBKDF2 PRF " + prf.String()}
		}
	}
	return h, salt, iter, int(kl), nil
}

// Write-side parameters: Java 17's defaults.
type params struct{ iter, macIter int }

var javaDefaults = params{iter: Iterations, macIter: Iterations}

// encrypt encrypts pt with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC, a
// 20-byte salt and the IV from r) and returns the AlgorithmIdentifier's
// DER and the ciphertext.
func encrypt(pt, pw []byte, iter int, r io.Reader) ([]byte, []byte, error) {
	salt, iv := make([]byte, SaltLen), make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(r, salt); err != nil {
		return nil, nil, err
	}
	if _, err := io.ReadFull(r, iv); err != nil {
		return nil, nil, err
	}
	key, err := pbkdf2.Key(sha256.New, string(pw), salt, iter, 32)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	n := aes.BlockSize - len(pt)%aes.BlockSize
	ct := append(append([]byte{}, pt...), bytes.Repeat([]byte{byte(n)}, n)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidPBES2)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidPBKDF2)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(salt)
					b.AddASN1Int64(int64(iter))
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidHMACSHA256)
						b.AddASN1NULL()
					})
				})
			})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidAES256CBC)
				b.AddASN1OctetString(iv)
			})
		})
	})
	alg, err := b.Bytes()
	return alg, ct, err
}

// macKey is the PKCS #12 MAC key for the digest h.
func mac(h func() hash.Hash, v int, pw, salt []byte, iter int, data []byte) []byte {
	key := kdf(h, v, bmpPassword(pw), salt, 3, iter, h().Size())
	m := hmac.New(h, key)
	m.Write(data)
	return m.Sum(nil)
}

// Package pkcs12 reads and writes PKCS #12 (RFC 7292) keystores of several
// entries the way Java reads them: private-key entries (a key and its
// certificate chain, named by friendlyName and tied to their leaf by
// localKeyId) and trusted-certificate entries (a certificate carrying Java's
// trust attribute, 2.16.840.1.113894.746875.1.1).
//
// It exists because no maintained Go library serves a keystore rebuild
// (golang.org/x/crypto/pkcs12 is frozen and decodes one key and one
// certificate):
// software.sslmate.com/src/go-pkcs12 (v0.7.4, the newest) writes one
// unnamed key entry (Java lists it as "1") or trusted certificates only,
// never a named key beside other entries; its decoders refuse a store of
// several entries, and its ToPEM fails on Java's trust attribute. A rebuild
// needs to read every entry and write them all back.
//
// Reading (Decode): a PFX of version 3 whose MAC is verified with the store
// password before anything is decrypted (a store without one is refused:
// rewritten, a planted store would come out under a MAC that verifies),
// HMAC-SHA1, -SHA256, -SHA384 or -SHA512 keyed with the PKCS #12 appendix B
// KDF; authSafe ContentInfos of type data and encryptedData; bags encrypted
// with PBES2 (PBKDF2 with HMAC-SHA1/-SHA256/-SHA384/-SHA512, AES-128/192/
// 256-CBC or DES-EDE3-CBC), pbeWithSHAAnd3-KeyTripleDES-CBC or
// pbeWithSHAAnd40BitRC2-CBC / 128BitRC2-CBC (how `openssl pkcs12 -legacy`,
// OpenSSL 1.x and Java 8's keytool encrypt certificates; RC2 from
// golang.org/x/crypto's internal copy, internal/rc2, read only). Refused with
// an UnsupportedError: RC4, single DES, PBMAC1, public-key modes, nested
// SafeContents. Bounded against a planted store: at most MaxSize bytes,
// MaxBags bags, MaxIterations per key derivation and MaxWork iterations
// summed over one operation (a store asking for 2^31 iterations is refused
// before any is computed), DER only (no indefinite lengths), no recursion.
//
// Writing (Encode) follows Java 17's defaults: certificates in one
// encryptedData and keys as pkcs8ShroudedKeyBags, both with PBES2
// PBKDF2-HMAC-SHA256 AES-256-CBC, Iterations iterations and a SaltLen-byte
// salt; the MAC HMAC-SHA256 over the PKCS #12 KDF, Iterations iterations.
// Every bag Decode read and SetKey did not replace is written back as it was
// read (its attributes, its key still encrypted under its own password); the
// salts and IVs come from the caller's reader, so a seeded reader gives the
// same bytes.
package pkcs12

import (
	"crypto/hmac"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Bounds and write parameters.
const (
	// MaxSize is the largest store read (the pipeline reads at most 1 MiB).
	MaxSize = 1 << 20
	// MaxBags is the most bags a store may hold.
	MaxBags = 4096
	// MaxIterations is the most iterations one key derivation may ask for
	// (Java's own reader allows 5,000,000; its writer uses 10,000, OpenSSL
	// 3's 2,048).
	MaxIterations = 1 << 20
	// MaxWork is the most iterations one Decode, or one key's decryption,
	// may ask for in all.
	MaxWork = 4 << 20
	// Iterations is the PBKDF2 and MAC iteration count written: Java 17's
	// default (keystore.pkcs12.keyPbeIterationCount, certPbeIterationCount,
	// macIterationCount).
	Iterations = 10000
	// SaltLen is the salt length written (Java's).
	SaltLen = 20
)

// OIDs of the format.
var (
	oidData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}

	oidKeyBag         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidShroudedKeyBag = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidSafeContents   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 6}

	oidX509Certificate = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidFriendlyName    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 20}
	oidLocalKeyID      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 21}
	// OIDJavaTrust is Java's trusted-key-usage attribute: a certificate bag
	// carrying it is a trustedCertEntry.
	OIDJavaTrust = asn1.ObjectIdentifier{2, 16, 840, 1, 113894, 746875, 1, 1}
	oidAnyEKU    = asn1.ObjectIdentifier{2, 5, 29, 37, 0}
)

// ErrPassword is a store whose MAC does not verify with the password: the
// wrong password, or a tampered store.
var ErrPassword = errors.New("pkcs12: the password does not open the store (its integrity check fails: wrong password, or the file was altered)")

// ErrKeyPassword is a key entry that does not decrypt with the password.
var ErrKeyPassword = errors.New("pkcs12: the key password does not decrypt the key entry")

// Store is a decoded keystore: its bags, certificates decrypted, keys as
// they were read.
type Store struct {
	bags []*bag
	idx  certIndex // nil: not built since the last change
}

// bag is one SafeBag.
type bag struct {
	raw          []byte // the SafeBag's DER
	id           asn1.ObjectIdentifier
	value        []byte // the content of bagValue's [0]
	friendlyName string
	localKeyID   []byte
	trusted      bool
	cert         []byte // a certificate bag's certificate
	// sealed: read from an encryptedData, so written back into one.
	sealed bool
}

func (b *bag) isCert() bool { return b.id.Equal(oidCertBag) }
func (b *bag) isKey() bool  { return b.id.Equal(oidShroudedKeyBag) || b.id.Equal(oidKeyBag) }

// New is an empty store.
func New() *Store { return &Store{} }

// Decode reads data, verifying its MAC with password first.
func Decode(data, password []byte) (*Store, error) {
	if len(data) > MaxSize {
		return nil, &LimitError{fmt.Sprintf("a store of %d bytes (more than %d)", len(data), MaxSize)}
	}
	work := newBudget()
	in := cryptobyte.String(data)
	var pfx cryptobyte.String
	if !in.ReadASN1(&pfx, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, malformed("PFX (not a DER PKCS #12 file)")
	}
	v, err := readInt(&pfx, "PFX version")
	if err != nil {
		return nil, err
	}
	if v != 3 {
		return nil, &UnsupportedError{fmt.Sprintf("PFX version %d (want 3)", v)}
	}
	ct, content, err := readContentInfo(&pfx)
	if err != nil {
		return nil, err
	}
	if !ct.Equal(oidData) {
		return nil, &UnsupportedError{"authSafe of type " + ct.String() + " (public-key integrity mode)"}
	}
	authSafe, err := octets(content)
	if err != nil {
		return nil, err
	}
	// A store nothing authenticates is not rewritten: its bags would come
	// out under a MAC made with the real password, so a planted store
	// would be laundered into one that verifies.
	if pfx.Empty() {
		return nil, &UnsupportedError{"a store without a MAC (nothing authenticates its contents)"}
	}
	if err := verifyMAC(&pfx, authSafe, password, work); err != nil {
		return nil, err
	}
	if !pfx.Empty() {
		return nil, malformed("PFX trailing data")
	}
	s := &Store{}
	as := cryptobyte.String(authSafe)
	var infos cryptobyte.String
	if !as.ReadASN1(&infos, cbasn1.SEQUENCE) || !as.Empty() {
		return nil, malformed("AuthenticatedSafe")
	}
	for !infos.Empty() {
		ct, content, err := readContentInfo(&infos)
		if err != nil {
			return nil, err
		}
		var safe []byte
		sealed := false
		switch {
		case ct.Equal(oidData):
			if safe, err = octets(content); err != nil {
				return nil, err
			}
		case ct.Equal(oidEncryptedData):
			if safe, err = decryptData(content, password, work); err != nil {
				if errors.Is(err, errDecrypt) {
					return nil, ErrPassword
				}
				return nil, err
			}
			sealed = true
		default:
			return nil, &UnsupportedError{"authSafe content of type " + ct.String() + " (public-key privacy mode)"}
		}
		if err := s.readSafeContents(safe, sealed); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readContentInfo reads a ContentInfo: its type and the element inside
// content's [0] (empty when absent).
func readContentInfo(s *cryptobyte.String) (asn1.ObjectIdentifier, cryptobyte.String, error) {
	var ci, content cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, nil, malformed("ContentInfo")
	}
	if !ci.Empty() && (!ci.ReadASN1(&content, cbasn1.Tag(0).ContextSpecific().Constructed()) || !ci.Empty()) {
		return nil, nil, malformed("ContentInfo content")
	}
	return ct, content, nil
}

// octets reads an OCTET STRING filling s.
func octets(s cryptobyte.String) ([]byte, error) {
	var b []byte
	if !s.ReadASN1Bytes(&b, cbasn1.OCTET_STRING) || !s.Empty() {
		return nil, malformed("data content (not a DER OCTET STRING)")
	}
	return b, nil
}

func verifyMAC(s *cryptobyte.String, authSafe, password []byte, work *budget) error {
	var md, di, got, salt cryptobyte.String
	if !s.ReadASN1(&md, cbasn1.SEQUENCE) || !md.ReadASN1(&di, cbasn1.SEQUENCE) {
		return malformed("MacData")
	}
	alg, _, err := readAlgorithm(&di)
	if err != nil {
		return err
	}
	if !di.ReadASN1((*cryptobyte.String)(&got), cbasn1.OCTET_STRING) || !md.ReadASN1(&salt, cbasn1.OCTET_STRING) {
		return malformed("MacData")
	}
	var iter int64 = 1
	if !md.Empty() {
		if iter, err = readInt(&md, "MAC iterations"); err != nil {
			return err
		}
	}
	if alg.Equal(oidPBMAC1) {
		return &UnsupportedError{"MAC algorithm PBMAC1"}
	}
	h, v, ok := digest(alg)
	if !ok || !(alg.Equal(oidSHA1) || alg.Equal(oidSHA256) || alg.Equal(oidSHA384) || alg.Equal(oidSHA512)) {
		return &UnsupportedError{"MAC digest " + alg.String()}
	}
	if err := work.spend(iter, 1); err != nil {
		return err
	}
	if !hmac.Equal(mac(h, v, password, salt, int(iter), authSafe), got) {
		return ErrPassword
	}
	return nil
}

// decryptData reads an EncryptedData and decrypts its content.
func decryptData(content cryptobyte.String, password []byte, work *budget) ([]byte, error) {
	var ed, eci cryptobyte.String
	var ct asn1.ObjectIdentifier
	var alg cryptobyte.String
	if !content.ReadASN1(&ed, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformed("EncryptedData")
	}
	if _, err := readInt(&ed, "EncryptedData version"); err != nil {
		return nil, err
	}
	if !ed.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&ct) || !eci.ReadASN1Element(&alg, cbasn1.SEQUENCE) {
		return nil, malformed("EncryptedContentInfo")
	}
	var enc []byte
	switch {
	case eci.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		if !eci.ReadASN1Bytes(&enc, cbasn1.Tag(0).ContextSpecific()) {
			return nil, malformed("encryptedContent")
		}
	case eci.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific().Constructed()):
		// BER's constructed form: OCTET STRING chunks, one level.
		var chunks cryptobyte.String
		if !eci.ReadASN1(&chunks, cbasn1.Tag(0).ContextSpecific().Constructed()) {
			return nil, malformed("encryptedContent")
		}
		for !chunks.Empty() {
			var c []byte
			if !chunks.ReadASN1Bytes(&c, cbasn1.OCTET_STRING) {
				return nil, malformed("encryptedContent chunk")
			}
			enc = append(enc, c...)
		}
	default:
		return nil, malformed("encryptedContent (absent)")
	}
	if !ct.Equal(oidData) {
		return nil, malformed("encrypted content type " + ct.String())
	}
	return decrypt(alg, enc, password, work)
}

// readSafeContents reads the SafeBags of one SafeContents.
func (s *Store) readSafeContents(data []byte, sealed bool) error {
	in := cryptobyte.String(data)
	var bags cryptobyte.String
	if !in.ReadASN1(&bags, cbasn1.SEQUENCE) || !in.Empty() {
		return malformed("SafeContents")
	}
	for !bags.Empty() {
		if len(s.bags) >= MaxBags {
			return &LimitError{fmt.Sprintf("more than %d bags", MaxBags)}
		}
		var raw cryptobyte.String
		if !bags.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
			return malformed("SafeBag")
		}
		b, err := parseBag(raw)
		if err != nil {
			return err
		}
		b.sealed = sealed
		s.bags = append(s.bags, b)
	}
	return nil
}

func parseBag(raw []byte) (*bag, error) {
	b := &bag{raw: raw}
	in := cryptobyte.String(raw)
	var sb, value cryptobyte.String
	if !in.ReadASN1(&sb, cbasn1.SEQUENCE) || !sb.ReadASN1ObjectIdentifier(&b.id) ||
		!sb.ReadASN1(&value, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		return nil, malformed("SafeBag")
	}
	b.value = value
	if b.id.Equal(oidSafeContents) {
		return nil, &UnsupportedError{"nested SafeContents (safeContentsBag; neither Java nor OpenSSL writes one)"}
	}
	if !sb.Empty() {
		var attrs cryptobyte.String
		if !sb.ReadASN1(&attrs, cbasn1.SET) || !sb.Empty() {
			return nil, malformed("SafeBag attributes")
		}
		for n := 0; !attrs.Empty(); n++ {
			var a, values cryptobyte.String
			var oid asn1.ObjectIdentifier
			if n >= 64 || !attrs.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) || !a.ReadASN1(&values, cbasn1.SET) || !a.Empty() {
				return nil, malformed("SafeBag attribute")
			}
			switch {
			case oid.Equal(oidFriendlyName):
				var name cryptobyte.String
				if !values.ReadASN1(&name, cbasn1.Tag(30)) || len(name)%2 != 0 {
					return nil, malformed("friendlyName")
				}
				u := make([]uint16, len(name)/2)
				for i := range u {
					u[i] = uint16(name[2*i])<<8 | uint16(name[2*i+1])
				}
				b.friendlyName = string(utf16.Decode(u))
			case oid.Equal(oidLocalKeyID):
				if !values.ReadASN1Bytes(&b.localKeyID, cbasn1.OCTET_STRING) {
					return nil, malformed("localKeyId")
				}
			case oid.Equal(OIDJavaTrust):
				b.trusted = true
			}
		}
	}
	if b.isCert() {
		var cb, cv cryptobyte.String
		var certID asn1.ObjectIdentifier
		if !value.ReadASN1(&cb, cbasn1.SEQUENCE) || !cb.ReadASN1ObjectIdentifier(&certID) ||
			!cb.ReadASN1(&cv, cbasn1.Tag(0).ContextSpecific().Constructed()) || !cv.ReadASN1Bytes(&b.cert, cbasn1.OCTET_STRING) {
			return nil, malformed("CertBag")
		}
		if !certID.Equal(oidX509Certificate) {
			b.cert = nil // an SDSI certificate: kept, never a chain's
		}
	}
	return b, nil
}

// Encode writes the store, sealed with password: salts and IVs from r.
func (s *Store) Encode(password []byte, r io.Reader) ([]byte, error) {
	return s.encode(password, r, javaDefaults)
}

func (s *Store) encode(password []byte, r io.Reader, p params) ([]byte, error) {
	var plain, sealed [][]byte
	for _, b := range s.bags {
		if b.isCert() || b.sealed {
			sealed = append(sealed, b.raw)
		} else {
			plain = append(plain, b.raw)
		}
	}
	var infos [][]byte
	if len(sealed) > 0 {
		alg, ct, err := encrypt(safeContents(sealed), password, p.iter, r)
		if err != nil {
			return nil, err
		}
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
		infos = append(infos, b.BytesOrPanic())
	}
	if len(plain) > 0 {
		infos = append(infos, dataInfo(safeContents(plain)))
	}
	var as cryptobyte.Builder
	as.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, i := range infos {
			b.AddBytes(i)
		}
	})
	authSafe := as.BytesOrPanic()
	salt := make([]byte, SaltLen)
	if _, err := io.ReadFull(r, salt); err != nil {
		return nil, err
	}
	h, v, _ := digest(oidSHA256)
	sum := mac(h, v, password, salt, p.macIter, authSafe)
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddBytes(dataInfo(authSafe))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidSHA256)
					b.AddASN1NULL()
				})
				b.AddASN1OctetString(sum)
			})
			b.AddASN1OctetString(salt)
			b.AddASN1Int64(int64(p.macIter))
		})
	})
	return out.Bytes()
}

func safeContents(bags [][]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, raw := range bags {
			b.AddBytes(raw)
		}
	})
	return b.BytesOrPanic()
}

// dataInfo is a ContentInfo of type data holding content.
func dataInfo(content []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidData)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1OctetString(content)
		})
	})
	return b.BytesOrPanic()
}

// newBag is a SafeBag's DER: id, the value's element, attributes
// friendlyName and localKeyId (when set) and extra (whole attributes).
func newBag(id asn1.ObjectIdentifier, value []byte, friendlyName string, localKeyID []byte, extra ...[]byte) (*bag, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(id)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddBytes(value) })
		if friendlyName == "" && localKeyID == nil && len(extra) == 0 {
			return
		}
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			// DER sorts a SET OF by encoding; these OIDs sort by their
			// last arc.
			if friendlyName != "" {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidFriendlyName)
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(30), func(b *cryptobyte.Builder) {
							for _, c := range utf16.Encode([]rune(friendlyName)) {
								b.AddUint16(c)
							}
						})
					})
				})
			}
			if localKeyID != nil {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidLocalKeyID)
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddASN1OctetString(localKeyID) })
				})
			}
			for _, e := range extra {
				b.AddBytes(e)
			}
		})
	})
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return parseBag(raw)
}

// trustAttribute is Java's trust attribute: any extended key usage.
func trustAttribute() []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(OIDJavaTrust)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidAnyEKU) })
	})
	return b.BytesOrPanic()
}

// certValue is a CertBag holding the X.509 certificate der.
func certValue(der []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidX509Certificate)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddASN1OctetString(der) })
	})
	return b.BytesOrPanic()
}

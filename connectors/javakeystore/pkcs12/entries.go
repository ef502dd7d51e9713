package pkcs12

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Entry types, as keytool -list names them.
const (
	PrivateKeyEntry  = "PrivateKeyEntry"
	TrustedCertEntry = "trustedCertEntry"
	SecretKeyEntry   = "SecretKeyEntry"
)

// maxChain bounds a chain built by issuer.
const maxChain = 16

// Entry is one entry as Java sees it.
type Entry struct {
	Alias string
	Type  string
	// Chain is a key entry's chain, leaf first (built as Java builds it:
	// the leaf tied by localKeyId, then each certificate's issuer by
	// subject), or a trusted entry's certificate.
	Chain [][]byte
}

// Entries lists the store's entries in file order: key bags and secret
// bags by friendlyName, certificate bags carrying Java's trust attribute.
// Certificates that are only a chain's are no entry.
func (s *Store) Entries() []Entry {
	var out []Entry
	for _, b := range s.bags {
		switch {
		case b.isKey():
			out = append(out, Entry{Alias: b.friendlyName, Type: PrivateKeyEntry, Chain: s.chainOf(b)})
		case b.isCert() && b.trusted:
			out = append(out, Entry{Alias: b.friendlyName, Type: TrustedCertEntry, Chain: [][]byte{b.cert}})
		case !b.isCert() && b.friendlyName != "":
			out = append(out, Entry{Alias: b.friendlyName, Type: SecretKeyEntry})
		}
	}
	return out
}

// keyBag is alias's key bag, nil if none.
func (s *Store) keyBag(alias string) *bag {
	for _, b := range s.bags {
		if b.isKey() && strings.EqualFold(b.friendlyName, alias) {
			return b
		}
	}
	return nil
}

// leafOf is the certificate bag of key bag k: the one with its localKeyId,
// else (no localKeyId) the untrusted one with its friendlyName.
func (s *Store) leafOf(k *bag) *bag {
	for _, b := range s.bags {
		if !b.isCert() || b.cert == nil {
			continue
		}
		if k.localKeyID != nil && bytes.Equal(b.localKeyID, k.localKeyID) {
			return b
		}
		if k.localKeyID == nil && !b.trusted && k.friendlyName != "" && strings.EqualFold(b.friendlyName, k.friendlyName) {
			return b
		}
	}
	return nil
}

// certIndex is the store's certificates parsed once, by raw subject.
type certIndex map[string][]*x509.Certificate

// certs is the index of the store's certificates, built on first use after
// a change.
func (s *Store) certs() certIndex {
	if s.idx == nil {
		s.idx = certIndex{}
		for _, b := range s.bags {
			if b.isCert() && b.cert != nil {
				if c, err := x509.ParseCertificate(b.cert); err == nil {
					s.idx[string(c.RawSubject)] = append(s.idx[string(c.RawSubject)], c)
				}
			}
		}
	}
	return s.idx
}

// chainOf is key bag k's chain: its leaf, then issuers found by subject
// among all the store's certificates (among several, the one whose subject
// key ID is the child's authority key ID), until a self-issued one or none.
// No signature is checked here (Java builds the chain by name too): the
// cost stays a map lookup a link, whatever the store holds.
func (s *Store) chainOf(k *bag) [][]byte {
	leaf := s.leafOf(k)
	if leaf == nil {
		return nil
	}
	idx := s.certs()
	chain := [][]byte{leaf.cert}
	cur, err := x509.ParseCertificate(leaf.cert)
	for err == nil && len(chain) < maxChain && !bytes.Equal(cur.RawIssuer, cur.RawSubject) {
		var next *x509.Certificate
		for _, c := range idx[string(cur.RawIssuer)] {
			if in(chain, c.Raw) {
				continue
			}
			if next == nil || len(cur.AuthorityKeyId) > 0 && bytes.Equal(c.SubjectKeyId, cur.AuthorityKeyId) {
				next = c
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, next.Raw)
		cur = next
	}
	return chain
}

func in(set [][]byte, b []byte) bool {
	for _, x := range set {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// Key is alias's private key (PKCS #8 DER) decrypted with password, and
// its chain.
func (s *Store) Key(alias string, password []byte) ([]byte, [][]byte, error) {
	k := s.keyBag(alias)
	if k == nil {
		return nil, nil, fmt.Errorf("pkcs12: no private key entry %q", alias)
	}
	der, err := k.decryptKey(password)
	if err != nil {
		return nil, nil, err
	}
	return der, s.chainOf(k), nil
}

func (b *bag) decryptKey(password []byte) ([]byte, error) {
	der := b.value
	if b.id.Equal(oidShroudedKeyBag) {
		in := cryptobyte.String(b.value)
		var epki, alg cryptobyte.String
		var ct []byte
		if !in.ReadASN1(&epki, cbasn1.SEQUENCE) || !epki.ReadASN1Element(&alg, cbasn1.SEQUENCE) || !epki.ReadASN1Bytes(&ct, cbasn1.OCTET_STRING) {
			return nil, malformed("EncryptedPrivateKeyInfo")
		}
		var err error
		if der, err = decrypt(alg, ct, password, newBudget()); err == errDecrypt {
			return nil, ErrKeyPassword
		} else if err != nil {
			return nil, err
		}
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		if b.id.Equal(oidShroudedKeyBag) {
			return nil, ErrKeyPassword
		}
		return nil, fmt.Errorf("pkcs12: key entry %q: %v", b.friendlyName, err)
	}
	return der, nil
}

// SetKey sets alias to the PKCS #8 key keyDER, encrypted with password
// (salt and IV from r), and chain (leaf first); created is the entry's date
// (Java reads it from the localKeyId "Time <milliseconds>"). The bags
// alias had are removed: its key, its leaf, and chain certificates no other
// entry's chain uses. Every other bag stays as it is.
func (s *Store) SetKey(alias string, keyDER []byte, chain [][]byte, password []byte, created time.Time, r io.Reader) error {
	if alias == "" || len(chain) == 0 {
		return fmt.Errorf("pkcs12: SetKey needs an alias and a leaf")
	}
	oldIDs, oldChain := map[string]bool{}, map[string]bool{}
	for _, b := range s.bags {
		if b.isKey() && strings.EqualFold(b.friendlyName, alias) {
			for _, c := range s.chainOf(b) {
				oldChain[string(c)] = true
			}
			if b.localKeyID != nil {
				oldIDs[string(b.localKeyID)] = true
			}
		}
	}
	var kept []*bag
	for _, b := range s.bags {
		if !(strings.EqualFold(b.friendlyName, alias) || b.isCert() && b.localKeyID != nil && oldIDs[string(b.localKeyID)]) {
			kept = append(kept, b)
		}
	}
	s.bags, s.idx = kept, nil
	used := map[string]bool{}
	for _, b := range s.bags {
		if b.isKey() {
			for _, c := range s.chainOf(b) {
				used[string(c)] = true
			}
		}
	}
	kept = nil
	ids, certs := map[string]bool{}, map[string]bool{}
	for _, b := range s.bags {
		loose := b.isCert() && b.friendlyName == "" && b.localKeyID == nil && !b.trusted
		if loose && oldChain[string(b.cert)] && !used[string(b.cert)] {
			continue
		}
		kept = append(kept, b)
		if b.localKeyID != nil {
			ids[string(b.localKeyID)] = true
		}
		if b.isCert() {
			certs[string(b.cert)] = true
		}
	}
	s.bags, s.idx = kept, nil

	ms := created.UnixMilli()
	id := func() []byte { return []byte("Time " + strconv.FormatInt(ms, 10)) }
	for ids[string(id())] {
		ms++
	}
	alg, ct, err := encrypt(keyDER, password, Iterations, r)
	if err != nil {
		return err
	}
	var v cryptobyte.Builder
	v.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(alg)
		b.AddASN1OctetString(ct)
	})
	kb, err := newBag(oidShroudedKeyBag, v.BytesOrPanic(), alias, id())
	if err != nil {
		return err
	}
	lb, err := newBag(oidCertBag, certValue(chain[0]), alias, id())
	if err != nil {
		return err
	}
	s.bags = append(s.bags, kb, lb)
	for _, c := range chain[1:] {
		if certs[string(c)] {
			continue
		}
		certs[string(c)] = true
		cb, err := newBag(oidCertBag, certValue(c), "", nil)
		if err != nil {
			return err
		}
		s.bags = append(s.bags, cb)
	}
	s.idx = nil
	return nil
}

// AddTrusted adds a trusted-certificate entry alias holding der, with
// Java's trust attribute (any extended key usage).
func (s *Store) AddTrusted(alias string, der []byte) error {
	b, err := newBag(oidCertBag, certValue(der), alias, nil, trustAttribute())
	if err != nil {
		return err
	}
	s.bags, s.idx = append(s.bags, b), nil
	return nil
}

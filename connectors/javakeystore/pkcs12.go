package javakeystore

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/certctl/certctl/connectors/javakeystore/pkcs12"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
)

// buildPKCS12 is Build for keystore_type PKCS12.
func buildPKCS12(o Config, b *material.Bundle, keyDER, current, storePW, keyPW []byte) ([]byte, error) {
	chain := [][]byte{b.Leaf.Raw}
	for _, c := range b.Chain {
		chain = append(chain, c.Raw)
	}
	// The salts and IVs: a generator seeded, as for JKS, by an HMAC keyed
	// by the passwords of the current store and the material.
	mac := hmac.New(sha256.New, append(append(append([]byte{}, storePW...), 0), keyPW...))
	mac.Write([]byte("certctl javakeystore pkcs12 v1\x00"))
	mac.Write(current)
	mac.Write(keyDER)
	for _, c := range chain {
		mac.Write(c)
	}
	var seed [32]byte
	copy(seed[:], mac.Sum(nil))
	r := rand.NewChaCha8(seed)

	s := pkcs12.New()
	if current != nil {
		var err error
		if s, err = pkcs12.Decode(current, storePW); err != nil {
			return nil, pkcs12Err(o, err)
		}
		if samePKCS12(s, o.Alias, keyPW, keyDER, chain) {
			return current, nil
		}
	}
	if err := s.SetKey(o.Alias, keyDER, chain, keyPW, b.Leaf.NotBefore.UTC(), r); err != nil {
		return nil, fmt.Errorf("javakeystore: alias %q: %w", o.Alias, err)
	}
	out, err := s.Encode(storePW, r)
	if err != nil {
		return nil, fmt.Errorf("javakeystore: write the store: %w", err)
	}
	return out, nil
}

// samePKCS12 reports whether alias holds keyDER and chain (the chain Java
// builds may go on past it, to a root the store holds).
func samePKCS12(s *pkcs12.Store, alias string, keyPW, keyDER []byte, chain [][]byte) bool {
	key, got, err := s.Key(alias, keyPW)
	if err != nil || !bytes.Equal(key, keyDER) || len(got) < len(chain) {
		return false
	}
	for i, c := range chain {
		if !bytes.Equal(got[i], c) {
			return false
		}
	}
	return true
}

// servedPKCS12 is Served for keystore_type PKCS12.
func servedPKCS12(o Config, data, storePW, keyPW []byte) ([]byte, error) {
	s, err := pkcs12.Decode(data, storePW)
	if err != nil {
		return nil, pkcs12Err(o, err)
	}
	key, chain, err := s.Key(o.Alias, keyPW)
	if errors.Is(err, pkcs12.ErrKeyPassword) {
		return nil, &contract.FieldError{Field: keyPWField(o), Msg: fmt.Sprintf("the password in %s does not decrypt the key under alias %q in %s", o.keyPasswordFile(), o.Alias, o.KeystorePath)}
	} else if err != nil {
		return nil, fmt.Errorf("%s: alias %q: %w", o.KeystorePath, o.Alias, err)
	}
	var out []byte
	for _, c := range chain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...), nil
}

func keyPWField(o Config) string {
	if o.KeyPasswordFile == "" {
		return fieldStorePW
	}
	return fieldKeyPW
}

// pkcs12Err is a store that does not open as an error naming the field to
// fix.
func pkcs12Err(o Config, err error) error {
	var ue *pkcs12.UnsupportedError
	var le *pkcs12.LimitError
	switch {
	case errors.Is(err, pkcs12.ErrPassword):
		return &contract.FieldError{Field: fieldStorePW, Msg: fmt.Sprintf("the password in %s does not open %s (its integrity check fails): put the store's password there; nothing was written", o.KeystorePasswordFile, o.KeystorePath)}
	case errors.As(err, &ue):
		return &contract.FieldError{Field: fieldPath, Msg: fmt.Sprintf("%s uses %s, which certctl does not read: "+
			"rewrite it with Java 17's keytool, whose defaults certctl reads: keytool -importkeystore -srckeystore %[1]s -srcstoretype PKCS12 -srcstorepass:file %[3]s "+
			"-destkeystore %[1]s.new -deststoretype PKCS12 -deststorepass:file %[3]s, then move %[1]s.new over %[1]s; nothing was written",
			o.KeystorePath, ue.What, o.KeystorePasswordFile)}
	case errors.As(err, &le):
		return &contract.FieldError{Field: fieldPath, Msg: fmt.Sprintf("%s: %v, which certctl does not attempt (a store made to stall the worker); rebuild it with keytool; nothing was written", o.KeystorePath, le)}
	}
	return &contract.FieldError{Field: fieldPath, Msg: fmt.Sprintf("%s is not a %s keystore certctl can read (%v): point keystore_path at the store, or fix keystore_type", o.KeystorePath, o.KeystoreType, err)}
}

// Package javakeystore is the connector for a Java server reading its
// certificate from a keystore: target_type javakeystore, target_config
// {keystore_path, keystore_type: JKS|PKCS12, alias, keystore_password_file,
// key_password_file (default: the store's), reload_command,
// post_deploy_verify}.
//
// A deploy builds the new keystore whole: the existing store (read on the
// host, no link followed, bounded in size) opened with the
// password in keystore_password_file, every entry but alias kept as it is,
// and alias set to the material's key, leaf and chain, its key protected
// with the password in key_password_file. The file is staged, checked with
// `keytool -list -storepass:file` and renamed over keystore_path like any
// connector's file; then reload_command, then post_deploy_verify's handshake.
//
// The layout depends on the current store, so the connector is a
// connectors.CurrentLayout: the pipeline reads the store and the password
// files on the host and hands their bytes to FilesFrom; passwords never go
// into a workflow payload or result, and never onto a command line.
//
// Idempotence compares entries, not bytes: a store whose alias already
// holds this key, leaf and chain is laid out as its current bytes, so Plan
// sees every file match and skips. Otherwise the new store's random bytes
// (JKS: the key protector's salt; PKCS12: every salt and IV) come from a
// generator seeded by an HMAC, keyed by the passwords, of the current store
// and the material, so Plan and Stage lay out the same bytes.
//
// JKS is written with github.com/pavlo-v-chernykh/keystore-go/v4. PKCS12 is
// read and written by this module's own connectors/javakeystore/pkcs12
// (its doc says why no library serves): Java 17's defaults on write
// (PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC, MAC HMAC-SHA256, 10000
// iterations), every other entry's bags kept as they were read; a store
// it does not read (no MAC, RC4, PBMAC1 …) is refused with the keytool
// command that converts it.
package javakeystore

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "javakeystore"

// Role is the keystore file's role: errors about it name
// target_config.keystore_path.
const Role = "keystore"

// Keystore types.
const (
	TypeJKS    = "JKS"
	TypePKCS12 = "PKCS12"
)

// StoreMode is a new keystore's mode: it holds a key.
const StoreMode = 0o600

const (
	fieldPath    = "target_config.keystore_path"
	fieldType    = "target_config.keystore_type"
	fieldAlias   = "target_config.alias"
	fieldStorePW = "target_config.keystore_password_file"
	fieldKeyPW   = "target_config.key_password_file"
)

func init() { connectors.Register(Name, Connector{connectors.Owned[Config]{Name: Name}}) }

// Config is the connector's own fields of target_config.
type Config struct {
	KeystorePath         string `json:"keystore_path,omitempty" yaml:"keystore_path,omitempty"`
	KeystoreType         string `json:"keystore_type,omitempty" yaml:"keystore_type,omitempty"`
	Alias                string `json:"alias,omitempty" yaml:"alias,omitempty"`
	KeystorePasswordFile string `json:"keystore_password_file,omitempty" yaml:"keystore_password_file,omitempty"`
	KeyPasswordFile      string `json:"key_password_file,omitempty" yaml:"key_password_file,omitempty"`
}

// Validate checks the fields' form.
func (c *Config) Validate() error {
	return target.CheckFields(
		target.OwnField{Field: fieldPath, Value: c.KeystorePath, Check: target.CheckPath},
		target.OwnField{Field: fieldStorePW, Value: c.KeystorePasswordFile, Check: target.CheckPath},
		target.OwnField{Field: fieldKeyPW, Value: c.KeyPasswordFile, Check: target.CheckPath},
		target.OwnField{Field: fieldAlias, Value: c.Alias},
	)
}

// keyPasswordFile is key_password_file, else the store's.
func (c Config) keyPasswordFile() string {
	if c.KeyPasswordFile != "" {
		return c.KeyPasswordFile
	}
	return c.KeystorePasswordFile
}

// Connector implements connectors.Connector and connectors.CurrentLayout.
type Connector struct{ connectors.Owned[Config] }

// Check needs keystore_path, keystore_type, alias and
// keystore_password_file; it refuses the common layout's fields (a keystore
// is one file).
func (c Connector) Check(cfg target.Config) error {
	_, err := c.check(cfg)
	return err
}

func (c Connector) check(cfg target.Config) (Config, error) {
	o, err := c.Of(cfg)
	if err != nil {
		return o, err
	}
	for _, f := range []struct {
		field string
		set   bool
	}{
		{"cert_path", cfg.CertPath != ""}, {"key_path", cfg.KeyPath != ""}, {"chain_path", cfg.ChainPath != ""},
		{"cert_file_mode", cfg.CertFileMode != nil}, {"key_file_mode", cfg.KeyFileMode != nil}, {"chain_file_mode", cfg.ChainFileMode != nil},
		{"cert_owner", cfg.CertOwner != ""}, {"key_owner", cfg.KeyOwner != ""}, {"chain_owner", cfg.ChainOwner != ""},
	} {
		if f.set {
			return o, &contract.FieldError{Field: "target_config." + f.field, Msg: "is not used by javakeystore: the leaf, chain and key go into keystore_path under alias: remove it"}
		}
	}
	switch {
	case o.KeystorePath == "":
		return o, &contract.FieldError{Field: fieldPath, Msg: "is required for javakeystore: the keystore file the Java server reads"}
	case o.KeystoreType == "":
		return o, &contract.FieldError{Field: fieldType, Msg: "is required for javakeystore: JKS or PKCS12, the format of keystore_path"}
	case o.KeystoreType != TypeJKS && o.KeystoreType != TypePKCS12:
		return o, &contract.FieldError{Field: fieldType, Msg: fmt.Sprintf("%q is not a keystore type certctl writes: use JKS or PKCS12 (as keytool -list -v prints it under \"Keystore type\")", o.KeystoreType)}
	case o.Alias == "":
		return o, &contract.FieldError{Field: fieldAlias, Msg: "is required for javakeystore: the entry the Java server's key and certificate are under"}
	case o.Alias != strings.ToLower(o.Alias):
		return o, &contract.FieldError{Field: fieldAlias, Msg: fmt.Sprintf("%q has capitals, and keystore aliases are case-insensitive in Java (keytool lists JKS aliases in lower case): write %q", o.Alias, strings.ToLower(o.Alias))}
	case o.KeystorePasswordFile == "":
		return o, &contract.FieldError{Field: fieldStorePW, Msg: "is required for javakeystore: a file on the host holding the store's password on its first line (passwords never go on a command line or into a request)"}
	case o.KeystorePasswordFile == o.KeystorePath || o.KeyPasswordFile == o.KeystorePath:
		return o, &contract.FieldError{Field: fieldStorePW, Msg: "is keystore_path: give the password a file of its own"}
	}
	return o, nil
}

// Files is refused: the layout needs the current store (FilesFrom).
func (c Connector) Files(cfg target.Config, b *material.Bundle) ([]connectors.File, error) {
	return nil, errors.New("javakeystore: the keystore is built from the current one: lay it out with FilesFrom (connectors.CurrentLayout)")
}

// Destinations is keystore_path. No destination is marked Leaf: the
// keystore is not PEM, so renewal cannot read its leaf from it.
func (c Connector) Destinations(cfg target.Config) []connectors.Destination {
	o, _ := c.Of(cfg)
	return []connectors.Destination{{Field: fieldPath, Path: o.KeystorePath}}
}

// Reads are keystore_path and the password files.
func (c Connector) Reads(cfg target.Config) []connectors.Destination {
	o, _ := c.Of(cfg)
	ds := []connectors.Destination{{Field: fieldPath, Path: o.KeystorePath}, {Field: fieldStorePW, Path: o.KeystorePasswordFile}}
	if o.KeyPasswordFile != "" && o.KeyPasswordFile != o.KeystorePasswordFile {
		ds = append(ds, connectors.Destination{Field: fieldKeyPW, Path: o.KeyPasswordFile})
	}
	return ds
}

// Defaults: `keytool -list` of keystore_path as the server's check (its
// store password from keystore_password_file), no default reload.
func (c Connector) Defaults() connectors.Defaults { return connectors.Defaults{} }

// DefaultsFor is Defaults with the check naming cfg's files.
func (c Connector) DefaultsFor(cfg target.Config) connectors.Defaults {
	o, err := c.Of(cfg)
	if err != nil || o.KeystorePath == "" {
		return c.Defaults()
	}
	return connectors.Defaults{ValidateCommand: ListCommand(o)}
}

// ListCommand is `keytool -list` of o's store, its password read from
// keystore_password_file by keytool itself.
func ListCommand(o Config) target.Command {
	return target.Command{"keytool", "-list", "-keystore", o.KeystorePath, "-storetype", o.KeystoreType, "-storepass:file", o.KeystorePasswordFile}
}

// passwords reads the store's and the key's password (the first line of
// each file, as keytool's :file reads it).
func passwords(o Config, current map[string][]byte) (store, key []byte, err error) {
	if store, err = password(fieldStorePW, o.KeystorePasswordFile, current); err != nil {
		return nil, nil, err
	}
	field := fieldKeyPW
	if o.KeyPasswordFile == "" {
		field = fieldStorePW
	}
	if key, err = password(field, o.keyPasswordFile(), current); err != nil {
		return nil, nil, err
	}
	return store, key, nil
}

func password(field, path string, current map[string][]byte) ([]byte, error) {
	b, ok := current[path]
	if !ok || b == nil {
		return nil, &contract.FieldError{Field: field, Msg: path + " does not exist on the target's host: write the password on its first line (mode 0600)"}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	switch {
	case len(line) < 6:
		return nil, &contract.FieldError{Field: field, Msg: path + ": the password on its first line is shorter than 6 characters, which keytool refuses"}
	case !utf8.Valid(line):
		return nil, &contract.FieldError{Field: field, Msg: path + ": the password is not UTF-8 text"}
	}
	return line, nil
}

// FilesFrom lays out keystore_path: the current store (if any) with alias
// set to the material.
func (c Connector) FilesFrom(cfg target.Config, b *material.Bundle, current map[string][]byte) ([]connectors.File, error) {
	o, err := c.check(cfg)
	if err != nil {
		return nil, err
	}
	storePW, keyPW, err := passwords(o, current)
	if err != nil {
		return nil, err
	}
	data, err := Build(o, b, current[o.KeystorePath], storePW, keyPW)
	if err != nil {
		return nil, err
	}
	return []connectors.File{{Role: Role, Path: o.KeystorePath, Bytes: data, HoldsKey: true, DefaultMode: StoreMode}}, nil
}

// Served is the alias's leaf, chain and key in the store data, as PEM.
func (c Connector) Served(cfg target.Config, role string, data []byte, current map[string][]byte) ([]byte, error) {
	o, err := c.check(cfg)
	if err != nil {
		return nil, err
	}
	storePW, keyPW, err := passwords(o, current)
	if err != nil {
		return nil, err
	}
	if o.KeystoreType == TypePKCS12 {
		return servedPKCS12(o, data, storePW, keyPW)
	}
	ks, err := load(o, data, storePW)
	if err != nil {
		return nil, err
	}
	e, err := ks.GetPrivateKeyEntry(o.Alias, keyPW)
	if err != nil {
		return nil, fmt.Errorf("%s: alias %q: %w", o.KeystorePath, o.Alias, err)
	}
	var out []byte
	for _, cert := range e.CertificateChain {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Content})...)
	}
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: e.PrivateKey})...), nil
}

// newStore is an empty JKS store whose random bytes come from r.
func newStore(r *rand.ChaCha8) keystore.KeyStore {
	return keystore.New(keystore.WithOrderedAliases(), keystore.WithCustomRandomNumberGenerator(r))
}

// load opens the store data with the store password; a wrong password is an
// error naming keystore_password_file.
func load(o Config, data, storePW []byte) (keystore.KeyStore, error) {
	ks := newStore(rand.NewChaCha8([32]byte{}))
	return ks, loadInto(ks, o, data, storePW)
}

func loadInto(ks keystore.KeyStore, o Config, data, storePW []byte) error {
	if err := ks.Load(bytes.NewReader(data), storePW); err != nil {
		if err.Error() == "got invalid digest" {
			return &contract.FieldError{Field: fieldStorePW, Msg: fmt.Sprintf("the password in %s does not open %s (its integrity check fails): put the store's password there; nothing was written", o.KeystorePasswordFile, o.KeystorePath)}
		}
		return &contract.FieldError{Field: fieldPath, Msg: fmt.Sprintf("%s is not a %s keystore certctl can read (%v): point keystore_path at the store, or fix keystore_type", o.KeystorePath, o.KeystoreType, err)}
	}
	return nil
}

// Build is the new store: current (nil: none yet) with alias set to b's key,
// leaf and chain, every other entry kept as it is. When alias already holds
// exactly this key, leaf and chain it returns current itself, so a deploy
// that changes nothing sees its file match.
func Build(o Config, b *material.Bundle, current, storePW, keyPW []byte) ([]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(b.Key)
	if err != nil {
		return nil, fmt.Errorf("javakeystore: key: %w", err)
	}
	if o.KeystoreType == TypePKCS12 {
		return buildPKCS12(o, b, keyDER, current, storePW, keyPW)
	}
	chain := []keystore.Certificate{{Type: "X.509", Content: b.Leaf.Raw}}
	for _, c := range b.Chain {
		chain = append(chain, keystore.Certificate{Type: "X.509", Content: c.Raw})
	}
	mac := hmac.New(sha256.New, append(append(append([]byte{}, storePW...), 0), keyPW...))
	mac.Write([]byte("certctl javakeystore v1\x00"))
	mac.Write(current)
	mac.Write(keyDER)
	for _, c := range chain {
		mac.Write(c.Content)
	}
	var seed [32]byte
	copy(seed[:], mac.Sum(nil))
	// Every other entry stays as Load read it (a private key entry still
	// encrypted under its own password, which certctl never needs); Load
	// draws nothing from the generator, SetPrivateKeyEntry does.
	ks := newStore(rand.NewChaCha8(seed))
	if current != nil {
		if err := loadInto(ks, o, current, storePW); err != nil {
			return nil, err
		}
		if same(ks, o.Alias, keyPW, keyDER, chain) {
			return current, nil
		}
	}
	entry := keystore.PrivateKeyEntry{CreationTime: b.Leaf.NotBefore.UTC(), PrivateKey: keyDER, CertificateChain: chain}
	if err := ks.SetPrivateKeyEntry(o.Alias, entry, keyPW); err != nil {
		return nil, fmt.Errorf("javakeystore: alias %q: %w", o.Alias, err)
	}
	var buf bytes.Buffer
	if err := ks.Store(&buf, storePW); err != nil {
		return nil, fmt.Errorf("javakeystore: write the store: %w", err)
	}
	return buf.Bytes(), nil
}

// same reports whether alias holds keyDER and chain.
func same(ks keystore.KeyStore, alias string, keyPW, keyDER []byte, chain []keystore.Certificate) bool {
	e, err := ks.GetPrivateKeyEntry(alias, keyPW)
	if err != nil || !bytes.Equal(e.PrivateKey, keyDER) || len(e.CertificateChain) != len(chain) {
		return false
	}
	for i, c := range e.CertificateChain {
		if !bytes.Equal(c.Content, chain[i].Content) {
			return false
		}
	}
	return true
}

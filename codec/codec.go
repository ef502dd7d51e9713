// Package codec encrypts every Temporal payload certctl writes (workflow and
// activity inputs and results, failure details) with AES-256-GCM, so cert
// material, private keys included, never sits in a history in the clear.
//
// Several keys can be loaded at once; the newest (last) encrypts and every
// one decrypts, so histories written before a rotation stay readable. Each
// payload names its key id in its metadata.
package codec

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"syscall"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata keys and values of an encrypted payload.
const (
	MetadataEncoding = "binary/encrypted"
	MetadataKeyID    = "encryption-key-id"
	metadataCipher   = "encryption-cipher"
	cipherName       = "AES-256-GCM"
)

// Environment variables that hold keys: CERTCTL_CODEC_KEYS is
// "id:base64key[,id:base64key…]"; CERTCTL_CODEC_KEY_FILE names a file with
// one "id base64key" (or "id:base64key") a line. In both the last key is the
// newest and encrypts.
const (
	EnvKeys    = "CERTCTL_CODEC_KEYS"
	EnvKeyFile = "CERTCTL_CODEC_KEY_FILE"
)

// ErrNoKeys means no key is configured.
var ErrNoKeys = errors.New("no payload encryption key: set " + EnvKeyFile + " or " + EnvKeys +
	" (a key is 32 random bytes, base64: `head -c32 /dev/urandom | base64`)")

// Key is one AES-256 key and its id.
type Key struct {
	ID  string
	aes cipher.AEAD
}

// Codec is a converter.PayloadCodec.
type Codec struct {
	keys   map[string]Key
	newest Key
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New builds a codec from keys, oldest first; the last one encrypts.
func New(keys ...Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	c := &Codec{keys: map[string]Key{}}
	for _, k := range keys {
		if k.aes == nil {
			return nil, fmt.Errorf("codec: key %q has no cipher: make keys with NewKey", k.ID)
		}
		if _, dup := c.keys[k.ID]; dup {
			return nil, fmt.Errorf("codec: key id %q given twice", k.ID)
		}
		c.keys[k.ID] = k
	}
	c.newest = keys[len(keys)-1]
	return c, nil
}

// NewKey makes a key from 32 raw bytes.
func NewKey(id string, raw []byte) (Key, error) {
	if id == "" || strings.ContainsAny(id, " :,\t\n") {
		return Key{}, fmt.Errorf("codec: key id %q: want a non-empty word", id)
	}
	if len(raw) != 32 {
		return Key{}, fmt.Errorf("codec: key %q is %d bytes, want 32 (AES-256)", id, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return Key{}, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: id, aes: gcm}, nil
}

// GenerateKey makes a fresh random key and returns it with its base64 text.
func GenerateKey(id string) (Key, string, error) {
	raw := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, raw); err != nil {
		return Key{}, "", err
	}
	k, err := NewKey(id, raw)
	return k, base64.StdEncoding.EncodeToString(raw), err
}

// ParseKeys reads "id:base64" entries separated by commas or newlines (a
// space may stand for the colon); blank lines and # comments are skipped.
func ParseKeys(text string) ([]Key, error) {
	var keys []Key
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(text, ",", "\n")))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, ":")
		if !ok {
			id, b64, ok = strings.Cut(line, " ")
		}
		if !ok {
			return nil, fmt.Errorf("codec: key entry %d: want \"id:base64key\"", n)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			// Never echo the entry: it is a secret.
			return nil, fmt.Errorf("codec: key %q: not valid base64", strings.TrimSpace(id))
		}
		k, err := NewKey(strings.TrimSpace(id), raw)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, sc.Err()
}

// FromEnv loads the keys named by the environment. ErrNoKeys when none is set.
func FromEnv() (*Codec, error) {
	var keys []Key
	if f := os.Getenv(EnvKeyFile); f != "" {
		b, err := readKeyFile(f)
		if err != nil {
			return nil, err
		}
		if keys, err = ParseKeys(string(b)); err != nil {
			return nil, fmt.Errorf("%s %s: %w", EnvKeyFile, f, err)
		}
	}
	if v := os.Getenv(EnvKeys); v != "" {
		more, err := ParseKeys(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKeys, err)
		}
		keys = append(keys, more...)
	}
	return New(keys...)
}

// readKeyFile reads the key file, refusing one that is not the running
// user's own or that others may read: whoever else owns it can swap the
// keys every payload is sealed with. The checks are made on the open file,
// so they hold for the bytes read.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("codec: %s: %w", EnvKeyFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("codec: %s: %w", EnvKeyFile, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("codec: key file %s is not a regular file", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		me := userName(os.Geteuid())
		return nil, fmt.Errorf("codec: key file %s is owned by %s, not by %s, who runs this process: "+
			"make it %s's own (chown %s %s; chmod 0600 %s), or give this process a key file of its own",
			path, userName(int(st.Uid)), me, me, me, path, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("codec: key file %s is mode %04o: make it 0600", path, fi.Mode().Perm())
	}
	return io.ReadAll(io.LimitReader(f, maxKeyFile))
}

// maxKeyFile bounds the key file: a few hundred keys at most.
const maxKeyFile = 64 << 10

// userName is "name (uid N)", or "uid N" when the user has no name.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// KeyID is the id of the key that encrypts.
func (c *Codec) KeyID() string { return c.newest.ID }

// Encode encrypts each payload (its whole protobuf form, metadata included)
// under the newest key with a fresh nonce, compressed first when it is
// larger than CompressAbove (compress.go).
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, c.newest.aes.NonceSize())
		if _, err := io.ReadFull(rand.Reader, nonce); err != nil {
			return nil, err
		}
		plain, compression := compress(plain)
		md := map[string][]byte{
			converter.MetadataEncoding: []byte(MetadataEncoding),
			MetadataKeyID:              []byte(c.newest.ID),
			metadataCipher:             []byte(cipherName),
		}
		if compression != "" {
			md[metadataCompression] = []byte(compression)
		}
		out[i] = &commonpb.Payload{
			Metadata: md,
			// The key id (and compression) is authenticated with the
			// ciphertext.
			Data: c.newest.aes.Seal(nonce, nonce, plain, aad(c.newest.ID, compression)),
		}
	}
	return out, nil
}

// Decode decrypts payloads this codec encrypted and passes others through
// unchanged (payloads written before encryption was turned on).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncoding {
			// Unencrypted payloads pass (histories from before encryption),
			// but never one carrying a private key: that input was started
			// without the codec and its key now sits in the history in the
			// clear. Refuse it loudly rather than deploy it quietly.
			if holdsPrivateKey(p) {
				return nil, ErrPlaintextKey
			}
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		k, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload encrypted with key id %q, which is not loaded (loaded: %s)", id, c.loaded())
		}
		ns := k.aes.NonceSize()
		if len(p.Data) < ns {
			return nil, fmt.Errorf("codec: payload under key %q is truncated", id)
		}
		compression := string(p.GetMetadata()[metadataCompression])
		plain, err := k.aes.Open(nil, p.Data[:ns], p.Data[ns:], aad(id, compression))
		if err != nil {
			return nil, fmt.Errorf("codec: payload under key %q does not decrypt (wrong key material or tampered)", id)
		}
		if plain, err = decompress(plain, compression); err != nil {
			return nil, err
		}
		var dp commonpb.Payload
		if err := proto.Unmarshal(plain, &dp); err != nil {
			return nil, fmt.Errorf("codec: payload under key %q: %w", id, err)
		}
		out[i] = &dp
	}
	return out, nil
}

func (c *Codec) loaded() string {
	var ids []string
	for id := range c.keys {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return "none"
	}
	sort.Strings(ids)
	return strings.Join(ids, ", ")
}

// DataConverter wraps the default converter with the codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

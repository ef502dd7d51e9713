package codec

import (
	"errors"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// plainJSON is a payload as the temporal CLI writes one from --input: the
// operator's JSON text, byte for byte.
func plainJSON(text string) *commonpb.Payload {
	return &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingJSON)}, Data: []byte(text)}
}

const body = `MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg`

// The guard judges a plaintext payload by what it decodes to, so no
// spelling of the key gets past it; a payload without a key still passes.
func TestPlaintextGuardByStructure(t *testing.T) {
	c, _ := New(mustKey(t))
	refused := map[string]*commonpb.Payload{
		"escaped P":                plainJSON(`{"target":{"target_id":"t"},"material":{"cert_pem":"x","key_pem":"-----BEGIN \u0050RIVATE KEY-----\n` + body + `\n-----END \u0050RIVATE KEY-----\n"}}`),
		"every letter escaped":     plainJSON(`{"material":{"key_pem":"\u002d\u002d\u002d\u002d\u002dBEGIN \u0050\u0052\u0049\u0056\u0041\u0054\u0045 \u004b\u0045\u0059-----"}}`),
		"key body without armor":   plainJSON(`{"material":{"key_pem":"` + body + `"}}`),
		"key_pem of one character": plainJSON(`{"material":{"key_pem":"x"}}`),
		"key_pem not a string":     plainJSON(`{"material":{"key_pem":["-----BEGIN", "KEY"]}}`),
		"key_pem an object":        plainJSON(`{"material":{"key_pem":{}}}`),
		"upper-case field":         plainJSON(`{"material":{"KEY_PEM":"` + body + `"}}`),
		"mixed-case field":         plainJSON(`{"Material":{"Key_Pem":"` + body + `"}}`),
		"Kelvin sign K":            plainJSON(`{"material":{"\u212aey_pem":"` + body + `"}}`),
		"empty then a real one":    plainJSON(`{"material":{"key_pem":"","KEY_PEM":"` + body + `"}}`),
		"key in chain_pem":         plainJSON(`{"material":{"chain_pem":"-----BEGIN EC \u0050RIVATE KEY-----\n` + body + `\n"}}`),
		"key in a name":            plainJSON(`{"-----BEGIN \u0050RIVATE KEY-----":1}`),
		"key deep in a list":       plainJSON(`[1,{"a":[["-----BEGIN RSA \u0050RIVATE KEY-----"]]}]`),
		"a bare JSON string":       plainJSON(`"-----BEGIN \u0050RIVATE KEY-----"`),
		"the default converter":    toPayload(t, map[string]any{"material": map[string]string{"key_pem": body}}),
		"not JSON, raw bytes":      {Metadata: map[string][]byte{converter.MetadataEncoding: []byte(converter.MetadataEncodingBinary)}, Data: []byte("\x00\x01-----BEGIN PRIVATE KEY-----\n")},
		"broken JSON":              plainJSON(`{"material":{"key_pem":"-----BEGIN PRIVATE KEY-----`),
	}
	for name, p := range refused {
		t.Run("refused/"+name, func(t *testing.T) {
			_, err := c.Decode([]*commonpb.Payload{p})
			if !errors.Is(err, ErrPlaintextKey) {
				t.Fatalf("Decode = %v, want ErrPlaintextKey", err)
			}
			if strings.Contains(err.Error(), body[:20]) {
				t.Fatal("the refusal quotes the key")
			}
			for _, w := range []string{"--codec-endpoint", "certctl", "key_pem"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal %q does not say %q", err, w)
				}
			}
		})
	}
	passes := map[string]*commonpb.Payload{
		"empty key_pem":          plainJSON(`{"material":{"cert_pem":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","key_pem":""}}`),
		"null key_pem":           plainJSON(`{"material":{"key_pem":null}}`),
		"a result":               plainJSON(`{"outcome":"InvalidInput","error":"key_pem: private key does not match the certificate"}`),
		"a fingerprint":          toPayload(t, "just a cert fingerprint"),
		"a number":               plainJSON(`12345678901234567890`),
		"a KeyPEM of another go": toPayload(t, certBundle{Name: "n"}),
	}
	for name, p := range passes {
		t.Run("passes/"+name, func(t *testing.T) {
			out, err := c.Decode([]*commonpb.Payload{p})
			if err != nil || len(out) != 1 || string(out[0].GetData()) != string(p.GetData()) {
				t.Fatalf("Decode = %v, %v", out, err)
			}
		})
	}
}

func mustKey(t *testing.T) Key {
	t.Helper()
	k, _, err := GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A key file someone else owns is refused, 0600 or not: its owner can swap
// the keys payloads are sealed with. The message names the file, its owner
// and the fix.
func TestKeyFileOwnedByAnotherUser(t *testing.T) {
	_, b64, err := GenerateKey("k")
	if err != nil {
		t.Fatal(err)
	}
	var f string
	owner := 0
	if os.Geteuid() == 0 {
		f = writeKeyFile(t, "k "+b64+"\n", 0o600)
		owner = 65534
		if err := os.Chown(f, owner, owner); err != nil {
			t.Fatal(err)
		}
	} else {
		f = "/etc/passwd" // root's, and not ours
	}
	t.Setenv(EnvKeyFile, f)
	t.Setenv(EnvKeys, "")
	_, err = FromEnv()
	if err == nil {
		t.Fatalf("FromEnv accepted %s, owned by uid %d", f, owner)
	}
	msg := err.Error()
	me := strconv.Itoa(os.Geteuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	for _, w := range []string{f, "owned by", "uid " + strconv.Itoa(owner), "chown " + me} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	if strings.Contains(msg, b64) {
		t.Error("the error echoes the key")
	}
}

package codec

import (
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

// A payload that reached Temporal without the codec and holds a private key
// is refused, not quietly used; other plain payloads still pass.
func TestDecodeRefusesPlaintextPrivateKey(t *testing.T) {
	k, _, err := GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := New(k)
	leaky, _ := converter.GetDefaultDataConverter().ToPayload(map[string]string{"key_pem": "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"})
	_, err = c.Decode([]*commonpb.Payload{leaky})
	if err == nil || !strings.Contains(err.Error(), "unencrypted payload that holds a private key") {
		t.Fatalf("want a refusal, got %v", err)
	}
	if strings.Contains(err.Error(), "MIGH") {
		t.Fatal("the refusal quotes the key")
	}
	plain, _ := converter.GetDefaultDataConverter().ToPayload("just a cert fingerprint")
	if _, err := c.Decode([]*commonpb.Payload{plain}); err != nil {
		t.Fatalf("a plain payload without a key must pass: %v", err)
	}
}

package codec

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/proto"
)

// fleetPayload is what a rollout's request looks like: many target files
// that differ in a few fields, and a key.
func fleetPayload(t *testing.T, n int) *commonpb.Payload {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"target_id":"web-%05d","target_type":"nginx","host":"web-%05d.example.com","target_config":{"cert_path":"/etc/nginx/certs/cert.pem","key_path":"/etc/nginx/certs/key.pem","post_deploy_verify":{"endpoint":"web-%05d.example.com:443"}}},`, i, i, i)
	}
	return toPayload(t, certBundle{Name: b.String(), KeyPEM: pemKey(t)})
}

// A payload past CompressAbove is compressed before it is encrypted and
// comes back whole; a small one (a deploy's request, a key) is never
// compressed.
func TestLargePayloadsCompressedSmallOnesNot(t *testing.T) {
	k, raw, b64 := testKey(t, "k1")
	c := mustNew(t, k)
	big := fleetPayload(t, 10000)
	plainLen := proto.Size(big)
	enc := encodeOne(t, c, big)
	if string(enc.GetMetadata()[metadataCompression]) != compressionZlib {
		t.Fatalf("a %d-byte payload was not compressed", plainLen)
	}
	if len(enc.Data) > plainLen/5 {
		t.Fatalf("compressed to %d of %d bytes", len(enc.Data), plainLen)
	}
	assertNoLeak(t, "ciphertext", enc.Data, raw, []byte(b64), []byte("PRIVATE KEY"), []byte("web-00001"))
	if got := decodeOne(t, c, enc); !proto.Equal(got, big) {
		t.Fatal("the compressed payload did not round-trip")
	}
	small := encodeOne(t, c, toPayload(t, certBundle{Name: "www.example.com", KeyPEM: pemKey(t)}))
	if _, ok := small.GetMetadata()[metadataCompression]; ok {
		t.Fatal("a small payload was compressed")
	}
}

// The compression flag is authenticated: dropping it, or adding it to a
// payload that was not compressed, makes the payload refuse to decrypt.
func TestCompressionFlagAuthenticated(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	enc := encodeOne(t, c, fleetPayload(t, 2000))
	q := proto.Clone(enc).(*commonpb.Payload)
	delete(q.Metadata, metadataCompression)
	if _, err := c.Decode([]*commonpb.Payload{q}); err == nil {
		t.Fatal("a compressed payload decoded with its flag dropped")
	}
	small := encodeOne(t, c, toPayload(t, "hello"))
	small.Metadata[metadataCompression] = []byte(compressionZlib)
	if _, err := c.Decode([]*commonpb.Payload{small}); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("a flag added to a plain payload: %v", err)
	}
}

// A payload that inflates past MaxDecompressed is refused, not inflated
// into the worker's memory (one sealed by a holder of the key: the
// bound is for a compromised or buggy writer).
func TestDecompressionBounded(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	var b bytes.Buffer
	zw := zlib.NewWriter(&b)
	zeros := make([]byte, 1<<20)
	for i := 0; i <= MaxDecompressed>>20; i++ {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	nonce := make([]byte, k.aes.NonceSize())
	_, _ = rand.Read(nonce)
	bomb := &commonpb.Payload{
		Metadata: map[string][]byte{"encoding": []byte(MetadataEncoding), MetadataKeyID: []byte("k1"), metadataCompression: []byte(compressionZlib)},
		Data:     k.aes.Seal(nonce, nonce, b.Bytes(), aad("k1", compressionZlib)),
	}
	if _, err := c.Decode([]*commonpb.Payload{bomb}); err == nil || !strings.Contains(err.Error(), "inflates past") {
		t.Fatalf("a payload inflating past the bound: %v", err)
	}
}

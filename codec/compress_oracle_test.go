//go:build reviewdefects

package codec

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

// A rollout's continue-as-new input is one payload holding the key and the
// errors its deploys reported (RolloutCarried.Failed and Recent), text
// that is not the operator's. Compressed with the key, its length says
// whether that text repeats part of the key (a CRIME-style oracle for
// anyone who reads the history's payload sizes). This test documents the
// defect (review of issue 14): it fails, and is kept out of CI by its tag.
func TestCompressedLengthSaysNothingOfTheKey(t *testing.T) {
	k, _, _ := testKey(t, "k1")
	c := mustNew(t, k)
	key := pemKey(t)
	// Characters 48 to 88 of a P-256 PKCS#8 key's base64: its private
	// scalar, past the fixed header.
	lines := strings.Split(key, "\n")
	right := (lines[1] + lines[2])[48:88]
	wrongBytes := make([]byte, 30)
	_, _ = rand.Read(wrongBytes)
	wrong := base64.StdEncoding.EncodeToString(wrongBytes)[:40]
	fleet := fleetPayload(t, 600)
	size := func(chosen string) int {
		// The fleet, then the key, then a deploy's error quoting chosen text.
		p := toPayload(t, certBundle{Name: string(fleet.Data) + `"error":"served ` + chosen + `"`, KeyPEM: key})
		return len(encodeOne(t, c, p).Data)
	}
	if r, w := size(right), size(wrong); r != w {
		t.Fatalf("with text that repeats 40 characters of the key's private scalar the ciphertext is %d bytes, with other text %d: its length tells the one from the other", r, w)
	}
}

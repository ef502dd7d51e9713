package codec

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
)

// Large payloads are compressed before they are encrypted: a rollout's
// request carries every target, thousands of files that differ in a few
// fields, which would otherwise pass the server's 2 MiB payload limit
// (docs/scale.md). Compression before encryption lets a ciphertext's length
// depend on how the plaintext repeats itself, so whoever can both put text
// into a payload that also holds a key and read the payload's size learns
// whether that text repeats part of the key. certctl keeps that from
// happening where payloads grow this large: a payload this small (a
// deploy's request, a key, a step result) is never compressed, and the
// large ones (a rollout's request and what it carries into its next run)
// hold only the operator's own input and names, never a deploy's error
// text (workflows.rollout.carry; TestRolloutCarriesNoDeployText).
const (
	// CompressAbove is the size of a payload's protobuf form above which it
	// is compressed.
	CompressAbove = 64 << 10
	// MaxDecompressed bounds what one payload may decompress to: a
	// compressed payload that claims more is refused, not inflated.
	MaxDecompressed = 64 << 20
	// metadataCompression names the compression of an encrypted payload;
	// it is authenticated with the ciphertext (aad).
	metadataCompression = "encryption-compression"
	compressionZlib     = "zlib"
)

// aad is what a payload's ciphertext authenticates besides itself: the key
// id, and the compression when there is one (so that flag cannot be
// flipped).
func aad(keyID, compression string) []byte {
	if compression == "" {
		return []byte(keyID)
	}
	return []byte(keyID + "\x00" + compression)
}

// compress returns plain compressed, or plain itself and "" when it is
// small or does not shrink.
func compress(plain []byte) ([]byte, string) {
	if len(plain) <= CompressAbove {
		return plain, ""
	}
	var b bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&b, zlib.BestSpeed)
	if _, err := zw.Write(plain); err != nil {
		return plain, ""
	}
	if err := zw.Close(); err != nil || b.Len() >= len(plain) {
		return plain, ""
	}
	return b.Bytes(), compressionZlib
}

// decompress undoes compress, bounded by MaxDecompressed.
func decompress(data []byte, compression string) ([]byte, error) {
	switch compression {
	case "":
		return data, nil
	case compressionZlib:
	default:
		return nil, fmt.Errorf("codec: unknown compression %q", compression)
	}
	zr, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("codec: compressed payload: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, MaxDecompressed+1))
	if err != nil {
		return nil, fmt.Errorf("codec: compressed payload: %w", err)
	}
	if len(out) > MaxDecompressed {
		return nil, fmt.Errorf("codec: compressed payload inflates past %d bytes: refused", MaxDecompressed)
	}
	return out, nil
}

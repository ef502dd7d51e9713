package material

import (
	"bytes"
	"encoding/asn1"
	"fmt"
)

// IsDER reports whether data is one DER-encoded ASN.1 SEQUENCE and nothing
// else: a certificate or key in binary form (.der, .cer, .crt from some
// CAs and Windows exports) given where PEM text is wanted.
func IsDER(data []byte) bool {
	if len(data) == 0 || data[0] != 0x30 || bytes.Contains(data, pemBegin) {
		return false
	}
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(data, &raw)
	return err == nil && len(rest) == 0 && raw.Tag == asn1.TagSequence && raw.IsCompound
}

// DERAdvice says a field's file is DER and how to convert it, naming file:
// openssl x509 for a certificate or chain, openssl pkey for a key.
func DERAdvice(field, file string) string {
	cmd := "x509"
	if field == "key_pem" {
		cmd = "pkey"
	}
	return fmt.Sprintf("is DER, not PEM: convert it with `openssl %s -inform der -in %s -out %s.pem`", cmd, file, file)
}

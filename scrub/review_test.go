package scrub_test

import (
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/certctl/certctl/scrub"
)

func groups(s string, n int, sep string) string {
	var parts []string
	for len(s) > n {
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return strings.Join(append(parts, s), sep)
}

// Spellings of a key a tool (or a reload script) may print that the scrubber
// must still catch.
func TestReviewScrubSpellings(t *testing.T) {
	for _, k := range newKeys(t) {
		sc := scrub.New(k.key)
		b64 := base64.StdEncoding.EncodeToString(k.der)
		hx := strings.ToUpper(hex.EncodeToString(k.scalars[0]))
		cases := map[string]string{
			"base64 in groups of 4":          groups(b64, 4, " "),
			"base64 in groups of 8, tabs":    groups(b64, 8, "\t"),
			"base64 url, groups of 16":       groups(base64.URLEncoding.EncodeToString(k.der), 16, " "),
			"base64 76-col, CRLF":            groups(b64, 76, "\r\n"),
			"upper hex, spaces":              groups(hx, 2, " "),
			"upper hex, groups of 4, spaces": groups(hx, 4, " "),
			"hex, 0x-prefixed bytes":         "0x" + groups(hx, 2, ", 0x"),
			"hex, dashes":                    groups(hx, 2, "-"),
			"decimal scalar":                 new(big.Int).SetBytes(k.scalars[0]).String(),
		}
		for name, text := range cases {
			got := sc.String("out: " + text + " end")
			if strings.Contains(got, text[len(text)/3:len(text)/3+24]) || !strings.Contains(got, scrub.Redacted) {
				t.Errorf("%s, %s: not redacted: %.160s", k.name, name, got)
			}
		}
	}
}

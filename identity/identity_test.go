package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalMapsOnePersonToOneSpelling(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice", "alice"},
		{" ALICE ", "alice"},
		{"Alice", "alice"},
		{"ａｌｉｃｅ", "alice"}, // full-width: PRECIS width mapping
		{"ＡＬＩＣＥ", "alice"},
		{"bob.smith-2", "bob.smith-2"},
		{"\u3000alice\t", "alice"},    // ideographic space around: trimmed
		{"e\u0301mile", "\u00e9mile"}, // NFC
		{"ΣΟΦΊΑ", "σοφία"},            // Greek, one script
		{"иван", "иван"},              // Cyrillic, one script
		{"山田たろう", "山田たろう"},            // Han + Hiragana: Japanese
		{"김민준", "김민준"},
		{"alice42", "alice42"},
	} {
		got, err := Canonical(c.in)
		if err != nil || got != c.want {
			t.Errorf("Canonical(%+q) = %+q, %v; want %+q", c.in, got, err, c.want)
		}
	}
}

func TestCanonicalRefusesLookAlikes(t *testing.T) {
	for _, c := range []struct{ in, kind, msg string }{
		{"", Empty, "is empty"},
		{"   ", Empty, "is empty"},
		{"\u0430lice", MixedScript, "U+0430 '\\u0430' is Cyrillic"}, // Cyrillic а
		{"b\u043eb", MixedScript, "mixes scripts"},                  // Cyrillic о
		{"alice\u03bf", MixedScript, "Greek"},
		{"ａｌｉｃｅ\u0430", MixedScript, "mixes scripts"},
		{"alice\u200b", Invisible, "U+200B"}, // zero-width space
		{"al\u200dice", Invisible, "U+200D"}, // zero-width joiner
		{"ali\u00adce", Invisible, "U+00AD"}, // soft hyphen
		{"alice\ufe0f", Invisible, "U+FE0F"}, // variation selector
		{"\u202eecila", Invisible, "U+202E"}, // bidi override
		{"alice\u2066", Invisible, "U+2066"}, // bidi isolate
		{"\ufeffalice", Invisible, "U+FEFF"}, // byte-order mark
		{"ali\u3164ce", Invisible, "U+3164"}, // Hangul filler
		{"ali\x00ce", Invisible, "U+0000"},
		{"alice smith", Disallowed, "PRECIS"},
		{"alice☃", Disallowed, "PRECIS"},
	} {
		got, err := Canonical(c.in)
		var ie *Error
		if !errors.As(err, &ie) {
			t.Errorf("Canonical(%+q) = %+q, %v; want a refusal", c.in, got, err)
			continue
		}
		if ie.Kind != c.kind || !strings.Contains(err.Error(), c.msg) || ie.Input != c.in {
			t.Errorf("Canonical(%+q): kind %s, %q; want kind %s naming %q", c.in, ie.Kind, err, c.kind, c.msg)
		}
		if strings.ContainsFunc(err.Error(), invisible) {
			t.Errorf("the message of %+q holds the invisible character itself: %q", c.in, err)
		}
	}
}

// The attacks of issue 10: each look-alike either is alice or is refused;
// none is a different person.
func TestLookAlikesAreAliceOrRefused(t *testing.T) {
	alice, _ := Canonical("alice")
	for _, in := range []string{"\u0430lice", "alice\u200b", "ａｌｉｃｅ", " ALICE ", "alice\u034f"} {
		got, err := Canonical(in)
		if err == nil && got != alice {
			t.Errorf("%+q maps to %+q: a second person spelled like alice", in, got)
		}
	}
}

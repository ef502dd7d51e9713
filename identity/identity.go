// Package identity turns the names people type for themselves (approval
// actors, approver pools) into one canonical spelling, and refuses names
// that could be faked by spelling.
//
// Canonical trims surrounding white space and maps the name with the PRECIS
// UsernameCaseMapped profile (RFC 8265: width mapping, NFC, case folding),
// so "ＡＬＩＣＥ", " Alice " and "alice" are one person. It then refuses
//   - invisible characters: format characters (category Cf: zero-width
//     spaces and joiners, bidi controls, soft hyphen…), variation selectors,
//     every other default-ignorable code point and control characters,
//     anywhere in the name;
//   - names mixing scripts (the single-script rule of Unicode TR39, section
//     5.1): the characters' scripts must share at least one script, Common
//     and Inherited counting as any, Han writing with Hiragana and Katakana
//     (Japanese), Bopomofo (Chinese) or Hangul (Korean) as TR39's augmented
//     script sets do. The Script property stands in for Script_Extensions
//     (the standard library has no Script_Extensions tables): a character
//     whose Script is Common or Inherited counts as any script, which is
//     looser than TR39 only for characters PRECIS already refuses
//     (punctuation and symbols outside ASCII);
//   - whatever PRECIS refuses (spaces inside, symbols, unassigned code
//     points) and empty names.
package identity

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/secure/precis"
)

// Why a name is refused.
const (
	Empty       = "empty"
	Invisible   = "invisible"
	MixedScript = "mixed-script"
	Disallowed  = "disallowed"
)

// Error is a refused name: Input as given, Kind one of the constants above,
// Reason what was wrong.
type Error struct {
	Input  string
	Kind   string
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: an identity must be one visible name in one script", strconv.QuoteToASCII(e.Input), e.Reason)
}

// Canonical returns the one spelling of the identity s names, or an *Error.
func Canonical(s string) (string, error) {
	refuse := func(kind, format string, args ...any) (string, error) {
		return "", &Error{Input: s, Kind: kind, Reason: fmt.Sprintf(format, args...)}
	}
	t := strings.TrimSpace(s)
	if t == "" {
		return refuse(Empty, "is empty")
	}
	for i, r := range t {
		if invisible(r) {
			return refuse(Invisible, "holds %s, an invisible or control character, at byte %d", runeName(r), i)
		}
	}
	c, err := precis.UsernameCaseMapped.String(t)
	if err != nil {
		return refuse(Disallowed, "is not a PRECIS user name (RFC 8265: letters and digits, no spaces or symbols): %v", err)
	}
	if c == "" {
		return refuse(Empty, "is empty once mapped")
	}
	if err := singleScript(c); err != "" {
		return refuse(MixedScript, "%s", err)
	}
	return c, nil
}

// invisible reports format, control, variation-selector and other
// default-ignorable characters (white space inside a name is left to
// PRECIS, which refuses it).
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Cc, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point,
		unicode.Join_Control, unicode.Bidi_Control) || r == '\u00ad'
}

func runeName(r rune) string {
	return fmt.Sprintf("U+%04X", r)
}

// augmented lists, for the scripts TR39 writes together, the combined
// scripts they belong to (Jpan, Hanb, Kore).
var augmented = map[string][]string{
	"Han":      {"Jpan", "Hanb", "Kore"},
	"Hiragana": {"Jpan"},
	"Katakana": {"Jpan"},
	"Bopomofo": {"Hanb"},
	"Hangul":   {"Kore"},
}

// singleScript says how s mixes scripts, or "".
func singleScript(s string) string {
	var common map[string]bool // nil: any script so far
	var first rune
	var firstScript string
	for _, r := range s {
		sc := scriptOf(r)
		if sc == "Common" || sc == "Inherited" {
			continue
		}
		set := map[string]bool{sc: true}
		for _, a := range augmented[sc] {
			set[a] = true
		}
		if common == nil {
			common, first, firstScript = set, r, sc
			continue
		}
		for k := range common {
			if !set[k] {
				delete(common, k)
			}
		}
		if len(common) == 0 {
			return fmt.Sprintf("mixes scripts: %s %s is %s, %s %s is %s", runeName(first), strconv.QuoteRuneToASCII(first), firstScript, runeName(r), strconv.QuoteRuneToASCII(r), sc)
		}
	}
	return ""
}

// scriptOf is r's Unicode Script property ("Unknown" if none).
func scriptOf(r rune) string {
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return "Unknown"
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
)

// detailsOf decodes into out the result a failed workflow carries in its
// failure's details: certctl's workflows fail with an application error
// whose type is the outcome and whose details are the result (a cancelled
// rollout with a cancelled error carrying it). False when the failure
// carries none (a terminated or timed-out run).
func detailsOf(err error, out any) bool {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Details(out) == nil
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return ce.Details(out) == nil
	}
	return false
}

// report prints a finished workflow's result, as one JSON object or as
// printText writes it, and returns the exit code its outcome means: 0 for
// the success outcomes, 2 for InvalidInput (refused before anything
// started), 1 for any other.
func report(w io.Writer, text bool, asJSON any, printText func(), outcome string, success ...string) error {
	if !text {
		if err := json.NewEncoder(w).Encode(asJSON); err != nil {
			return err
		}
	} else {
		printText()
	}
	switch {
	case slices.Contains(success, outcome):
		return nil
	case outcome == contract.InvalidInput:
		return &exitError{code: 2}
	}
	return &exitError{code: 1}
}

// oneLine is text from a workflow (an error, a command's output) made safe
// for one line of a terminal (terminalSafe), cut past 300 characters.
func oneLine(s string) string {
	s = terminalSafe(s)
	if r := []rune(s); len(r) > 300 {
		return string(r[:300]) + "…"
	}
	return s
}

// terminalSafe is text from a workflow made safe for a terminal: line
// breaks and tabs become spaces, every other control character (ESC, BEL,
// CR, C1) is shown as \xNN, so nothing a server or a command printed can
// move the cursor, clear the screen or retitle the window.
func terminalSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

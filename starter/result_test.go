package main

import (
	"strings"
	"testing"
)

// What a server or a command printed reaches the terminal as text: no
// escape sequence, carriage return or bell gets through, and one line is
// one line.
func TestTerminalSafe(t *testing.T) {
	in := "nginx: [emerg] \x1b]0;owned\x07bad\r\nline\x1b[2J\tend\u0085"
	want := `nginx: [emerg] \x1b]0;owned\x07bad  line\x1b[2J end\x85`
	if got := terminalSafe(in); got != want {
		t.Fatalf("terminalSafe = %q, want %q", got, want)
	}
	long := strings.Repeat("é", 400)
	if got := oneLine(long); !strings.HasSuffix(got, "…") || len([]rune(got)) != 301 {
		t.Fatalf("oneLine of 400 runes: %d runes", len([]rune(got)))
	}
}

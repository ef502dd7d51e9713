package probe

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Bounds on the plaintext a prelude reads from a server before TLS.
const (
	maxLines = 64   // lines in all: greeting, EHLO's reply, STARTTLS's reply
	maxLine  = 1024 // bytes in one line
)

// boundedConn is the connection during a plaintext prelude: a server that
// sends a line longer than maxLine, or more than maxLines lines, fails the
// read, so no reply is read without end.
type boundedConn struct {
	net.Conn
	line, lines int
}

func (b *boundedConn) Read(p []byte) (int, error) {
	n, err := b.Conn.Read(p)
	for _, c := range p[:n] {
		if c != '\n' {
			if b.line++; b.line > maxLine {
				return 0, fmt.Errorf("server sent a line longer than %d bytes", maxLine)
			}
			continue
		}
		b.line = 0
		if b.lines++; b.lines > maxLines {
			return 0, fmt.Errorf("server's replies before TLS are longer than %d lines", maxLines)
		}
	}
	return n, err
}

// noPipelinedBytes refuses plaintext the server sent after its go-ahead: it
// would be read as if it came inside TLS (the STARTTLS injection flaw).
func noPipelinedBytes(r *bufio.Reader) error {
	if r.Buffered() > 0 {
		return errors.New("the server sent plaintext after its STARTTLS go-ahead")
	}
	return nil
}

// quote shows a server's reply in an error, cut short.
func quote(s string) string {
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return strconv.Quote(s)
}

package probe

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
)

// imapStartTLS reads the greeting and asks for STARTTLS (RFC 3501 6.2.1).
func imapStartTLS(conn net.Conn) error {
	br := bufio.NewReader(conn)
	r := textproto.NewReader(br)
	l, err := r.ReadLine()
	if err != nil {
		return fmt.Errorf("greeting: %w", eof(err))
	}
	if !strings.HasPrefix(l, "* OK") {
		return fmt.Errorf("greeting: %s", quote(l))
	}
	if _, err := io.WriteString(conn, "c1 STARTTLS\r\n"); err != nil {
		return err
	}
	for {
		l, err := r.ReadLine()
		if err != nil {
			return fmt.Errorf("STARTTLS: %w", eof(err))
		}
		if strings.HasPrefix(l, "* ") {
			continue
		}
		if !strings.HasPrefix(l, "c1 OK") {
			return fmt.Errorf("STARTTLS refused: %s", quote(l))
		}
		return noPipelinedBytes(br)
	}
}

func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

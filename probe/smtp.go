package probe

import (
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
)

// smtpStartTLS greets the server (EHLO), checks it offers STARTTLS and asks
// for it; net/smtp reads the replies. On return the caller starts TLS on the
// raw connection.
func smtpStartTLS(conn net.Conn) error {
	c, err := smtp.NewClient(conn, "")
	if err != nil {
		return replyErr("greeting", err)
	}
	if err := c.Hello("certctl.invalid"); err != nil {
		return replyErr("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return errors.New("the server does not offer STARTTLS (postfix stops offering it when it cannot load its certificate or key)")
	}
	// Not c.StartTLS: it would start TLS over whatever plaintext the server
	// pipelined after its go-ahead, which must be refused instead.
	if err := c.Text.PrintfLine("STARTTLS"); err != nil {
		return err
	}
	if _, _, err := c.Text.ReadResponse(220); err != nil {
		return replyErr("STARTTLS", err)
	}
	return noPipelinedBytes(c.Text.R)
}

// replyErr names the step whose reply failed, with the server's reply
// quoted and cut short.
func replyErr(step string, err error) error {
	var te *textproto.Error
	var pe textproto.ProtocolError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("%s: %d %s", step, te.Code, quote(te.Msg))
	case errors.As(err, &pe):
		return fmt.Errorf("%s: not an SMTP reply: %s", step, quote(string(pe)))
	}
	return fmt.Errorf("%s: %w", step, err)
}

package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
)

// mailMessage is the RFC 5322 message: a plain text body, quoted-printable,
// every header value on one line (no header can be injected by a subject
// or a target ID).
func mailMessage(from string, to []string, delivery string, m Message, now time.Time) []byte {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, oneLine(v)) }
	h("From", from)
	h("To", strings.Join(to, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", m.Title))
	h("Date", now.UTC().Format(time.RFC1123Z))
	sum := sha256.Sum256([]byte(delivery))
	h("Message-ID", "<"+hex.EncodeToString(sum[:16])+"@certctl.notify>")
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h("X-Certctl-Delivery", delivery)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(m.Text, "\n", "\r\n")))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// sendEmail delivers one message over SMTP: STARTTLS when the server
// offers it (required: refused without it; off: never), AUTH PLAIN only
// over TLS. A 5xx answer is refused for good (NotifyRefused); a 4xx, a
// network error or a missing STARTTLS is retried.
func (ch *Channel) sendEmail(ctx context.Context, delivery string, m Message, now time.Time) (err error) {
	s := ch.SMTP
	fail := func(step string, err error) error {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("channel %s (email): %s: the server refused: %v; not retried: check from, to and the server's relay rules", ch.Name, step, err),
				contract.NotifyRefused, nil)
		}
		return fmt.Errorf("channel %s (email): %s: %v", ch.Name, step, err)
	}
	deadline := now.Add(ch.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return fail("connect to "+s.Address, err)
	}
	// Every read and write below ends by the deadline; a cancelled
	// activity closes the connection.
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	host, _, _ := net.SplitHostPort(s.Address)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fail("greeting", err)
	}
	defer c.Close()
	if err := c.Hello("certctl.localhost"); err != nil {
		return fail("EHLO", err)
	}
	if s.StartTLS != StartTLSOff {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			cfg, err := s.tlsConfig(host)
			if err != nil {
				return temporal.NewNonRetryableApplicationError(fmt.Sprintf("channel %s (email): smtp.ca_file: %v", ch.Name, err), contract.NotifyRefused, nil)
			}
			if err := c.StartTLS(cfg); err != nil {
				return fail("STARTTLS", err)
			}
		case s.StartTLS == StartTLSRequired:
			return fmt.Errorf("channel %s (email): %s does not offer STARTTLS and smtp.starttls is required: nothing sent (a server whose key does not match its certificate stops offering it)", ch.Name, s.Address)
		}
	}
	if s.Username != "" {
		pw, err := readSecret(s.PasswordFile)
		if err != nil {
			return fmt.Errorf("channel %s (email): smtp.password_file: %v", ch.Name, err)
		}
		if _, tlsOn := c.TLSConnectionState(); !tlsOn {
			return fmt.Errorf("channel %s (email): no TLS on the connection to %s: the password is not sent", ch.Name, s.Address)
		}
		if err := c.Auth(smtp.PlainAuth("", s.Username, string(pw), host)); err != nil {
			return fail("AUTH", err)
		}
	}
	if err := c.Mail(ch.From); err != nil {
		return fail("MAIL FROM", err)
	}
	for _, to := range ch.To {
		if err := c.Rcpt(to); err != nil {
			return fail("RCPT TO "+to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	if _, err := w.Write(mailMessage(ch.From, ch.To, delivery, m, now)); err != nil {
		return fail("DATA", err)
	}
	if err := w.Close(); err != nil {
		return fail("end of DATA", err)
	}
	_ = c.Quit()
	return nil
}

func (s *SMTP) tlsConfig(host string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if s.ServerName != "" {
		cfg.ServerName = s.ServerName
	}
	if s.CAFile != "" {
		b, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s holds no PEM certificate", s.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

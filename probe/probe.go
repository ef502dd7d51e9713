// Package probe reads the certificates an endpoint serves: a TLS handshake,
// after the plaintext prelude of its protocol (SMTP or IMAP STARTTLS) when it
// has one. The chain is not verified against any root: the caller compares
// what was served, certificate by certificate, with what it deployed.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Host is the name a verify endpoint is checked as: its server_name, else
// the host part of its endpoint. Plan and Verify send it as SNI (crypto/tls
// sends none for an IP address); Preflight checks the leaf covers it.
func Host(v target.Verify) string {
	if v.ServerName != "" {
		return v.ServerName
	}
	return material.HostOf(v.Endpoint)
}

// Leaf is the SHA-256 of the leaf Chain reads.
func Leaf(ctx context.Context, endpoint, host, protocol string, timeout time.Duration) (string, error) {
	certs, err := Chain(ctx, endpoint, host, protocol, timeout)
	if err != nil {
		return "", err
	}
	return material.Fingerprint(certs[0].Raw), nil
}

// Chain connects to endpoint, speaks protocol's plaintext prelude (nothing
// for "tls" or "", EHLO and STARTTLS for "smtp-starttls", STARTTLS for
// "imap-starttls"), does a TLS handshake sending host as SNI, and returns the
// certificates the server sent, in the order it sent them (the leaf first;
// never empty). timeout and ctx bound the whole exchange.
func Chain(ctx context.Context, endpoint, host, protocol string, timeout time.Duration) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	// The plaintext exchange reads and writes the connection directly: its
	// deadline, and closing it when the context ends, keep it in bounds.
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	switch protocol {
	case "", target.ProtocolTLS:
	case target.ProtocolSMTPStartTLS:
		err = smtpStartTLS(&boundedConn{Conn: raw})
	case target.ProtocolIMAPStartTLS:
		err = imapStartTLS(&boundedConn{Conn: raw})
	default:
		err = fmt.Errorf("unknown protocol %q", protocol)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", protocol, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", protocol, err)
	}
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: host, CurvePreferences: probeCurves}) //nolint:gosec // the caller compares the fingerprint
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate served")
	}
	return certs, nil
}

// probeCurves are the key exchanges a probe offers: the classical ones,
// without Go's default hybrid X25519MLKEM768. A probe reads what a server
// sends in its handshake (the certificates) and carries no secret, so a
// post-quantum key exchange protects nothing here, while its ML-KEM key
// share costs both sides: a loopback handshake pair (client and server in
// one process) took 0.79-0.87 ms against 0.98-1.33 ms with the default, and
// a verify makes ~8 handshakes a deploy (docs/performance.md). A server
// that takes only P-256 or P-384 answers with a HelloRetryRequest and is
// probed all the same (TestProbeKeyExchange).
var probeCurves = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

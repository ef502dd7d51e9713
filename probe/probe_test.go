package probe

// Tests of the probe against Go stand-ins: TLS, and SMTP and IMAP STARTTLS
// servers that refuse in each way a real one can (postfix 3.7 answers
// STARTTLS with 454 when it cannot load its key). The real servers are in
// testsuite's conformance suite.

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

var ctx = context.Background()

func newSet(t *testing.T) testsuite.Set {
	t.Helper()
	ca, err := testsuite.NewCA("probe test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The verify host is server_name, else the endpoint's host (an IP address
// included: Preflight checks the leaf covers it; crypto/tls sends no SNI
// for it).
func TestHost(t *testing.T) {
	for _, tc := range []struct {
		v    target.Verify
		want string
	}{
		{target.Verify{Endpoint: "mail.example.com:25"}, "mail.example.com"},
		{target.Verify{Endpoint: "mail.example.com:25", ServerName: "mx.example.com"}, "mx.example.com"},
		{target.Verify{Endpoint: "127.0.0.1:443"}, "127.0.0.1"},
		{target.Verify{Endpoint: "[::1]:443"}, "::1"},
	} {
		if got := Host(tc.v); got != tc.want {
			t.Errorf("Host(%+v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestProbeProtocols(t *testing.T) {
	s := newSet(t)
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, proto := range []string{target.ProtocolTLS, target.ProtocolSMTPStartTLS, target.ProtocolIMAPStartTLS} {
		addr, err := testsuite.FakeServer(c, s, proto)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Leaf(ctx, addr, "", proto, 3*time.Second)
		if err != nil || got != s.LeafSHA256 {
			t.Errorf("%s: served %q, %v; want %s", proto, got, err, s.LeafSHA256)
		}
		// Speaking the wrong protocol fails; it never passes.
		for _, other := range []string{target.ProtocolTLS, target.ProtocolSMTPStartTLS, target.ProtocolIMAPStartTLS} {
			if other == proto {
				continue
			}
			if got, err := Leaf(ctx, addr, "", other, time.Second); err == nil {
				t.Errorf("%s probe of a %s server succeeded (%s)", other, proto, got)
			}
		}
	}
}

// The fingerprint the probe returns is the leaf's, whatever the chain.
func TestProbeFingerprintIsLeaf(t *testing.T) {
	s := newSet(t)
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	addr, err := testsuite.FakeServer(c, s, target.ProtocolTLS)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Leaf(ctx, addr, "", target.ProtocolTLS, 3*time.Second)
	if err != nil || got != b.LeafSHA256() {
		t.Fatalf("probe %q %v", got, err)
	}
}

// The probe honours its context: a server that accepts and never answers
// does not hold the probe past its deadline.
func TestProbeHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Leaf(c, ln.Addr().String(), "", target.ProtocolTLS, 30*time.Second)
	if err == nil {
		t.Fatal("probe of a silent server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("probe took %v past a 200ms context", d)
	}
}

// plainServer answers each connection with fn, over plain TCP.
func plainServer(t *testing.T, fn func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				fn(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// readLines reads n lines from c.
func readLines(c net.Conn, n int) {
	buf := make([]byte, 1)
	for n > 0 {
		if _, err := c.Read(buf); err != nil {
			return
		}
		if buf[0] == '\n' {
			n--
		}
	}
}

func TestProbeSMTPRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		serve      func(c net.Conn)
	}{
		{"no STARTTLS offered", "does not offer STARTTLS", func(c net.Conn) {
			// What postfix does when it cannot load its key.
			io.WriteString(c, "220 mx.test ESMTP\r\n")
			readLines(c, 1)
			io.WriteString(c, "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			readLines(c, 1)
		}},
		{"busy greeting", "greeting: 421", func(c net.Conn) { io.WriteString(c, "421 4.3.2 busy\r\n") }},
		{"STARTTLS refused", "STARTTLS: 454", func(c net.Conn) {
			io.WriteString(c, "220 mx.test ESMTP\r\n")
			readLines(c, 1)
			io.WriteString(c, "250-mx.test\r\n250 STARTTLS\r\n")
			readLines(c, 1)
			io.WriteString(c, "454 4.7.0 TLS not available due to local problem\r\n")
		}},
		{"plaintext after the go-ahead", "plaintext after", func(c net.Conn) {
			io.WriteString(c, "220 mx.test ESMTP\r\n")
			readLines(c, 1)
			io.WriteString(c, "250-mx.test\r\n250 STARTTLS\r\n")
			readLines(c, 1)
			io.WriteString(c, "220 go ahead\r\n250 injected\r\n")
		}},
		{"not SMTP", "not an SMTP reply", func(c net.Conn) { io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n") }},
		{"endless reply", "longer than", func(c net.Conn) {
			for i := 0; i < 100; i++ {
				io.WriteString(c, "220-still talking\r\n")
			}
		}},
		{"endless line", "longer than", func(c net.Conn) { io.WriteString(c, "220 "+strings.Repeat("x", 5000)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := plainServer(t, tc.serve)
			_, err := Leaf(ctx, addr, "", target.ProtocolSMTPStartTLS, 3*time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestProbeIMAPRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		serve      func(c net.Conn)
	}{
		{"STARTTLS refused", "STARTTLS refused", func(c net.Conn) {
			io.WriteString(c, "* OK IMAP ready\r\n")
			readLines(c, 1)
			io.WriteString(c, "c1 BAD unknown command\r\n")
		}},
		{"bye", "greeting", func(c net.Conn) { io.WriteString(c, "* BYE too many connections\r\n") }},
		{"plaintext after the go-ahead", "plaintext after", func(c net.Conn) {
			io.WriteString(c, "* OK IMAP ready\r\n")
			readLines(c, 1)
			io.WriteString(c, "* CAPABILITY IMAP4rev1\r\nc1 OK begin TLS\r\n* injected\r\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := plainServer(t, tc.serve)
			_, err := Leaf(ctx, addr, "", target.ProtocolIMAPStartTLS, 3*time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// A server that greets and then says nothing does not hold a STARTTLS probe
// past its context.
func TestProbeStartTLSHonoursContext(t *testing.T) {
	addr := plainServer(t, func(c net.Conn) {
		io.WriteString(c, "220 mx.test ESMTP\r\n")
		time.Sleep(5 * time.Second)
	})
	c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Leaf(c, addr, "", target.ProtocolSMTPStartTLS, 30*time.Second); err == nil {
		t.Fatal("probe of a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("probe took %v past a 200ms context", d)
	}
}

// A probe's handshake uses a classical key exchange (probeCurves: no ML-KEM
// key share to make on either side), and a server that takes only P-256
// still serves it (after a HelloRetryRequest).
func TestProbeKeyExchange(t *testing.T) {
	s := newSet(t)
	cert, err := tls.X509KeyPair([]byte(s.CertPEM+s.ChainPEM), []byte(s.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		server []tls.CurveID // nil: Go's defaults, the hybrid first
		want   tls.CurveID
	}{
		{nil, tls.X25519},
		{[]tls.CurveID{tls.CurveP256}, tls.CurveP256},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan tls.CurveID, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- 0
				return
			}
			defer c.Close()
			sc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, CurvePreferences: tc.server})
			if sc.Handshake() != nil {
				got <- 0
				return
			}
			got <- sc.ConnectionState().CurveID
		}()
		leaf, err := Leaf(ctx, ln.Addr().String(), "", target.ProtocolTLS, 3*time.Second)
		ln.Close()
		if err != nil || leaf != s.LeafSHA256 {
			t.Errorf("server curves %v: served %q, %v; want %s", tc.server, leaf, err, s.LeafSHA256)
		}
		if c := <-got; c != tc.want {
			t.Errorf("server curves %v: the handshake used %v, want %v", tc.server, c, tc.want)
		}
	}
}

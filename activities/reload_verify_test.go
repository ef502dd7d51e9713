package activities

// Tests of the reload signal and the verify protocols (STARTTLS for SMTP and
// IMAP) against Go stand-ins; the real servers are in testsuite's
// conformance suite.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/connectors"
	_ "github.com/certctl/certctl/connectors/postfix"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

func TestProbeProtocols(t *testing.T) {
	s := issue(t, newCA(t))
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, proto := range []string{target.ProtocolTLS, target.ProtocolSMTPStartTLS, target.ProtocolIMAPStartTLS} {
		addr, err := testsuite.FakeServer(c, s, proto)
		if err != nil {
			t.Fatal(err)
		}
		got, err := probeProtocol(ctx, addr, "", proto, 3*time.Second)
		if err != nil || got != s.LeafSHA256 {
			t.Errorf("%s: served %q, %v; want %s", proto, got, err, s.LeafSHA256)
		}
		// Speaking the wrong protocol fails; it never passes.
		for _, other := range []string{target.ProtocolTLS, target.ProtocolSMTPStartTLS, target.ProtocolIMAPStartTLS} {
			if other == proto {
				continue
			}
			if got, err := probeProtocol(ctx, addr, "", other, time.Second); err == nil {
				t.Errorf("%s probe of a %s server succeeded (%s)", other, proto, got)
			}
		}
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
			_, err := probeProtocol(ctx, addr, "", target.ProtocolSMTPStartTLS, 3*time.Second)
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
			_, err := probeProtocol(ctx, addr, "", target.ProtocolIMAPStartTLS, 3*time.Second)
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
	if _, err := probeProtocol(c, addr, "", target.ProtocolSMTPStartTLS, 30*time.Second); err == nil {
		t.Fatal("probe of a silent server succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("probe took %v past a 200ms context", d)
	}
}

// Verify and Plan speak the target's protocol, or its connector's default
// (postfix: SMTP STARTTLS).
func TestVerifyUsesTargetProtocol(t *testing.T) {
	s := issue(t, newCA(t))
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	addr, err := testsuite.FakeServer(c, s, target.ProtocolSMTPStartTLS)
	if err != nil {
		t.Fatal(err)
	}
	tg := withVerify(newTarget(t.TempDir()), addr)
	tg.TargetType = "postfix"
	tg.Config.ChainPath = ""
	res, err := (&Activities{}).Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	if err != nil || res.Served != s.LeafSHA256 {
		t.Fatalf("postfix default protocol: %+v %v", res, err)
	}
	tg.Config.PostDeployVerify.Protocol = target.ProtocolTLS
	_, err = (&Activities{}).Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	appErr(t, err, "VerifyUnreachable")

	tg.Config.PostDeployVerify.Protocol = ""
	p := mustPlan(t, planInput(tg, s, newStamp()))
	if p.ServedSHA256 != s.LeafSHA256 {
		t.Errorf("plan read served %q over SMTP STARTTLS, want %s", p.ServedSHA256, s.LeafSHA256)
	}
}

// sleeper connects the reload signal to a process the test owns.
type sleeper struct{ connectors.Connector }

func (sleeper) Defaults() connectors.Defaults {
	return connectors.Defaults{Processes: []string{"sleep"}}
}

func init() {
	nginx, _ := connectors.Get("nginx")
	connectors.Register("signal-test", sleeper{nginx})
}

func startSleep(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	if err := os.WriteFile(pidFile, []byte(fmt.Sprintf("%d\n", cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cmd, pidFile
}

func TestReloadSignal(t *testing.T) {
	cmd, pidFile := startSleep(t)
	tg := newTarget(t.TempDir())
	tg.TargetType = "signal-test"
	tg.Config.ReloadCommand = nil
	tg.Config.ReloadSignal, tg.Config.PIDFile = "USR1", pidFile
	res, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	if err != nil {
		t.Fatalf("reload by signal: %v", err)
	}
	if !strings.Contains(res.Command, "kill -USR1") || !strings.Contains(res.Output, fmt.Sprint(cmd.Process.Pid)) {
		t.Errorf("result does not say what was signalled: %+v", res)
	}
	// sleep's default action for USR1 is to end: proof the signal arrived.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, state, err := procInfo(cmd.Process.Pid); err != nil || state == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the process did not receive the signal")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloadSignalRefusesOtherProcesses(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "self.pid")
	_ = os.WriteFile(self, []byte(fmt.Sprint(os.Getpid())), 0o644)
	junk := filepath.Join(dir, "junk.pid")
	_ = os.WriteFile(junk, []byte("not a pid"), 0o644)
	init1 := filepath.Join(dir, "init.pid")
	_ = os.WriteFile(init1, []byte("1"), 0o644)
	// A pid that is (almost certainly) free: a process that already ended.
	gone := exec.Command("true")
	_ = gone.Run()
	ended := filepath.Join(dir, "ended.pid")
	_ = os.WriteFile(ended, []byte(fmt.Sprint(gone.Process.Pid)), 0o644)
	for _, tc := range []struct{ pidFile, want string }{
		{self, "not signalled"}, // this test binary is not "sleep"
		{junk, "does not hold a process id"},
		{init1, "does not hold a process id"},
		{ended, "no such process"},
		{filepath.Join(dir, "missing.pid"), "no such file"},
	} {
		tg := newTarget(dir)
		tg.TargetType = "signal-test"
		tg.Config.ReloadCommand = nil
		tg.Config.ReloadSignal, tg.Config.PIDFile = "USR2", tc.pidFile
		_, err := (&Activities{}).Reload(ctx, Request{Target: tg})
		appErr(t, err, contract.ReloadFailed)
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.pidFile, err, tc.want)
		}
	}
	// A connector that names no process never signals.
	tg := newTarget(dir)
	tg.TargetType = "postfix"
	tg.Config.ChainPath = ""
	tg.Config.ReloadCommand = nil
	tg.Config.ReloadSignal, tg.Config.PIDFile = "HUP", self
	c, _ := connectors.Get("postfix")
	if r := connectors.ReloadFor(c, tg.Config); r.Signal != "HUP" || len(r.Processes) == 0 {
		t.Fatalf("postfix reload by signal: %+v", r)
	}
	_, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	appErr(t, err, contract.ReloadFailed) // pid is this test, not postfix's master
}

// The fingerprint the probe returns is the leaf's, whatever the chain.
func TestProbeFingerprintIsLeaf(t *testing.T) {
	s := issue(t, newCA(t))
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, s)
	got, err := probe(ctx, addr, "", 3*time.Second)
	if err != nil || got != b.LeafSHA256() {
		t.Fatalf("probe %q %v", got, err)
	}
}

// A reload by signal whose pid file names no server process fails Validate,
// before anything live changes.
func TestValidateChecksReloadPIDFile(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	_, pidFile := startSleep(t)
	tg := newTarget(dir)
	tg.TargetType = "signal-test"
	tg.Config.ReloadCommand = nil
	tg.Config.ReloadSignal, tg.Config.PIDFile = "USR2", pidFile
	in := planInput(tg, s, newStamp())
	p := mustPlan(t, in)
	a := &Activities{}
	staged, err := a.Stage(ctx, StageInput{PlanInput: in, Plan: p})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(ctx, ValidateInput{Request: in.Request, Plan: p, Staged: staged}); err != nil {
		t.Fatalf("a pid file naming the server: %v", err)
	}
	self := filepath.Join(dir, "self.pid")
	_ = os.WriteFile(self, []byte(fmt.Sprint(os.Getpid())), 0o644)
	in.Target.Config.PIDFile = self
	_, err = a.Validate(ctx, ValidateInput{Request: in.Request, Plan: p, Staged: staged})
	appErr(t, err, contract.ValidateFailed)
	if !strings.Contains(err.Error(), "not signalled") {
		t.Errorf("error %v does not say why", err)
	}
}

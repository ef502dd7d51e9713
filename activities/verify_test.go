package activities

import (
	"context"
	"net"
	"testing"

	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

func TestVerify(t *testing.T) {
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	dir := t.TempDir()
	a := &Activities{}

	tg := withVerify(newTarget(dir), serveTLS(t, s))
	res, err := a.Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	if err != nil {
		t.Fatalf("Verify of the served leaf: %v", err)
	}
	if res.Served != s.LeafSHA256 || res.Endpoint != tg.Config.PostDeployVerify.Endpoint {
		t.Errorf("verify result %+v", res)
	}

	tg = withVerify(newTarget(dir), serveTLS(t, old))
	_, err = a.Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	ae := appErr(t, err, "VerifyMismatch")
	if ae.NonRetryable() {
		t.Errorf("a mismatch must be retryable: the server may not have picked the new cert up yet")
	}
	var details VerifyResult
	if err := ae.Details(&details); err != nil || details.Served != old.LeafSHA256 {
		t.Errorf("mismatch details %+v (%v), want served %s", details, err, old.LeafSHA256)
	}

	// Nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tg = withVerify(newTarget(dir), addr)
	_, err = a.Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	appErr(t, err, "VerifyUnreachable")
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

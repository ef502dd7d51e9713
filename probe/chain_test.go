package probe

import (
	"context"
	"testing"
	"time"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// Chain returns every certificate the server sent, in its order, after
// each protocol's prelude; what a server sends without its chain is the
// leaf alone.
func TestChainAsSent(t *testing.T) {
	s := newSet(t)
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	leafOnly := s
	leafOnly.ChainPEM = ""
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, proto := range []string{target.ProtocolTLS, target.ProtocolSMTPStartTLS, target.ProtocolIMAPStartTLS} {
		for _, tc := range []struct {
			set  testsuite.Set
			want []material.CertRef
		}{{s, b.ServedChain()}, {leafOnly, b.ServedChain()[:1]}} {
			addr, err := testsuite.FakeServer(c, tc.set, proto)
			if err != nil {
				t.Fatal(err)
			}
			certs, err := Chain(ctx, addr, "", proto, 3*time.Second)
			if err != nil {
				t.Fatalf("%s: %v", proto, err)
			}
			got := material.Refs(certs...)
			if len(got) != len(tc.want) {
				t.Fatalf("%s: sent %v, want %v", proto, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("%s: certificate %d is %v, want %v", proto, i, got[i], tc.want[i])
				}
			}
		}
	}
}

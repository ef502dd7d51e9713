package activities

import (
	"strings"
	"testing"

	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/testsuite"
)

// Verify checks every certificate the server sends, not only the leaf: the
// right leaf without its intermediate, or with the intermediate twice, is a
// mismatch naming what was served and what was expected.
func TestVerifyChecksTheServedChain(t *testing.T) {
	ca := newCA(t)
	s := issue(t, ca)
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	want := b.ServedChain()
	if len(want) != 2 {
		t.Fatalf("want leaf and intermediate, got %v", want)
	}
	leafName, interName := want[0].Name, want[1].Name
	a := &Activities{}
	in := func(addr string) VerifyInput {
		return VerifyInput{Request: Request{Target: withVerify(newTarget(t.TempDir()), addr)}, Expected: s.LeafSHA256, ExpectedChain: want}
	}

	res, err := a.Verify(ctx, in(serveTLS(t, s)))
	if err != nil {
		t.Fatalf("Verify of leaf then intermediate: %v", err)
	}
	if len(res.ServedChain) != 2 || res.ServedChain[1] != want[1] {
		t.Errorf("served chain %v, want %v", res.ServedChain, want)
	}

	leafOnly := s
	leafOnly.ChainPEM = ""
	twice := s
	twice.ChainPEM = s.ChainPEM + s.ChainPEM
	for _, tc := range []struct {
		name string
		srv  testsuite.Set
		msg  []string
	}{
		{"leaf alone", leafOnly, []string{
			"serves the chain " + leafName + " (sha256:" + s.LeafSHA256[:12] + "); want " + leafName + " (sha256:" + s.LeafSHA256[:12] + "), then " + interName,
			"unable to verify the first certificate",
		}},
		{"intermediate twice", twice, []string{"then " + interName + " (sha256:" + want[1].SHA256[:12] + "), then " + interName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Verify(ctx, in(serveTLS(t, tc.srv)))
			ae := appErr(t, err, "VerifyMismatch")
			for _, m := range tc.msg {
				if !strings.Contains(ae.Error(), m) {
					t.Errorf("error %q\nwant it to say %q", ae.Error(), m)
				}
			}
			var details VerifyResult
			if err := ae.Details(&details); err != nil || details.Served != s.LeafSHA256 || len(details.ServedChain) == 0 {
				t.Errorf("details %+v (%v)", details, err)
			}
		})
	}

	// Without ExpectedChain (a rollback's verify, an old history), the leaf
	// alone is checked.
	old := in(serveTLS(t, leafOnly))
	old.ExpectedChain = nil
	if _, err := a.Verify(ctx, old); err != nil {
		t.Errorf("leaf-only verify: %v", err)
	}
}

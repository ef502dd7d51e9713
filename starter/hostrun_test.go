package main

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
)

// A namespace without certctl's search attributes refuses the start; the
// error says how to register them. Other errors get no hint.
func TestSearchAttributeHint(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{serviceerror.NewInvalidArgument("Namespace default has no mapping defined for search attribute CertctlTarget"), "lacks certctl's search attributes (CertctlTarget, CertctlOutcome, ApprovalState, ApprovalProfile, ApprovalDecidedBy): register them once with `certctl setup`"},
		{serviceerror.NewInvalidArgument("WorkflowId is not set"), ""},
		{errors.New("connection refused: CertctlTarget"), ""},
	} {
		got := searchAttributeHint(c.err)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%v: hint %q, want one containing %q", c.err, got, c.want)
		}
	}
}

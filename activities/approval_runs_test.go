package activities

import (
	"context"
	"strings"
	"testing"
)

func TestQuoteVisibility(t *testing.T) {
	for in, want := range map[string]string{
		"approval/r-1":          `"approval/r-1"`,
		`approval/r" OR "x"="x`: `"approval/r\" OR \"x\"=\"x"`,
		`a\"b`:                  `"a\\\"b"`,
	} {
		if got := quoteVisibility(in); got != want {
			t.Errorf("quoteVisibility(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestEarlierRunsNeedsAClient(t *testing.T) {
	var a *Activities
	if _, err := a.EarlierRuns(context.Background(), EarlierRunsInput{WorkflowID: "approval/r-1"}); err == nil || !strings.Contains(err.Error(), "client") {
		t.Fatalf("EarlierRuns without a client: %v", err)
	}
}

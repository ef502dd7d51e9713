package main

import "testing"

// One-shot commands raise the GC target; the servers and an operator's
// GOGC keep theirs.
func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		name, gogc string
		want       int
	}{
		{"deploy", "", oneShotGCPercent},
		{"rollout", "", oneShotGCPercent},
		{"status", "", oneShotGCPercent},
		{"dev", "", 100},
		{"codec-server", "", 100},
		{"deploy", "50", 100},
	} {
		if got := gcPercentFor(tc.name, tc.gogc); got != tc.want {
			t.Errorf("gcPercentFor(%q, GOGC=%q) = %d, want %d", tc.name, tc.gogc, got, tc.want)
		}
	}
	// Every long-running name is a command of the CLI (a rename would
	// silently give it the one-shot target).
	root := newRoot()
	for name := range longRunning {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("%q: no such certctl command (%v)", name, err)
		}
	}
}

package main

import (
	"strings"
	"testing"
	"time"
)

// --stall-after below the least a live worker could take to complete a
// workflow task is refused before anything is read, naming the flag.
func TestRolloutStallAfterBounded(t *testing.T) {
	f := rolloutFlags{output: "text", batch: 1, canary: 1, stallAfter: 5 * time.Second}
	_, err := f.request("r-1")
	if err == nil || !strings.HasPrefix(err.Error(), "--stall-after: is 5s: want at least 30s") {
		t.Fatalf("err %v", err)
	}
}

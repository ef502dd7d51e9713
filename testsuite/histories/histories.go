// Package histories reads the workflow histories recorded from the real dev
// server (`make record-histories`) that the replay tests replay.
package histories

import (
	"os"
	"path/filepath"
	"testing"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// File is one recorded history.
type File struct {
	Path    string
	History *historypb.History
}

// Load reads every history matching pattern (a filepath.Glob pattern),
// failing t on a file it cannot read.
func Load(t testing.TB, pattern string) []File {
	t.Helper()
	paths, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var out []File
	for _, p := range paths {
		out = append(out, File{Path: p, History: load(t, p)})
	}
	return out
}

func load(t testing.TB, path string) *historypb.History {
	t.Helper()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h, err := client.HistoryFromJSON(r, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return h
}

package activities

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSweepTempsRemovesOnlyStaleLeftovers(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	if err := recordStagedDirs(state, []string{dir, dir}); err != nil {
		t.Fatal(err)
	}
	if dirs, _ := StagedDirs(state); len(dirs) != 1 {
		t.Fatalf("dirs recorded %v", dirs)
	}
	stale := TempPath(filepath.Join(dir, "key.pem"), 100)
	running := TempPath(filepath.Join(dir, "key.pem"), 300)
	other := filepath.Join(dir, "key.pem.certctl-tmp.notastamp")
	for _, p := range []string{stale, running, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := SweepTemps(state, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale {
		t.Fatalf("removed %v, want only %s", removed, stale)
	}
	for _, p := range []string{running, other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s should stay: %v", p, err)
		}
	}
}

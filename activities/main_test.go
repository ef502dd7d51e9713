package activities

import (
	"os"
	"testing"
)

// TestMain keeps Stage's record of staged directories out of the machine's
// real state dir.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certctl-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv(EnvStateDir, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

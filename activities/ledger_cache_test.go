package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The ledger's line cache never answers with what the file no longer says:
// a record changed in place (same length, same inode), one removed, a torn
// line, all read as the file holds them now.
func TestLedgerLineCacheFollowsTheFile(t *testing.T) {
	dir := t.TempDir()
	recs := []backupRecord{
		{Path: []byte("/srv/a.pem"), Backup: []byte("/srv/a.pem.certctl-bak.1"), Stamp: 1},
		{Path: []byte("/srv/b.pem"), Backup: []byte("/srv/b.pem.certctl-bak.1"), Stamp: 1},
	}
	if err := appendRecords(dir, backupsFile, recs); err != nil {
		t.Fatal(err)
	}
	ledgerMu.Lock()
	defer ledgerMu.Unlock()
	got, err := readLedger(dir)
	if err != nil || len(got) != 2 || got[1].Stamp != 1 {
		t.Fatalf("first read: %+v %v", got, err)
	}
	// Stamp 1 → 2 in place: the same length, the same file.
	p := filepath.Join(dir, backupsFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"stamp":1`, `"stamp":2`, 1)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Join(lines, "")), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err = readLedger(dir)
	if err != nil || len(got) != 2 || got[0].Stamp != 1 || got[1].Stamp != 2 {
		t.Fatalf("after the change in place: %+v %v; want stamps 1, 2", got, err)
	}
	// The first record gone, a torn line after the second.
	if err := os.WriteFile(p, []byte(lines[1]+`{"path":"L3Nyd`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = readLedger(dir)
	if err != nil || len(got) != 1 || string(got[0].Path) != "/srv/b.pem" || got[0].Stamp != 2 {
		t.Fatalf("after the rewrite: %+v %v; want only b.pem, stamp 2", got, err)
	}
}

package activities

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
)

func TestRollbackRestoresExistingFiles(t *testing.T) {
	x := newFixture(t)
	if err := os.Chmod(x.tg.Config.CertPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(x.tg.Config.ChainPath, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{}
	for _, r := range roles {
		modes[r] = mode(t, pathOf(x.tg, r))
	}
	x.tg.Config.KeyFileMode = modep(0o440) // the deploy changes the key's mode
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	assertFilesHold(t, x.tg, x.s)
	res, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	noKey(t, err)
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if len(res.Restored) != 3 || len(res.Removed) != 0 {
		t.Errorf("rollback %+v, want 3 restored", res)
	}
	assertFilesHold(t, x.tg, x.old)
	for _, r := range roles {
		if m := mode(t, pathOf(x.tg, r)); m != modes[r] {
			t.Errorf("%s restored with mode %v, want %v", r, m, modes[r])
		}
	}
	if uid, gid := owner(t, x.tg.Config.ChainPath); uid != 65534 || gid != 65534 {
		t.Errorf("chain restored owned by %d:%d, want 65534:65534", uid, gid)
	}
	for _, sf := range pl.staged.Files {
		if exists(sf.Temp) {
			t.Errorf("temp %s left by rollback", sf.Temp)
		}
	}
}

func TestRollbackRemovesNewFile(t *testing.T) {
	x := newFixture(t)
	if err := os.Remove(x.tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	if !exists(x.tg.Config.ChainPath) {
		t.Fatal("commit did not write the chain")
	}
	res, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if !reflect.DeepEqual(res.Removed, []string{x.tg.Config.ChainPath}) || len(res.Restored) != 2 {
		t.Errorf("rollback %+v, want the chain removed and 2 restored", res)
	}
	if exists(x.tg.Config.ChainPath) {
		t.Errorf("the new chain was not removed")
	}
	if !bytes.Equal(read(t, x.tg.Config.CertPath), setBytes(x.old)["cert"]) || !bytes.Equal(read(t, x.tg.Config.KeyPath), []byte(x.old.KeyPEM)) {
		t.Errorf("cert and key not restored")
	}
}

func TestRollbackWithoutBackupLeavesFileAndFails(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	in := pl.rollbackInput()
	// The key's backup is not known to the rollback.
	in.Backups.Files = in.Backups.Files[:2]
	res, err := (&Activities{}).Rollback(ctx, in)
	ae := appErr(t, err, contract.RollbackFailed)
	if !strings.Contains(err.Error(), x.tg.Config.KeyPath) {
		t.Errorf("error does not name %s: %v", x.tg.Config.KeyPath, err)
	}
	if !strings.Contains(err.Error(), pl.backup.Files[0].Backup) {
		t.Errorf("error does not name the backups: %v", err)
	}
	if !exists(x.tg.Config.KeyPath) || !bytes.Equal(read(t, x.tg.Config.KeyPath), []byte(x.s.KeyPEM)) {
		t.Errorf("the key without a backup was not left in place")
	}
	if !bytes.Equal(read(t, x.tg.Config.CertPath), setBytes(x.old)["cert"]) || !bytes.Equal(read(t, x.tg.Config.ChainPath), []byte(x.old.ChainPEM)) {
		t.Errorf("the files with backups were not restored")
	}
	if len(res.Restored) != 2 {
		t.Errorf("restored %v, want cert and chain", res.Restored)
	}
	var details RollbackResult
	if err := ae.Details(&details); err != nil || !reflect.DeepEqual(details, res) {
		t.Errorf("error details %+v (%v), want %+v", details, err, res)
	}

	// A backup that is named but gone is an error too, never a deletion.
	in = pl.rollbackInput()
	if err := os.Remove(pl.backup.Files[2].Backup); err != nil {
		t.Fatal(err)
	}
	_, err = (&Activities{}).Rollback(ctx, in)
	appErr(t, err, contract.RollbackFailed)
	if !exists(x.tg.Config.KeyPath) {
		t.Errorf("the key was deleted")
	}
}

func TestRollbackTwiceIsHarmless(t *testing.T) {
	x := newFixture(t)
	if err := os.Remove(x.tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	a := &Activities{}
	first, err := a.Rollback(ctx, pl.rollbackInput())
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, x.tg.Config.CertPath, x.tg.Config.KeyPath)
	listing := listDir(t, x.dir)
	time.Sleep(20 * time.Millisecond)
	second, err := a.Rollback(ctx, pl.rollbackInput())
	if err != nil {
		t.Fatalf("second Rollback: %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second rollback %+v, first %+v", second, first)
	}
	assertUnchanged(t, before)
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("second rollback changed the directory: %v -> %v", listing, got)
	}
}

// A restore must put back what was there: a backup that no longer holds the
// original bytes is not restored over the live file.
func TestRollbackCorruptBackupIsNotRestored(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	if err := os.Truncate(pl.backup.Files[2].Backup, 20); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	appErr(t, err, contract.RollbackFailed)
	if !strings.Contains(err.Error(), x.tg.Config.KeyPath) {
		t.Errorf("error does not name %s: %v", x.tg.Config.KeyPath, err)
	}
	if got := read(t, x.tg.Config.KeyPath); !bytes.Equal(got, []byte(x.s.KeyPEM)) {
		t.Errorf("a torn backup (%d bytes) was restored over the key", len(got))
	}
	if !bytes.Equal(read(t, x.tg.Config.CertPath), setBytes(x.old)["cert"]) {
		t.Errorf("the cert with a good backup was not restored")
	}
	if exists(TempPath(x.tg.Config.KeyPath, pl.in.Stamp)) {
		t.Errorf("restore temp left behind")
	}
}

package activities

import (
	"os"
	"reflect"
	"testing"

	"github.com/certctl/certctl/testsuite"
)

func TestCleanupSuccessKeepsNewestBackups(t *testing.T) {
	x := newFixture(t, empty())
	old := issue(t, x.ca)
	if _, _, _, err := old.Write(x.dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(x.dir)
	tg.Config.BackupRetention = func(n int) *int { return &n }(2)
	// Files named like backups that this worker did not make (planted, or
	// copied by hand) are neither counted nor removed, whatever their stamp.
	planted := []int64{9, 10, 300, 4000, 9000000000000000001}
	for _, st := range planted {
		if err := os.WriteFile(BackupPath(tg.Config.CertPath, st), []byte("not ours"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	foreign := tg.Config.CertPath + BackupMarker + "manual"
	if err := os.WriteFile(foreign, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Four deploys, each backing up the one before; stamps order
	// numerically, not as text.
	var pls []pipeline
	var res CleanupResult
	var s testsuite.Set
	for i := 0; i < 4; i++ {
		s = issue(t, x.ca)
		pl := prepare(t, tg, s, false)
		mustCommit(t, pl)
		var err error
		if res, err = (&Activities{}).Cleanup(ctx, pl.cleanupInput(true)); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		pls = append(pls, pl)
	}
	for i, pl := range pls {
		for _, b := range pl.backup.Files {
			if kept := i >= 2; exists(b.Backup) != kept {
				t.Errorf("deploy %d's backup %s: exists %v, want %v", i, b.Backup, !kept, kept)
			}
		}
	}
	want := []string{pls[3].backup.Files[0].Backup, pls[2].backup.Files[0].Backup}
	if got := res.Backups[:2]; !reflect.DeepEqual(got, want) {
		t.Errorf("cert backups reported %v, want %v", got, want)
	}
	if len(res.Backups) != 6 {
		t.Errorf("Cleanup reports %d backups (%v), want 2 for each of 3 files", len(res.Backups), res.Backups)
	}
	for _, st := range planted {
		if b, err := os.ReadFile(BackupPath(tg.Config.CertPath, st)); err != nil || string(b) != "not ours" {
			t.Errorf("planted %d was touched: %v", st, err)
		}
	}
	if !exists(foreign) {
		t.Errorf("a file that is not one of our backups was removed")
	}
	again, err := (&Activities{}).Cleanup(ctx, pls[3].cleanupInput(true))
	if err != nil || !reflect.DeepEqual(again, res) {
		t.Errorf("a retried Cleanup reports %+v (err %v), the first %+v", again, err, res)
	}
	assertFilesHold(t, tg, s)
}

func TestCleanupFailureRemovesThisDeploysFiles(t *testing.T) {
	x := newFixture(t)
	earlier := BackupPath(x.tg.Config.KeyPath, 12345)
	if err := os.WriteFile(earlier, []byte("an earlier deploy's backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	listing := listDir(t, x.dir)
	pl := prepare(t, x.tg, x.s, false)
	res, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false))
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	// The earlier backup was not made by this worker (no ledger entry): it
	// is kept, and not reported as one of the target's backups.
	if len(res.Backups) != 0 {
		t.Errorf("backups reported %v, want none", res.Backups)
	}
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("after a failed deploy's cleanup the directory is %v, want %v", got, listing)
	}
	assertFilesHold(t, x.tg, x.old)
	if !exists(earlier) {
		t.Errorf("an earlier deploy's backup was removed")
	}
	// Again (a retry): nothing left to do, no error.
	if _, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false)); err != nil {
		t.Errorf("retried Cleanup: %v", err)
	}
}

func TestCleanupDryRunRemovesPrivateDir(t *testing.T) {
	x := newFixture(t)
	listing := listDir(t, x.dir)
	pl := prepare(t, x.tg, x.s, true)
	if !exists(pl.staged.PrivateDir) {
		t.Fatal("no private dir")
	}
	if _, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false)); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if exists(pl.staged.PrivateDir) {
		t.Errorf("private dir %s left", pl.staged.PrivateDir)
	}
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("dry run changed the directory: %v -> %v", listing, got)
	}
	assertFilesHold(t, x.tg, x.old)
}

// When Backup or Stage fails, its result never reaches the workflow, which
// then cleans up with empty Staged/Backups: the files that step wrote (key
// copies among them) must still go.
func TestCleanupFindsFilesOfAFailedStep(t *testing.T) {
	x := newFixture(t)
	listing := listDir(t, x.dir)
	pl := prepare(t, x.tg, x.s, false)
	in := pl.cleanupInput(false)
	in.Staged, in.Backups = Staged{}, Backups{}
	if _, err := (&Activities{}).Cleanup(ctx, in); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("after cleanup the directory is %v, want %v", got, listing)
	}

	dry := prepare(t, x.tg, x.s, true)
	t.Cleanup(func() { os.RemoveAll(dry.staged.PrivateDir) })
	in = dry.cleanupInput(false)
	in.Staged = Staged{}
	if _, err := (&Activities{}).Cleanup(ctx, in); err != nil {
		t.Fatalf("dry-run Cleanup: %v", err)
	}
	if exists(dry.staged.PrivateDir) {
		t.Errorf("dry-run private dir %s (with a key copy) left behind", dry.staged.PrivateDir)
	}
}

// Cleanup after a failure removes this deploy's backups only while they are
// redundant: a live file that no longer holds its original bytes keeps its
// backup, whatever the caller says.
func TestCleanupFailureKeepsBackupsOfChangedFiles(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	if _, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false)); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for i, b := range pl.backup.Files {
		pf := pl.in.Plan.Files[i]
		changed := pf.CurrentSHA256 != pf.SHA256 // the chain is the same CA's
		if changed && !exists(b.Backup) {
			t.Errorf("backup %s of a changed file was removed", b.Backup)
		}
		if !changed && exists(b.Backup) {
			t.Errorf("backup %s of an unchanged file was kept", b.Backup)
		}
	}
}

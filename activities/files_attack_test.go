package activities

// The attacker's tests for the file steps (issue 10): a local user who can
// write a certificate directory, or swap a directory on the way, must not be
// able to turn the root worker's writes against the host.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/safefs"
)

// victim is a root-owned 0600 file outside the certificate directory, the
// kind an attacker wants root to clobber (or to hand them the key through).
func victim(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "victim.conf")
	if err := os.WriteFile(p, []byte("root's secret config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func victimUnchanged(t *testing.T, p string) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("victim: %v", err)
	}
	if got := read(t, p); string(got) != "root's secret config\n" {
		t.Errorf("root wrote through the planted link: victim now holds %q", got)
	}
	if fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("victim mode/owner changed: %v uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
	}
}

func TestAttackSymlinkAtTempName(t *testing.T) {
	x := newFixture(t)
	v := victim(t)
	in := StageInput{PlanInput: planInput(x.tg, x.s, newStamp())}
	in.Plan = mustPlan(t, in.PlanInput)
	if _, err := (&Activities{}).Backup(ctx, in); err != nil {
		t.Fatal(err)
	}
	// The stamp is visible from the first backup's name: plant the key's
	// temp name before Stage runs.
	if err := os.Symlink(v, TempPath(x.tg.Config.KeyPath, in.Stamp)); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Stage(ctx, in)
	appErr(t, err, contract.ConcurrentChange)
	victimUnchanged(t, v)
	if !strings.Contains(err.Error(), TempPath(x.tg.Config.KeyPath, in.Stamp)) {
		t.Errorf("error does not name the planted file: %v", err)
	}
	assertFilesHold(t, x.tg, x.old)
}

func TestAttackSymlinkAtBackupName(t *testing.T) {
	x := newFixture(t)
	v := victim(t)
	in := StageInput{PlanInput: planInput(x.tg, x.s, newStamp())}
	in.Plan = mustPlan(t, in.PlanInput)
	if err := os.Symlink(v, BackupPath(x.tg.Config.KeyPath, in.Stamp)); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Backup(ctx, in)
	appErr(t, err, contract.ConcurrentChange)
	victimUnchanged(t, v)
}

// The certificate directory swapped, between Plan and Commit, for a link to
// another directory or for another directory: nothing is written there.
func TestAttackParentSwappedBeforeCommit(t *testing.T) {
	for _, how := range []string{"symlink", "directory"} {
		t.Run(how, func(t *testing.T) {
			x := newFixture(t)
			pl := prepare(t, x.tg, x.s, false)
			other := t.TempDir()
			if err := os.Rename(x.dir, x.dir+".moved"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(x.dir + ".moved") })
			if how == "symlink" {
				if err := os.Symlink(other, x.dir); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Mkdir(x.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			// The attacker copies the staged names into place so a path-based
			// commit finds something to rename.
			for _, sf := range pl.staged.Files {
				os.WriteFile(filepath.Join(other, filepath.Base(sf.Temp)), []byte("x"), 0o644)
				os.WriteFile(filepath.Join(x.dir, filepath.Base(sf.Temp)), []byte("x"), 0o644)
			}
			_, err := (&Activities{}).Commit(ctx, pl.commitInput())
			appErr(t, err, contract.ConcurrentChange)
			for _, d := range []string{other, x.dir} {
				for _, r := range []string{"cert.pem", "chain.pem", "key.pem"} {
					if exists(filepath.Join(d, r)) {
						t.Errorf("commit wrote %s into the swapped-in directory", filepath.Join(d, r))
					}
				}
			}
		})
	}
}

func TestAttackParentSwappedBeforeBackup(t *testing.T) {
	x := newFixture(t)
	in := StageInput{PlanInput: planInput(x.tg, x.s, newStamp())}
	in.Plan = mustPlan(t, in.PlanInput)
	other := t.TempDir()
	for _, r := range []string{"cert.pem", "chain.pem", "key.pem"} {
		os.WriteFile(filepath.Join(other, r), read(t, filepath.Join(x.dir, r)), 0o644)
	}
	if err := os.Rename(x.dir, x.dir+".moved"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(x.dir + ".moved") })
	if err := os.Symlink(other, x.dir); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Backup(ctx, in)
	appErr(t, err, contract.ConcurrentChange)
	if _, err := (&Activities{}).Stage(ctx, in); err == nil {
		t.Error("Stage wrote into a swapped directory")
	}
	if got := listDir(t, other); len(got) != 3 {
		t.Errorf("files written into the swapped-in directory: %v", got)
	}
}

func TestAttackInsecureDirectories(t *testing.T) {
	cases := map[string]func(t *testing.T, dir string){
		"1777": func(t *testing.T, dir string) {
			if err := syscall.Chmod(dir, 0o1777); err != nil {
				t.Fatal(err)
			}
		},
		"group-writable": func(t *testing.T, dir string) {
			if err := syscall.Chmod(dir, 0o770); err != nil {
				t.Fatal(err)
			}
		},
		"owned by another user": func(t *testing.T, dir string) {
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		},
		"world-writable ancestor": func(t *testing.T, dir string) {
			if err := syscall.Chmod(filepath.Dir(dir), 0o777); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, weaken := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "certs")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			ca := newCA(t)
			old, s := issue(t, ca), issue(t, ca)
			if _, _, _, err := old.Write(dir); err != nil {
				t.Fatal(err)
			}
			weaken(t, dir)
			listing := listDir(t, dir)
			tg := newTarget(dir)
			_, err := (&Activities{}).Plan(ctx, planInput(tg, s, newStamp()))
			ae := appErr(t, err, "InsecurePath")
			if !ae.NonRetryable() {
				t.Error("InsecurePath is retryable")
			}
			if !strings.Contains(err.Error(), "mode ") || !strings.Contains(err.Error(), "chmod go-w") || !strings.Contains(err.Error(), "owner") {
				t.Errorf("message does not name the mode, the owner and what to do: %v", err)
			}
			if got := listDir(t, dir); strings.Join(got, ",") != strings.Join(listing, ",") {
				t.Errorf("something was written: %v", got)
			}
		})
	}
	// A root-owned 0700 or 0755 directory under /tmp (t.TempDir) is fine.
	for _, m := range []uint32{0o700, 0o755} {
		dir := t.TempDir()
		syscall.Chmod(dir, m)
		if _, err := (&Activities{}).Plan(ctx, planInput(newTarget(dir), issue(t, newCA(t)), newStamp())); err != nil {
			t.Errorf("Plan in a root-owned %04o directory under /tmp: %v", m, err)
		}
	}
}

// Between Plan and Commit the directory is made insecure: the writing steps
// check again.
func TestAttackDirectoryMadeInsecureAfterPlan(t *testing.T) {
	x := newFixture(t)
	in := StageInput{PlanInput: planInput(x.tg, x.s, newStamp())}
	in.Plan = mustPlan(t, in.PlanInput)
	syscall.Chmod(x.dir, 0o1777)
	_, err := (&Activities{}).Backup(ctx, in)
	appErr(t, err, "InsecurePath")
}

// Another deploy committed over this one's files before this one rolls back:
// its bytes are never overwritten.
func TestAttackRollbackOverAnotherDeploysBytes(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	third := issue(t, newCA(t))
	if err := os.WriteFile(x.tg.Config.CertPath, []byte(third.CertPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	appErr(t, err, contract.ConcurrentChange)
	if got := read(t, x.tg.Config.CertPath); !bytes.Equal(got, []byte(third.CertPEM)) {
		t.Errorf("rollback overwrote another deploy's certificate")
	}
}

// A file this deploy created is removed by rollback only while it holds
// this deploy's bytes.
func TestAttackRollbackKeepsCreatedFileWithOtherBytes(t *testing.T) {
	dir := t.TempDir()
	x := newTarget(dir)
	s := issue(t, newCA(t))
	pl := prepare(t, x, s, false)
	mustCommit(t, pl)
	if err := os.WriteFile(x.Config.KeyPath, []byte("someone else's key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	appErr(t, err, contract.ConcurrentChange)
	if got := read(t, x.Config.KeyPath); string(got) != "someone else's key" {
		t.Errorf("rollback removed a file holding another deploy's bytes")
	}
	if exists(x.Config.CertPath) {
		t.Errorf("rollback left the file this deploy created (and still holding its bytes)")
	}
}

// A staged file named by the activity input, not derived from path and
// stamp, is never renamed over a destination.
func TestAttackStagedTempFromInput(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	v := victim(t)
	in := pl.commitInput()
	in.Staged.Files[0].Temp = v
	_, err := (&Activities{}).Commit(ctx, in)
	appErr(t, err, contract.PlanMismatch)
	victimUnchanged(t, v)
	assertFilesHold(t, x.tg, x.old)
}

// Files planted with backup names and a far-future stamp neither push the
// worker's real backups out of retention nor get removed.
func TestAttackPlantedFutureBackups(t *testing.T) {
	x := newFixture(t)
	x.tg.Config.BackupRetention = func(n int) *int { return &n }(1)
	planted := BackupPath(x.tg.Config.CertPath, 9000000000000000001)
	if err := os.WriteFile(planted, []byte("planted"), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	if _, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(true)); err != nil {
		t.Fatal(err)
	}
	for _, b := range pl.backup.Files {
		if !exists(b.Backup) {
			t.Errorf("real backup %s pushed out by a planted one", b.Backup)
		}
	}
	if got := read(t, planted); string(got) != "planted" {
		t.Errorf("planted file touched")
	}
}

// A newline in a staged directory's path does not split the record (the
// start-up sweep would scan the second half).
func TestAttackStagedDirsNewline(t *testing.T) {
	state := t.TempDir()
	dir := t.TempDir() + "/x\n/var/tmp"
	if err := recordStagedDirs(state, []string{dir}); err != nil {
		t.Fatal(err)
	}
	got, err := StagedDirs(state)
	if err != nil || len(got) != 1 || got[0] != dir {
		t.Errorf("StagedDirs = %q %v, want [%q]", got, err, dir)
	}
}

// The backup ledger keeps any byte of a path: a newline or invalid UTF-8 in
// a destination's name neither splits a record nor changes the name.
func TestBackupLedgerKeepsEveryByte(t *testing.T) {
	a := &Activities{StateDir: t.TempDir()}
	odd := []string{"/srv/a\nb/cert.pem", "/srv/\xff\xfe/cert.pem", "/srv/plain/cert.pem"}
	for i, p := range odd {
		if err := a.recordBackup(backupRecord{Path: []byte(p), Backup: []byte(BackupPath(p, int64(i))), Stamp: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := a.backupRecords()
	if err != nil || len(recs) != len(odd) {
		t.Fatalf("ledger holds %d records (%v), want %d", len(recs), err, len(odd))
	}
	for i, p := range odd {
		if got := newestFirst(recs, "", p); len(got) != 1 || string(got[0].Backup) != BackupPath(p, int64(i)) {
			t.Errorf("record for %q: %+v", p, got)
		}
	}
}

// A deploy planned by a worker from before directory identities (its plan
// has no dir_id) and caught past Commit by the upgrade still rolls back.
func TestRollbackOfAPlanWithoutDirectoryIdentity(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	in := pl.rollbackInput()
	for i := range in.Plan.Files {
		in.Plan.Files[i].DirID = safefs.ID{}
	}
	if _, err := (&Activities{}).Rollback(ctx, in); err != nil {
		t.Fatalf("rollback of a plan without dir_id: %v", err)
	}
	for _, f := range in.Plan.Files {
		if sum := sha256.Sum256(read(t, f.Path)); hex.EncodeToString(sum[:]) != f.CurrentSHA256 {
			t.Errorf("%s does not hold what it held before the deploy", f.Path)
		}
	}
}

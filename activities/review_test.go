package activities

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/safefs"
)

// outsideFile is a file outside the target's destinations (outside any path a
// host policy allowing the target's directory would allow), whose content an
// attacker knows (a local user can read it, or it ships with a package).
func outsideFile(t *testing.T, content string) (path string, pf PlannedFile) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "victim.conf")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return path, PlannedFile{Role: "cert", Path: path, SHA256: material.SHA256([]byte(content)), DirID: d.ID(), Mode: 0o644}
}

// A namespace writer schedules Rollback for an allowed target (the host
// policy checks only the target) with a plan naming a file outside it, "new"
// (Exists false) and holding "this deploy's bytes" (its known hash): root
// removed it.
func TestReviewRollbackRefusesPlanFileOutsideTarget(t *testing.T) {
	x := newFixture(t)
	path, pf := outsideFile(t, "root-owned config an attacker can read\n")
	in := RollbackInput{Request: Request{Target: x.tg, Stamp: newStamp()}, Plan: Plan{Action: ActionDeploy, Files: []PlannedFile{pf}}}
	_, err := (&Activities{}).Rollback(ctx, in)
	if contract.Of(err) != contract.PlanMismatch {
		t.Errorf("Rollback of a file outside the target: %v, want PlanMismatch", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("root removed a file outside the target's destinations: %v", err)
	}
}

// Backup then Rollback of a file outside the target, after it changed in a
// way the attacker can predict (chsh rewrites /etc/passwd): root restored it
// owned by the uid the attacker put in the plan.
func TestReviewBackupRollbackRefusePlanFileOutsideTarget(t *testing.T) {
	x := newFixture(t)
	path, pf := outsideFile(t, "version A\n")
	stamp := newStamp()
	pf.Exists, pf.CurrentSHA256, pf.CurrentMode, pf.CurrentUID, pf.CurrentGID = true, pf.SHA256, 0o666, 65534, 65534
	req := Request{Target: x.tg, Stamp: stamp}
	_, err := (&Activities{}).Backup(ctx, StageInput{PlanInput: PlanInput{Request: req}, Plan: Plan{Files: []PlannedFile{pf}}})
	if contract.Of(err) != contract.PlanMismatch {
		t.Errorf("Backup of a file outside the target: %v, want PlanMismatch", err)
	}
	if err := os.WriteFile(path, []byte("version B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf.SHA256 = material.SHA256([]byte("version B\n"))
	_, err = (&Activities{}).Rollback(ctx, RollbackInput{Request: req, Plan: Plan{Files: []PlannedFile{pf}},
		Backups: Backups{Files: []Backup{{Path: path, Backup: BackupPath(path, stamp)}}}})
	if contract.Of(err) != contract.PlanMismatch {
		t.Errorf("Rollback of a file outside the target: %v, want PlanMismatch", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("root chmodded a file outside the target to %v", fi.Mode().Perm())
	}
}

// Commit and Cleanup take the plan from their input too.
func TestReviewCommitCleanupRefusePlanFileOutsideTarget(t *testing.T) {
	x := newFixture(t)
	_, pf := outsideFile(t, "x\n")
	req := Request{Target: x.tg, Stamp: newStamp()}
	plan := Plan{Files: []PlannedFile{pf}}
	_, err := (&Activities{}).Commit(ctx, CommitInput{Request: req, Plan: plan,
		Staged: Staged{Files: []StagedFile{{Path: pf.Path, Temp: TempPath(pf.Path, req.Stamp), SHA256: pf.SHA256}}}})
	if contract.Of(err) != contract.PlanMismatch {
		t.Errorf("Commit of a file outside the target: %v, want PlanMismatch", err)
	}
	_, err = (&Activities{}).Cleanup(ctx, CleanupInput{Request: req, Plan: plan, Succeeded: true})
	if contract.Of(err) != contract.PlanMismatch {
		t.Errorf("Cleanup of a file outside the target: %v, want PlanMismatch", err)
	}
}

func fileID(t *testing.T, path string) safefs.ID {
	t.Helper()
	d, err := safefs.OpenDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	info, err := d.Lstat(filepath.Base(path))
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// A ledger line naming, as a backup of cert.pem, a file that is not
// BackupPath(cert.pem, stamp) (the live key, with its inode and owner): the
// retention pruned the live key.
func TestReviewPruneOnlyBackupNamesDerivedFromTheRecord(t *testing.T) {
	x := newFixture(t)
	one := 1
	x.tg.Config.BackupRetention = &one
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	a := &Activities{}
	key := x.tg.Config.KeyPath
	if err := a.recordBackup(backupRecord{Path: []byte(x.tg.Config.CertPath), Backup: []byte(key), Stamp: 1, ID: fileID(t, key), UID: os.Getuid()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Cleanup(ctx, pl.cleanupInput(true)); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if _, err := os.Stat(key); err != nil {
		t.Fatalf("retention removed the live key named by a ledger line: %v", err)
	}
}

// A state directory others can write (a pre-created /var/lib/certctl, or
// CERTCTL_STATE_DIR under /tmp) lets them forge the ledger and the staged
// directories: the worker refuses to use it.
func TestReviewStateDirWritableByOthersRefused(t *testing.T) {
	x := newFixture(t)
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o777); err != nil {
		t.Fatal(err)
	}
	a := &Activities{StateDir: state}
	pin := planInput(x.tg, x.s, newStamp())
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	if _, err := a.Backup(ctx, in); err == nil {
		t.Errorf("Backup recorded into a world-writable state directory")
	}
	if _, err := a.Stage(ctx, in); err == nil {
		t.Errorf("Stage recorded into a world-writable state directory")
	}
	if _, err := StagedDirs(state); err == nil {
		t.Errorf("StagedDirs read a world-writable state directory")
	}
}

func setFile(p *Plan, role string, fn func(*PlannedFile)) {
	for i := range p.Files {
		if p.Files[i].Role == role {
			fn(&p.Files[i])
		}
	}
}

// Stage took each file's owner and mode from its input plan: a plan saying
// key mode 0666 (a mode the target file may never hold) and owner nobody
// staged the key world-writable, owned by nobody.
func TestReviewStageRefusesOwnerAndModeNotPlanned(t *testing.T) {
	x := newFixture(t)
	pin := planInput(x.tg, x.s, newStamp())
	p := mustPlan(t, pin)
	setFile(&p, "key", func(f *PlannedFile) { f.Mode, f.UID, f.GID, f.HoldsKey = 0o666, 65534, 65534, false })
	st, err := (&Activities{}).Stage(ctx, StageInput{PlanInput: pin, Plan: p})
	if contract.Of(err) != contract.PlanMismatch {
		t.Errorf("Stage with a plan's own key mode and owner: %v (staged %+v), want PlanMismatch", err, st)
	}
	if fi, err := os.Stat(TempPath(x.tg.Config.KeyPath, pin.Stamp)); err == nil {
		t.Errorf("key staged with mode %v", fi.Mode().Perm())
	}
}

// Rollback took the restored file's owner and mode from its input plan, not
// from the backup Backup made with the original's.
func TestReviewRollbackRestoresTheBackupsOwnerAndMode(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	in := pl.rollbackInput()
	setFile(&in.Plan, "cert", func(f *PlannedFile) { f.CurrentMode, f.CurrentUID, f.CurrentGID = 0o666, 65534, 65534 })
	if _, err := (&Activities{}).Rollback(ctx, in); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	fi, err := os.Stat(x.tg.Config.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o644 || int(st.Uid) != os.Getuid() {
		t.Errorf("cert restored with mode %v owner %d, want the original's 0644 owner %d", fi.Mode().Perm(), st.Uid, os.Getuid())
	}
}

// Commit renamed whatever regular file sat at the temp name: one put there
// after Stage (by the directory's owner, or a hard link to another file)
// became the live key. It must be the bytes Stage wrote, one link.
func TestReviewCommitRefusesSwappedTemp(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	tmp := TempPath(x.tg.Config.KeyPath, pl.in.Stamp)
	other := filepath.Join(x.dir, "other")
	if err := os.WriteFile(other, []byte("not the key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(other, tmp); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Commit(ctx, pl.commitInput())
	if contract.Of(err) != contract.ConcurrentChange {
		t.Errorf("Commit of a swapped temp: %v, want ConcurrentChange", err)
	}
	if b, _ := os.ReadFile(x.tg.Config.KeyPath); string(b) == "not the key\n" {
		t.Errorf("the swapped temp became the live key")
	}
}

// Validate's material check read the files with os.ReadFile: through a link
// (or blocking on a FIFO) at a destination, against "reads refuse anything
// but a regular file".
func TestReviewValidateReadsNoLink(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	mustCommit(t, pl)
	elsewhere := filepath.Join(t.TempDir(), "cert.pem")
	b, err := os.ReadFile(x.tg.Config.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(elsewhere, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(x.tg.Config.CertPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, x.tg.Config.CertPath); err != nil {
		t.Fatal(err)
	}
	in := pl.validateInput()
	in.Live = true
	if _, err := (&Activities{}).Validate(ctx, in); err == nil {
		t.Errorf("Validate read the live cert through a symbolic link")
	}
}

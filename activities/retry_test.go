package activities

import (
	"os"
	"reflect"
	"testing"

	"github.com/certctl/certctl/target"
)

// Every step re-run after it succeeded (its completion lost, so Temporal
// runs it again) changes nothing on disk and reports the same result.
func TestEveryStepRerunChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	tg.Config.PostDeployVerify = target.Verify{Endpoint: serveTLS(t, s)}
	req := Request{Target: tg, Stamp: newStamp()}
	a := &Activities{}
	twice := func(name string, step func() (any, error)) any {
		t.Helper()
		first, err := step()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		before := listDir(t, dir)
		again, err := step()
		if err != nil {
			t.Fatalf("%s re-run: %v", name, err)
		}
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("%s re-run reports %+v, first %+v", name, again, first)
		}
		if after := listDir(t, dir); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s re-run changed the directory:\n %v\n %v", name, before, after)
		}
		return first
	}
	plan := twice("Plan", func() (any, error) { return a.Plan(ctx, PlanInput{Request: req, Material: s.Material}) }).(Plan)
	in := StageInput{PlanInput: PlanInput{Request: req, Material: s.Material}, Plan: plan}
	backups := twice("Backup", func() (any, error) { return a.Backup(ctx, in) }).(Backups)
	staged := twice("Stage", func() (any, error) { return a.Stage(ctx, in) }).(Staged)
	twice("Validate", func() (any, error) {
		return a.Validate(ctx, ValidateInput{Request: req, Plan: plan, Staged: staged})
	})
	twice("Commit", func() (any, error) { return a.Commit(ctx, CommitInput{Request: req, Plan: plan, Staged: staged}) })
	twice("Reload", func() (any, error) { return a.Reload(ctx, req) })
	twice("Verify", func() (any, error) { return a.Verify(ctx, VerifyInput{Request: req, Expected: plan.LeafSHA256}) })
	twice("Cleanup", func() (any, error) {
		return a.Cleanup(ctx, CleanupInput{Request: req, Plan: plan, Staged: staged, Backups: backups, Succeeded: true})
	})
	twice("Rollback", func() (any, error) { return a.Rollback(ctx, RollbackInput{Request: req, Plan: plan, Backups: backups}) })
}

// A world-readable key is not carried into its backup either.
func TestBackupOfWorldReadableKeyIsNotWorldReadable(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Chmod(tg.Config.KeyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	req := Request{Target: tg, Stamp: newStamp()}
	a := &Activities{}
	plan, err := a.Plan(ctx, PlanInput{Request: req, Material: s.Material})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Backup(ctx, StageInput{PlanInput: PlanInput{Request: req, Material: s.Material}, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Files {
		fi, err := os.Stat(f.Backup)
		if err != nil {
			t.Fatal(err)
		}
		if f.Path == tg.Config.KeyPath && fi.Mode().Perm()&0o007 != 0 {
			t.Fatalf("key backup %s is mode %04o", f.Backup, fi.Mode().Perm())
		}
		if f.Path == tg.Config.CertPath && fi.Mode().Perm() != 0o644 {
			t.Fatalf("cert backup mode %04o, want the cert's 0644", fi.Mode().Perm())
		}
	}
}

package activities

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
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

// Identical bytes with a key readable by others is work to do, not a skip.
func TestPlanPermissionDriftIsNotASkip(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	if _, _, _, err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	in := PlanInput{Request: Request{Target: tg, Stamp: newStamp()}, Material: s.Material}
	if plan, err := (&Activities{}).Plan(ctx, in); err != nil || plan.Action != ActionSkip {
		t.Fatalf("identical files planned %s (err %v), want skip", plan.Action, err)
	}
	if err := os.Chmod(tg.Config.KeyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if plan, err := (&Activities{}).Plan(ctx, in); err != nil || plan.Action != ActionDeploy {
		t.Fatalf("a world-readable key with identical bytes planned %s (err %v), want deploy", plan.Action, err)
	}
}

func TestPlanRefusesSymlinkedDestination(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	tg := newTarget(dir)
	real := filepath.Join(dir, "archive-cert1.pem")
	if err := os.WriteFile(real, []byte(s.CertPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, tg.Config.CertPath); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Plan(ctx, PlanInput{Request: Request{Target: tg, Stamp: newStamp()}, Material: s.Material})
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), "target_config.cert_path") {
		t.Fatalf("want InvalidInput naming cert_path as a symlink, got %v", err)
	}
}

func TestPreflightNeedsAHostForFileTargets(t *testing.T) {
	s := issue(t, newCA(t))
	tg := newTarget(t.TempDir())
	tg.Host = ""
	_, _, err := Preflight(tg, s.Material, time.Now())
	var fe *contract.FieldError
	if !errors.As(err, &fe) || fe.Field != "host" {
		t.Fatalf("want a FieldError on host, got %v", err)
	}
}

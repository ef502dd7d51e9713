package activities

import (
	"reflect"
	"testing"

	"github.com/certctl/certctl/target"
)

// Every step re-run after it succeeded (its completion lost, so Temporal
// runs it again) changes nothing on disk and reports the same result.
func TestEveryStepRerunChangesNothing(t *testing.T) {
	x := newFixture(t)
	x.tg.Config.PostDeployVerify = target.Verify{Endpoint: serveTLS(t, x.s)}
	req := Request{Target: x.tg, Stamp: newStamp()}
	a := &Activities{}
	twice := func(name string, step func() (any, error)) any {
		t.Helper()
		first, err := step()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		before := listDir(t, x.dir)
		again, err := step()
		if err != nil {
			t.Fatalf("%s re-run: %v", name, err)
		}
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("%s re-run reports %+v, first %+v", name, again, first)
		}
		if after := listDir(t, x.dir); !reflect.DeepEqual(before, after) {
			t.Fatalf("%s re-run changed the directory:\n %v\n %v", name, before, after)
		}
		return first
	}
	plan := twice("Plan", func() (any, error) { return a.Plan(ctx, PlanInput{Request: req, Material: x.s.Material}) }).(Plan)
	in := StageInput{PlanInput: PlanInput{Request: req, Material: x.s.Material}, Plan: plan}
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

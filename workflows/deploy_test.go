package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/lock"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

const (
	newLeaf = "1111111111111111111111111111111111111111111111111111111111111111"
	oldLeaf = "2222222222222222222222222222222222222222222222222222222222222222"
)

func testRequest() DeployRequest {
	return DeployRequest{
		Target: target.Target{TargetID: "web-1", TargetType: "nginx", Host: "web-1", Config: target.Config{
			CertPath: "/etc/nginx/certs/cert.pem", KeyPath: "/etc/nginx/certs/key.pem",
			PostDeployVerify: target.Verify{Endpoint: "web-1:443"},
		}},
		Material: material.Material{CertPEM: "cert", KeyPEM: "key"},
	}
}

func planOf(action activities.Action) activities.Plan {
	return activities.Plan{Action: action, LeafSHA256: newLeaf, ServedSHA256: oldLeaf, Files: []activities.PlannedFile{
		{Role: "cert", Path: "/etc/nginx/certs/cert.pem", SHA256: "a", CurrentSHA256: "b", Exists: true},
		{Role: "key", Path: "/etc/nginx/certs/key.pem", SHA256: "c", CurrentSHA256: "d", Exists: true},
	}}
}

// harness registers every step with a default that succeeds; a test
// overrides the steps it is about before running.
type harness struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	plan     activities.Plan
	validate []activities.ValidateResult
	reload   []error
	verify   func(in activities.VerifyInput, attempt int) error
	rollback error
	called   []string
	expects  []string // Verify's expected fingerprints, in call order
	cleanups []bool
	// busy is how many times Lock answers "not yet" (-1: always).
	busy int
	// pickedUp is what PickedUp answers.
	pickedUp bool
	// local records, per step the workflow ran, whether it ran as a local
	// activity.
	local map[string]bool
}

// step records a step and how it ran.
func (h *harness) step(ctx context.Context, name string) {
	h.rec(name)
	if h.local == nil {
		h.local = map[string]bool{}
	}
	h.local[name] = activity.GetInfo(ctx).IsLocalActivity
}

func newHarness(t *testing.T, action activities.Action) *harness {
	s := &testsuite.WorkflowTestSuite{}
	h := &harness{t: t, env: s.NewTestWorkflowEnvironment(), plan: planOf(action)}
	Register(h.env)
	return h
}

func (h *harness) rec(name string) { h.called = append(h.called, name) }

func (h *harness) run(req DeployRequest) (DeployResult, error) {
	env := h.env
	env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.PlanInput) (activities.Plan, error) {
		h.step(ctx, "Plan")
		return h.plan, nil
	}).Maybe()
	env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.StageInput) (activities.Backups, error) {
		h.step(ctx, "Backup")
		return activities.Backups{Files: []activities.Backup{{Path: in.Plan.Files[0].Path, Backup: in.Plan.Files[0].Path + ".certctl-bak.1"}}}, nil
	}).Maybe()
	env.OnActivity(a.Stage, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.StageInput) (activities.Staged, error) {
		h.step(ctx, "Stage")
		return activities.Staged{}, nil
	}).Maybe()
	env.OnActivity(a.Validate, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.ValidateInput) (activities.ValidateResult, error) {
		if in.Live {
			h.step(ctx, "ValidateLive")
		} else {
			h.step(ctx, "Validate")
		}
		if len(h.validate) == 0 {
			return activities.ValidateResult{ServerCheck: activities.CheckStaged}, nil
		}
		r := h.validate[0]
		h.validate = h.validate[1:]
		if r.ServerCheck == "fail" {
			return r, temporal.NewNonRetryableApplicationError("nginx -t: exit status 1: bad", contract.ValidateFailed, nil)
		}
		return r, nil
	}).Maybe()
	env.OnActivity(a.Commit, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.CommitInput) (activities.CommitResult, error) {
		h.step(ctx, "Commit")
		return activities.CommitResult{Committed: []string{"/etc/nginx/certs/cert.pem", "/etc/nginx/certs/key.pem"}}, nil
	}).Maybe()
	env.OnActivity(a.Reload, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.Request) (activities.CommandResult, error) {
		h.step(ctx, "Reload")
		if len(h.reload) > 0 {
			err := h.reload[0]
			h.reload = h.reload[1:]
			return activities.CommandResult{}, err
		}
		return activities.CommandResult{}, nil
	}).Maybe()
	attempts := 0
	env.OnActivity(a.Verify, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.VerifyInput) (activities.VerifyResult, error) {
		h.step(ctx, "Verify")
		h.expects = append(h.expects, in.Expected)
		attempts++
		if h.verify != nil {
			if err := h.verify(in, attempts); err != nil {
				return activities.VerifyResult{}, err
			}
		}
		return activities.VerifyResult{Served: in.Expected}, nil
	}).Maybe()
	env.OnActivity(a.Rollback, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.RollbackInput) (activities.RollbackResult, error) {
		h.step(ctx, "Rollback")
		return activities.RollbackResult{}, h.rollback
	}).Maybe()
	env.OnActivity(a.Cleanup, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.CleanupInput) (activities.CleanupResult, error) {
		h.step(ctx, "Cleanup")
		h.cleanups = append(h.cleanups, in.Succeeded)
		if in.Release {
			h.rec("Release")
		}
		return activities.CleanupResult{Released: in.Release}, nil
	}).Maybe()
	env.OnActivity(a.Lock, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.LockInput) (activities.LockResult, error) {
		if h.busy != 0 {
			h.busy--
			return activities.LockResult{Keys: lock.Keys(in.Target), WaitingFor: []string{"deploy/web-1/earlier"}}, nil
		}
		h.step(ctx, "Lock")
		return activities.LockResult{Granted: true, Keys: lock.Keys(in.Target)}, nil
	}).Maybe()
	env.OnActivity(a.Unlock, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ activities.LockInput) error {
		h.step(ctx, "Release")
		return nil
	}).Maybe()
	env.OnActivity(a.PickedUp, mock.Anything, mock.Anything).Return(func(context.Context, activities.PickupInput) (bool, error) {
		h.rec("PickedUp")
		return h.pickedUp, nil
	}).Maybe()
	env.OnActivity((*lock.Activities)(nil).RequestFileLock, mock.Anything, mock.Anything).Return(func(_ context.Context, _ lock.FileStart) error {
		h.rec("Lock")
		env.RegisterDelayedCallback(func() { env.SignalWorkflow(contract.LockGrantedSignal, nil) }, 0)
		return nil
	}).Maybe()
	env.OnSignalExternalWorkflow(mock.Anything, lock.FileLockID(req.Target), "", contract.LockReleaseSignal, mock.Anything).Return(func(_, _, _, _ string, _ any) error {
		h.rec("Release")
		return nil
	}).Maybe()
	env.ExecuteWorkflow(DeployWorkflow, req)
	if !env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	var res DeployResult
	err := env.GetWorkflowError()
	if err == nil {
		if gerr := env.GetWorkflowResult(&res); gerr != nil {
			h.t.Fatal(gerr)
		}
		return res, nil
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		h.t.Fatalf("workflow error is not an application error: %v", err)
	}
	if derr := ae.Details(&res); derr != nil {
		h.t.Fatalf("failure details: %v", derr)
	}
	if ae.Type() != res.Outcome {
		h.t.Fatalf("failure type %q, outcome %q", ae.Type(), res.Outcome)
	}
	return res, err
}

// wantCalls compares the steps run between taking and releasing the
// target's lock (a deploy that takes it must release it last).
func (h *harness) wantCalls(want ...string) {
	h.t.Helper()
	called := h.called
	if len(called) > 0 && called[0] == "Lock" {
		if called[len(called)-1] != "Release" {
			h.t.Fatalf("the lock is taken but not released last: %v", called)
		}
		called = called[1 : len(called)-1]
	}
	if strings.Join(called, ",") != strings.Join(want, ",") {
		h.t.Fatalf("steps run:\n got  %v\n want %v", h.called, want)
	}
}

func wantOutcome(t *testing.T, res DeployResult, err error, want string) {
	t.Helper()
	if res.Outcome != want {
		t.Fatalf("outcome %q (error %v), want %q", res.Outcome, err, want)
	}
	if contract.Succeeded(want) != (err == nil) {
		t.Fatalf("outcome %s: workflow error %v", want, err)
	}
}

func TestDeployed(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.Deployed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Verify", "Cleanup")
	if res.LeafSHA256 != newLeaf || res.TargetID != "web-1" {
		t.Fatalf("result %+v", res)
	}
	var names []string
	for _, s := range res.Steps {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "lock,plan,backup,stage,validate,commit,reload,verify,cleanup" {
		t.Fatalf("steps %s", got)
	}
	if len(h.cleanups) != 1 || !h.cleanups[0] {
		t.Fatalf("cleanup after success should prune: %v", h.cleanups)
	}
}

func TestSkippedIdempotentDoesNotReload(t *testing.T) {
	h := newHarness(t, activities.ActionSkip)
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.SkippedIdempotent)
	h.wantCalls("Plan")
}

// Promise 1: files match but the old leaf is served (a crash between commit
// and reload): reload and verify, nothing rewritten.
func TestFilesMatchOldLeafServedReloads(t *testing.T) {
	h := newHarness(t, activities.ActionReload)
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.Deployed)
	h.wantCalls("Plan", "Reload", "Verify")
}

func TestDryRunTouchesNothingLive(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	req := testRequest()
	req.DryRun = true
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.DryRunPassed)
	h.wantCalls("Plan", "Stage", "Validate", "Cleanup")
}

func TestValidateFailedLeavesLiveFilesAlone(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.validate = []activities.ValidateResult{{ServerCheck: "fail"}}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.ValidateFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Cleanup")
	if len(h.cleanups) != 1 || h.cleanups[0] {
		t.Fatalf("cleanup after a failed validate must remove this deploy's backups, not prune: %v", h.cleanups)
	}
	if !strings.Contains(res.Error, "nginx -t") {
		t.Fatalf("error %q does not carry the check's message", res.Error)
	}
}

// Where the check cannot see staged files it runs after Commit; a failure
// restores the backups without ever reloading.
func TestDeferredValidateFailureRestoresWithoutReload(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.validate = []activities.ValidateResult{{ServerCheck: activities.CheckDeferred}, {ServerCheck: "fail"}}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.ValidateFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "ValidateLive", "Rollback")
}

func TestReloadFailedRollsBackAndReloadsAgain(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.reload = []error{temporal.NewNonRetryableApplicationError("nginx -s reload: exit status 1", contract.ReloadFailed, nil)}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.ReloadFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Rollback", "Reload", "Verify")
	if got := strings.Join(h.expects, ","); got != oldLeaf {
		t.Fatalf("after rollback verify must expect the old leaf, got %s", got)
	}
}

func TestVerifyFailedRetriesWithBackoffThenRollsBack(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	var times []time.Time
	h.verify = func(in activities.VerifyInput, _ int) error {
		if in.Expected == newLeaf {
			times = append(times, h.env.Now())
			return temporal.NewApplicationError("serves another leaf", "VerifyMismatch")
		}
		return nil
	}
	req := testRequest()
	req.Target.Config.PostDeployVerifyAttempts = 4
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.VerifyFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Verify", "Verify", "Verify", "Verify", "Rollback", "Reload", "Verify")
	// First probe at once, then 1s, 2s, 4s.
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if got := times[i+1].Sub(times[i]); got < want || got > want+time.Second {
			t.Fatalf("gap %d: %v, want about %v", i, got, want)
		}
	}
}

func TestVerifyBackoffIsCapped(t *testing.T) {
	req := testRequest()
	req.Target.Config.PostDeployVerifyAttempts = 8
	o := (&deploy{req: activities.Request{Target: req.Target}}).verifyOpts()
	if o.RetryPolicy.MaximumInterval != 16*time.Second || o.RetryPolicy.InitialInterval != time.Second || o.RetryPolicy.MaximumAttempts != 8 {
		t.Fatalf("retry policy %+v", o.RetryPolicy)
	}
}

func TestRollbackFailedWhenRestoreFails(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.reload = []error{temporal.NewNonRetryableApplicationError("reload: exit status 1", contract.ReloadFailed, nil)}
	h.rollback = temporal.NewNonRetryableApplicationError("rollback incomplete: disk full", contract.RollbackFailed, nil)
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.RollbackFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Rollback")
	for _, want := range []string{"/etc/nginx/certs/cert.pem", "/etc/nginx/certs/key.pem", ".certctl-bak.1", "disk full"} {
		if !strings.Contains(res.Error, want) {
			t.Fatalf("RollbackFailed error %q does not name %q", res.Error, want)
		}
	}
}

func TestRollbackFailedWhenSecondReloadFails(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	fail := temporal.NewNonRetryableApplicationError("reload: exit status 1", contract.ReloadFailed, nil)
	h.reload = []error{fail, fail}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.RollbackFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Rollback", "Reload")
}

func TestRollbackFailedWhenOldLeafNotServedAgain(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.verify = func(activities.VerifyInput, int) error {
		return temporal.NewApplicationError("serves another leaf", "VerifyMismatch")
	}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.RollbackFailed)
}

func TestInvalidInputFromPlan(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.Plan{}, contract.Invalid("target_config.cert_path", "directory /nope does not exist"))
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.InvalidInput)
	if !strings.Contains(res.Error, "target_config.cert_path") {
		t.Fatalf("error %q does not name the field", res.Error)
	}
}

func TestHostUnavailable(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.Plan{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.HostUnavailable)
	// The step's schedule-to-start timeout says which worker to start,
	// not "timed out (scheduletostart)".
	if want := "HostUnavailable: no worker polled certctl-host-web-1 for 5m0s; start one on web-1 with: certctl-worker --host web-1"; res.Error != want {
		t.Fatalf("error %q, want %q", res.Error, want)
	}
}

func TestVerifyDisabledIsShownNotSilent(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	req := testRequest()
	off := false
	req.Target.Config.PostDeployVerify = target.Verify{Enabled: &off}
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.Deployed)
	found := false
	for _, s := range res.Steps {
		if s.Name == "verify" && strings.Contains(s.Detail, "skipped") {
			found = true
		}
	}
	if !found {
		t.Fatalf("a disabled verify must appear as a skipped step: %+v", res.Steps)
	}
}

func TestActivitiesRunOnTheHostQueue(t *testing.T) {
	if q := queueFor(testRequest().Target); q != "certctl-host-web-1" {
		t.Fatalf("queue %s", q)
	}
	tg := testRequest().Target
	tg.Host = ""
	if q := queueFor(tg); q != contract.TaskQueue {
		t.Fatalf("agentless queue %s", q)
	}
}

// Promise 6: a deploy holds its target's lock from before Plan to after its
// last step; a dry run, which touches nothing live, does not wait for it.
func TestDeployHoldsTheTargetLock(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.Deployed)
	if h.called[0] != "Lock" || h.called[len(h.called)-1] != "Release" {
		t.Fatalf("steps %v", h.called)
	}
	if res.Steps[0].Name != "lock" {
		t.Fatalf("the wait for the lock is not shown: %+v", res.Steps[0])
	}
	h = newHarness(t, activities.ActionDeploy)
	req := testRequest()
	req.DryRun = true
	res, err = h.run(req)
	wantOutcome(t, res, err, contract.DryRunPassed)
	if h.called[0] == "Lock" {
		t.Fatal("a dry run waited for the lock")
	}
}

// A target the plain temporal CLI sent with a control character in its ID
// is refused by certctl, naming the field, before the lock or any step.
func TestInvalidTargetRefusedBeforeTheLock(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	req := testRequest()
	req.Target.TargetID = "web-1\x1b[2J"
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.InvalidInput)
	if !strings.Contains(res.Error, "target_id") {
		t.Fatalf("error %q does not name target_id", res.Error)
	}
	h.wantCalls()
	for _, s := range res.Steps {
		if s.Name == "lock" {
			t.Fatalf("the lock was asked for an invalid target: %+v", s)
		}
	}
}

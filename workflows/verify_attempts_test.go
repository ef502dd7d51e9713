package workflows

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// timers records the durations of the timers a host run started on its
// queue starts, and counts the verify-attempts version asks.
func (h *harness) timers() (*[]time.Duration, *int) {
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: HostQueue("web-1")})
	var ds []time.Duration
	asks := 0
	h.env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { ds = append(ds, d) })
	h.env.OnGetVersion(verifyChange, workflow.DefaultVersion, 1).Run(func(mock.Arguments) { asks++ }).Return(workflow.Version(1)).Maybe()
	return &ds, &asks
}

func verifyStep(t *testing.T, res DeployResult, name contract.Step) Step {
	t.Helper()
	var found []Step
	for _, s := range res.Steps {
		if s.Name == string(name) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s step, got %+v", name, res.Steps)
	}
	return found[0]
}

// A verify that fails then passes: one local activity per attempt, a timer
// between two, the backoff doubling up to its cap; one step, timed from the
// first attempt to the last, naming the attempt that passed.
func TestVerifyAttemptsAreTimersThatGrowToTheCap(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	timers, asks := h.timers()
	var at []time.Time
	h.verify = func(in activities.VerifyInput, n int) error {
		at = append(at, h.env.Now())
		if n < 5 {
			return temporal.NewApplicationError("verify web-1:443: serves leaf old, want new", contract.VerifyMismatch)
		}
		return nil
	}
	req := testRequest()
	req.Target.Config.PostDeployVerifyAttempts = 6
	req.Target.Config.PostDeployVerifyBackoff = target.Duration(time.Second)
	req.Target.Config.PostDeployVerifyMaxBackoff = target.Duration(3 * time.Second)
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.Deployed)
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	if len(*timers) != len(want) {
		t.Fatalf("timers %v, want %v", *timers, want)
	}
	for i, d := range want {
		if (*timers)[i] != d {
			t.Fatalf("timer %d: %v, want %v (all: %v)", i, (*timers)[i], d, *timers)
		}
		if gap := at[i+1].Sub(at[i]); gap != d {
			t.Fatalf("attempt %d came %v after the one before, want %v", i+2, gap, d)
		}
	}
	if !h.local["Verify"] {
		t.Fatal("verify did not run as a local activity")
	}
	if *asks != 1 {
		t.Fatalf("the version was asked %d times, want once", *asks)
	}
	s := verifyStep(t, res, contract.StepVerify)
	if s.Failed || s.Detail != "served "+newLeaf+" (attempt 5)" || s.Ms != 9000 {
		t.Fatalf("verify step %+v", s)
	}
}

// Every attempt fails: exactly post_deploy_verify_attempts of them, then
// the rollback; its own verify passes at once.
func TestVerifyAttemptsStopAtTheLimit(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	timers, _ := h.timers()
	h.verify = func(in activities.VerifyInput, _ int) error {
		if in.Expected == newLeaf {
			return temporal.NewApplicationError("verify web-1:443: serves leaf old, want new", contract.VerifyMismatch)
		}
		return nil
	}
	req := testRequest()
	req.Target.Config.PostDeployVerifyAttempts = 3
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.VerifyFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Verify", "Verify", "Verify", "Rollback", "Reload", "Verify")
	if got := *timers; len(got) != 2 || got[0] != time.Second || got[1] != 2*time.Second {
		t.Fatalf("timers %v, want [1s 2s]", got)
	}
	if s := verifyStep(t, res, contract.StepVerify); !s.Failed || !strings.Contains(s.Detail, "serves leaf old, want new") {
		t.Fatalf("verify step %+v", s)
	}
	if !strings.Contains(res.Error, "serves leaf old, want new") {
		t.Fatalf("error %q", res.Error)
	}
}

// A non-retryable failure ends the step at its first attempt: no timer.
func TestVerifyNonRetryableStopsAtOnce(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	timers, asks := h.timers()
	h.verify = func(in activities.VerifyInput, _ int) error {
		if in.Expected == newLeaf {
			return temporal.NewNonRetryableApplicationError("verify: no such connector", contract.InvalidInput, nil)
		}
		return nil
	}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.VerifyFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Verify", "Rollback", "Reload", "Verify")
	if len(*timers) != 0 || *asks != 0 {
		t.Fatalf("timers %v, version asked %d times", *timers, *asks)
	}
}

// The common case costs nothing: a first attempt that passes starts no
// timer and asks no version (no marker, no search attribute upsert).
func TestVerifyFirstAttemptPassesWithoutTimerOrVersion(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	timers, asks := h.timers()
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.Deployed)
	if len(*timers) != 0 || *asks != 0 {
		t.Fatalf("timers %v, version asked %d times", *timers, *asks)
	}
	if s := verifyStep(t, res, contract.StepVerify); s.Detail != "served "+newLeaf+" (attempt 1)" {
		t.Fatalf("verify step %+v", s)
	}
}

// rollback-verify is retried the same way: the old leaf served again on
// its second attempt is a rollback that worked (VerifyFailed, not
// RollbackFailed).
func TestRollbackVerifyAttempts(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	timers, _ := h.timers()
	oldTries := 0
	h.verify = func(in activities.VerifyInput, _ int) error {
		if in.Expected == newLeaf {
			return temporal.NewNonRetryableApplicationError("verify web-1:443: refused", contract.VerifyMismatch, nil)
		}
		if oldTries++; oldTries == 1 {
			return temporal.NewApplicationError("verify web-1:443: serves leaf new, want old", contract.VerifyMismatch)
		}
		return nil
	}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.VerifyFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Verify", "Rollback", "Reload", "Verify", "Verify")
	if got := *timers; len(got) != 1 || got[0] != time.Second {
		t.Fatalf("timers %v, want [1s]", got)
	}
	if s := verifyStep(t, res, contract.StepRollbackVerify); s.Failed || s.Ms != 1000 {
		t.Fatalf("rollback-verify step %+v", s)
	}
}

// A history recorded before the loop (DefaultVersion) holds the first local
// activity's result after its own retries: that result is final, no timer.
func TestVerifyBeforeTheLoopTakesTheFirstResult(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: HostQueue("web-1")})
	var timers []time.Duration
	h.env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers = append(timers, d) })
	h.env.OnGetVersion(verifyChange, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	h.verify = func(in activities.VerifyInput, _ int) error {
		if in.Expected == newLeaf {
			return temporal.NewApplicationError("verify web-1:443: serves leaf old, want new", contract.VerifyMismatch)
		}
		return nil
	}
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.VerifyFailed)
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Verify", "Rollback", "Reload", "Verify")
	if len(timers) != 0 {
		t.Fatalf("timers %v", timers)
	}
}

package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// newFleetDeploying is newFleet with deploy in place of the fake
// DeployWorkflow.
func newFleetDeploying(t *testing.T, deploy func(*fleet, workflow.Context, DeployRequest) (DeployResult, error)) *fleet {
	s := &testsuite.WorkflowTestSuite{}
	f := &fleet{t: t, env: s.NewTestWorkflowEnvironment(), outcome: map[string]string{}, took: 10 * time.Second}
	f.env.RegisterWorkflowWithOptions(RolloutWorkflow, workflow.RegisterOptions{Name: contract.RolloutWorkflow})
	f.env.RegisterWorkflowWithOptions(NotifyWorkflow, workflow.RegisterOptions{Name: contract.NotifyWorkflow})
	f.env.RegisterWorkflowWithOptions(func(ctx workflow.Context, req DeployRequest) (DeployResult, error) { return deploy(f, ctx, req) },
		workflow.RegisterOptions{Name: contract.DeployWorkflow})
	f.env.RegisterActivity(a)
	f.env.OnActivity(a.GiveUp, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.GiveUpInput) (bool, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.giveUps = append(f.giveUps, in.WorkflowID)
		return !strings.Contains(in.WorkflowID, "/dead-"), nil
	}).Maybe()
	f.mockStall()
	return f
}

// cancelledResult runs req, cancels the rollout at `at` and returns its
// result (the details of its cancellation).
func (f *fleet) cancelledResult(req RolloutRequest, at time.Duration) RolloutResult {
	f.t.Helper()
	req.Material = material.Material{CertPEM: "cert", KeyPEM: "key"}
	f.env.RegisterDelayedCallback(func() { f.env.CancelWorkflow() }, at)
	f.env.SetTestTimeout(20 * time.Second)
	f.env.ExecuteWorkflow(contract.RolloutWorkflow, req)
	if !f.env.IsWorkflowCompleted() {
		f.t.Fatal("the cancelled rollout did not complete")
	}
	var ce *temporal.CanceledError
	if err := f.env.GetWorkflowError(); !errors.As(err, &ce) {
		f.t.Fatalf("want a cancelled rollout, got %v", err)
	}
	var res RolloutResult
	if err := ce.Details(&res); err != nil {
		f.t.Fatal(err)
	}
	return res
}

// A rollout cancelled with deploys in flight on hosts' queues (a host-wait
// timer armed) ends: it does not spin on a timer that, on a cancelled
// context, is ready at once (on main it never yields: the SDK's deadlock
// detector fails its workflow task for ever). A deploy past its plan does
// not obey the cancel: the rollout reports what each did.
func TestRolloutCancelWithDeploysInFlightEnds(t *testing.T) {
	f := newFleetDeploying(t, func(f *fleet, ctx workflow.Context, req DeployRequest) (DeployResult, error) {
		// Past the plan at once: the rest of the deploy ignores the cancel.
		ctx, _ = workflow.NewDisconnectedContext(ctx)
		return f.deploy(ctx, req)
	})
	// The canary 0–10s; web-02 and web-03 10–20s; the cancel at 15s.
	res := f.cancelledResult(RolloutRequest{Targets: targets(names("web-", 10)...), Batch: 2}, 15*time.Second)
	if len(f.started) != 3 {
		t.Fatalf("started %v", f.started)
	}
	for _, fl := range res.Failed {
		t.Errorf("%s reported %s (%s), but its deploy ended Deployed", fl.TargetID, fl.Outcome, fl.Error)
	}
	if res.Succeeded != 3 || res.NotStarted != 7 {
		t.Errorf("result %+v, want 3 succeeded, 7 not started", res)
	}
}

// A cancelled rollout waits for its deploys in flight to end; one whose
// host has no worker never reads its cancel request, so the rollout must
// still give it up once host_wait is over (HostUnavailable), not wait for a
// host that never comes.
func TestRolloutCancelledStillGivesUpDeadHost(t *testing.T) {
	f := newFleetDeploying(t, func(f *fleet, ctx workflow.Context, req DeployRequest) (DeployResult, error) {
		if strings.HasPrefix(req.Target.TargetID, "dead-") {
			// No worker: nothing reads the cancel.
			ctx, _ = workflow.NewDisconnectedContext(ctx)
		}
		return f.deploy(ctx, req)
	})
	f.took = time.Second
	res := f.cancelledResult(RolloutRequest{Targets: targets("web-01", "dead-02", "web-03"), Canary: intp(0), Batch: 3,
		MaxFailures: 5, HostWait: target.Duration(time.Minute)}, 5*time.Second)
	var failed []string
	for _, fl := range res.Failed {
		failed = append(failed, fl.TargetID+" "+fl.Outcome)
	}
	if strings.Join(failed, ",") != "dead-02 "+contract.HostUnavailable || res.Succeeded != 2 {
		t.Fatalf("failed %v, result %+v", failed, res)
	}
	if len(f.giveUps) != 1 {
		t.Fatalf("GiveUp asked for %v", f.giveUps)
	}
}

// A run continued as new carries the values its defaults gave it (batch,
// host_wait, continue_after, canary), not "absent": a later change to a
// default must not change what a running rollout's next runs do, nor how
// a recorded run replays.
func TestRolloutContinueAsNewPinsDefaults(t *testing.T) {
	f := newFleet(t)
	f.env.ExecuteWorkflow(contract.RolloutWorkflow, RolloutRequest{Targets: targets(names("web-", 6)...), ContinueAfter: 3,
		Material: material.Material{CertPEM: "cert", KeyPEM: "key"}})
	var can *workflow.ContinueAsNewError
	if !asCAN(f.env.GetWorkflowError(), &can) {
		t.Fatalf("want continue-as-new, got %v", f.env.GetWorkflowError())
	}
	var next RolloutRequest
	if err := decodeCAN(can, &next); err != nil {
		t.Fatal(err)
	}
	if next.Batch != DefaultRolloutBatch || next.HostWait.D() != DefaultHostWait || next.ContinueAfter != 3 || next.Canary == nil || *next.Canary != DefaultRolloutCanary {
		t.Fatalf("next run's batch %d, host_wait %s, continue_after %d, canary %v: want the defaults pinned", next.Batch, next.HostWait.D(), next.ContinueAfter, next.Canary)
	}
}

// A target whose deploy's workflow ID would pass the server's limit is
// refused, InvalidInput naming it, before any deploy starts: started, the
// server would fail the rollout's workflow task for ever.
func TestRolloutRefusesTargetIDTooLongForItsDeployID(t *testing.T) {
	f := newFleet(t)
	_, err := f.run(RolloutRequest{Targets: targets("web-01", strings.Repeat("l", 990))})
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), "targets[1]: target_id: is 990 characters") {
		t.Fatalf("err %v, want InvalidInput naming targets[1]'s target_id", err)
	}
	if len(f.started) != 0 {
		t.Fatalf("started %v", f.started)
	}
	g := newFleet(t)
	ts := targets("web-01", "web-02")
	ts[1].Host = strings.Repeat("h", 990)
	_, err = g.run(RolloutRequest{Targets: ts})
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), "targets[1]: host: is 990 characters") {
		t.Fatalf("err %v, want InvalidInput naming targets[1]'s host", err)
	}
	if len(g.started) != 0 {
		t.Fatalf("started %v", g.started)
	}
}

//go:build reviewdefects

package workflows

import (
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// Defects found in the review of issue 14 and not fixed: these tests fail,
// and their tag keeps them out of CI until they are.

// A host whose worker picked its deploy up and then died for good (the
// machine gone) holds its batch slot, and the rollout, for ever: the host
// wait is asked once, the answer "picked up" is final, and the deploy has
// no run timeout. The contract's "a target whose host has no worker counts
// as failed ... without stalling the batch" is not kept for it.
func TestRolloutHostThatDiesAfterPickup(t *testing.T) {
	f := newFleetDeploying(t, func(f *fleet, ctx workflow.Context, req DeployRequest) (DeployResult, error) {
		if req.Target.TargetID == "gone-02" {
			// Picked up (GiveUp says so), then nothing: the worker's machine
			// is gone; its workflow task never completes again.
			_ = workflow.Sleep(ctx, 30*24*time.Hour)
		}
		return f.deploy(ctx, req)
	})
	f.took = time.Second
	start := f.env.Now()
	res, err := f.run(RolloutRequest{Targets: targets("web-01", "gone-02", "web-03"), Canary: intp(0), Batch: 3,
		MaxFailures: 1, HostWait: target.Duration(time.Minute)})
	if took := f.env.Now().Sub(start); took > 24*time.Hour {
		t.Fatalf("the rollout took %s with a host wait of 1m (result %+v, %v)", took, res, err)
	}
	if len(res.Failed) != 1 || res.Failed[0].Outcome != contract.HostUnavailable {
		t.Fatalf("failed %+v", res.Failed)
	}
}

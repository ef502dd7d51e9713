package workflows

import (
	"fmt"
	"math"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/target"
)

// versionRenewRollout is the GetVersion change ID of a renewal that
// deploys as a rollout.
const versionRenewRollout = "renew-rollout"

// renewRollout deploys a renewal's certificate to the profile's targets as
// a rollout does (rollout.go): the canary first, which must succeed, then
// the others in batches, each a DeployWorkflow "deploy/<target>/renew-<request>"
// on its target's own queue; a failure past the profile's max_failures
// starts nothing new. Every deploy that ran is in res.Deploys, in the
// profile's order, and the targets never started are counted.
func renewRollout(ctx workflow.Context, p profile.Profile, m material.Material, hostWait target.Duration, res *RenewResult) {
	r, err := newRollout(ctx, RolloutRequest{
		Targets: p.Targets, Material: m, Canary: p.Rollout.Canary, Batch: p.Rollout.Batch,
		MaxFailures: p.Rollout.MaxFailures, HostWait: hostWait,
		// A renewal never continues as new: a profile's targets are its
		// whole fleet, bounded by the profile's own size.
		ContinueAfter: math.MaxInt,
	})
	if err != nil {
		res.Deploys = append(res.Deploys, RenewDeploy{DeployResult: DeployResult{Outcome: contract.InvalidInput, Error: errMessage(err)}})
		return
	}
	byIndex := make([]*RenewDeploy, len(p.Targets))
	r.childID = func(t target.Target) string { return fmt.Sprintf("deploy/%s/renew-%s", t.TargetID, res.RequestID) }
	r.onDone = func(i int, id string, dr DeployResult) { byIndex[i] = &RenewDeploy{WorkflowID: id, DeployResult: dr} }
	r.run(ctx)
	if r.halted() {
		// A renewal that halts tells the workflow worker's channels, as a
		// rollout does (its deploys told their own failures).
		r.notifyHalted(ctx, r.result(contract.RolloutHalted, r.haltReason()))
	}
	for _, d := range byIndex {
		if d != nil {
			res.Deploys = append(res.Deploys, *d)
		}
	}
	res.NotStarted = len(p.Targets) - r.next
}

package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
)

// InspectStep is the Summary of InspectWorkflow's one local activity.
const InspectStep = "inspect"

// InspectIDPrefix begins an InspectWorkflow's ID: "inspect/<target>/…".
const InspectIDPrefix = "inspect/"

// InspectWorkflow reads the leaf a target holds on disk (renewal's
// InspectDeployed, which the worker's policy checks like any step of the
// target) and returns it. `certctl status` starts it on the target's queue
// (queueFor: its host's worker, else "certctl"), because the CLI cannot run
// an activity itself; the read is a local activity on the worker that picks
// the workflow up, so it is one workflow task. It touches nothing: a worker
// that picks it up after certctl gave up on it (the run is then terminated)
// reads a file and nobody looks.
func InspectWorkflow(ctx workflow.Context, t target.Target) (renewal.Deployed, error) {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 3},
		Summary:             InspectStep,
	})
	var d renewal.Deployed
	if err := workflow.ExecuteLocalActivity(ctx, ra.InspectDeployed, t).Get(ctx, &d); err != nil {
		return renewal.Deployed{TargetID: t.TargetID}, err
	}
	return d, nil
}

// QueueFor is the queue a target's steps run on: its host's
// ("certctl-host-<host>"), else "certctl". InspectWorkflow is started there.
func QueueFor(t target.Target) string { return queueFor(t) }

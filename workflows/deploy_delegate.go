package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
)

// delegate runs the deploy as a host run on the target's queue, a child
// "<id>/host", and takes its result for its own. The host's worker must
// pick the run up within host_wait: past it, with no workflow task of the
// run ever started, the deploy ends HostUnavailable and the run is
// terminated with it (ParentClosePolicy) before it could touch anything (a
// run picked up that late gives itself up too, see hostDeploy).
func (d *deploy) delegate(ctx workflow.Context, req DeployRequest) {
	in := req
	in.Delegated = true
	id := workflow.GetInfo(ctx).WorkflowExecution.ID + contract.HostRunSuffix
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:          id,
		TaskQueue:           queueFor(req.Target),
		ParentClosePolicy:   enumspb.PARENT_CLOSE_POLICY_TERMINATE,
		WaitForCancellation: true,
		StaticSummary:       "host run of this deploy on " + queueFor(req.Target),
	})
	run := workflow.ExecuteChildWorkflow(cctx, contract.DeployWorkflow, in)
	// The timer is left to expire with the workflow when the run ends in
	// time: cancelling it would be one more event.
	deadline := workflow.NewTimer(ctx, d.hostWait)
	var err error
	done, waiting := false, true
	for !done {
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(run, func(f workflow.Future) {
			err = f.Get(ctx, &d.res)
			done = true
		})
		if waiting {
			sel.AddFuture(deadline, func(workflow.Future) {
				waiting = false
				if d.pickedUp(ctx, run) {
					return
				}
				d.end(contract.HostUnavailable, errors.New(HostUnavailableMessage(req.Target.Host, d.hostWait)+"; nothing was touched"))
				done = true
			})
		}
		sel.Select(ctx)
	}
	if err == nil {
		return
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Details(&d.res) == nil && d.res.Outcome != "" {
		return
	}
	// The run ended without a result of its own (terminated by a person,
	// say): what is known is said.
	d.res.TargetID = req.Target.TargetID
	d.end(contract.DeployFailed, fmt.Errorf("the host run %s ended without a result: %s", id, errMessage(err)))
}

// pickedUp says whether a worker of the host has started a workflow task of
// the run (asked of the server by an activity on this worker).
func (d *deploy) pickedUp(ctx workflow.Context, run workflow.ChildWorkflowFuture) bool {
	var we workflow.Execution
	if err := run.GetChildWorkflowExecution().Get(ctx, &we); err != nil {
		return false
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
		Summary:             "host-wait",
	})
	var started bool
	if err := workflow.ExecuteLocalActivity(lctx, a.PickedUp, activities.PickupInput{WorkflowID: we.ID, RunID: we.RunID}).Get(ctx, &started); err != nil {
		// Unknown is not absent: keep waiting for the run's own result.
		return true
	}
	return started
}

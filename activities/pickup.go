package activities

import (
	"context"
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// PickupInput names a host run.
type PickupInput struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

// PickedUp says whether a worker has started a workflow task of the run:
// a DeployWorkflow on the "certctl" queue asks it when host_wait is over
// and its host run has not ended. It runs on the workflow worker.
func (a *Activities) PickedUp(ctx context.Context, in PickupInput) (bool, error) {
	return PickedUp(ctx, a.Client, in.WorkflowID, in.RunID)
}

// PickedUp says whether a worker has started a workflow task of the run
// id/runID, from its history: what the deploy on "certctl" and certctl's
// own path ask once host_wait is over.
func PickedUp(ctx context.Context, c client.Client, id, runID string) (bool, error) {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return false, err
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED {
			return true, nil
		}
	}
	return false, nil
}

// GiveUpInput names a host run whose host_wait is over.
type GiveUpInput struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Reason is the termination's reason, for the run's history.
	Reason string `json:"reason"`
}

// GiveUp ends a host run no worker has picked up: it terminates the run
// unless a workflow task of it has started, and reports whether one had
// (true: the run goes on, its result will come). A run terminated this way
// never touched anything; one picked up an instant after the check gives
// itself up on its first workflow task, being past its host_wait (see
// workflows.hostDeploy), so the race touches nothing either. A rollout asks
// it of each deploy it started on a host's queue.
func (a *Activities) GiveUp(ctx context.Context, in GiveUpInput) (bool, error) {
	started, err := PickedUp(ctx, a.Client, in.WorkflowID, in.RunID)
	if err != nil || started {
		return started, err
	}
	err = a.Client.TerminateWorkflow(ctx, in.WorkflowID, in.RunID, in.Reason)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// Closed already (it ran after all, or someone ended it): its
		// result is on its way.
		return true, nil
	}
	return false, err
}

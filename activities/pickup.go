package activities

import (
	"context"

	enumspb "go.temporal.io/api/enums/v1"
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

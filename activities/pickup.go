package activities

import (
	"context"

	enumspb "go.temporal.io/api/enums/v1"
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
	it := a.Client.GetWorkflowHistory(ctx, in.WorkflowID, in.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
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

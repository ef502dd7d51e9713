package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
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
	picked, _, err := pickedUpSince(ctx, c, id, runID)
	return picked, err
}

// pickedUpSince is PickedUp, and when the run started (its
// WorkflowExecutionStarted event's time, the server's clock).
func pickedUpSince(ctx context.Context, c client.Client, id, runID string) (bool, time.Time, error) {
	var start time.Time
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return false, start, err
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			start = ev.GetEventTime().AsTime()
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			return true, start, nil
		}
	}
	return false, start, nil
}

// GiveUpInput names a host run whose host_wait is over.
type GiveUpInput struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Reason is the termination's reason, for the run's history.
	Reason string `json:"reason"`
	// HostWait is the run's own host_wait: GiveUp terminates it only once
	// that long has passed since the run started (by the server's clock),
	// whatever the asker's clock said.
	HostWait time.Duration `json:"host_wait,omitempty"`
}

// GiveUpTooEarly is the type of GiveUp's error for a run whose own
// host_wait is not over yet: ask again later.
const GiveUpTooEarly = "GiveUpTooEarly"

// giveUpSkew is what GiveUp allows between this worker's clock and the
// server's.
const giveUpSkew = time.Second

// GiveUp ends a host run no worker has picked up: it terminates the run
// unless a workflow task of it has started, and reports whether one had
// (true: the run goes on, its result will come). A run terminated this way
// never touched anything; one picked up an instant after the check gives
// itself up on its first workflow task, being past its host_wait (see
// workflows.hostDeploy), so the race touches nothing either. A rollout asks
// it of each deploy it started on a host's queue.
//
// The run gives itself up only when it was picked up past its own
// host_wait, counted from its own start: terminated sooner, a run picked up
// between the check and the termination would be killed half way through
// its deploy. So GiveUp refuses (GiveUpTooEarly) while the run's host_wait,
// from its WorkflowExecutionStarted event, is not over: the asker's idea of
// when the run started (its own clock, before the start was even sent) may
// be early.
func (a *Activities) GiveUp(ctx context.Context, in GiveUpInput) (bool, error) {
	started, at, err := pickedUpSince(ctx, a.Client, in.WorkflowID, in.RunID)
	if err != nil || started {
		return started, err
	}
	if age := time.Since(at); in.HostWait > 0 && age < in.HostWait+giveUpSkew {
		return false, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s started %s ago, its host_wait is %s: not given up yet",
			in.WorkflowID, age.Round(time.Millisecond), in.HostWait), GiveUpTooEarly, nil)
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

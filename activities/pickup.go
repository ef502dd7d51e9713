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

// StallInput names a host run a worker has picked up, and its host's
// queue.
type StallInput struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// Queue is the host's task queue: only the run's tasks there wait for
	// the host's worker (a notification's activity waits for another).
	Queue string `json:"queue"`
}

// StallReport is what Stall found.
type StallReport struct {
	// Waiting: a task of the run on the host's queue has waited, since
	// Since (the server's clock), for a worker to start or finish it with
	// none doing so. A run whose worker is alive never waits long: it
	// completes a workflow task at least every few seconds while a step
	// runs, and an activity it schedules is started at once.
	Waiting bool      `json:"waiting"`
	Since   time.Time `json:"since,omitempty"`
	// Task says which: "workflow task" or "activity <id>".
	Task string `json:"task,omitempty"`
	// Closed: the run has ended (its result is on its way to the asker).
	Closed bool `json:"closed,omitempty"`
}

// Stall says whether a host run a worker picked up is waiting for a
// worker, and since when: what a rollout asks of a deploy that was picked
// up and has not ended, so as to stop waiting for one whose host's worker
// died for good (HostLost). It reads the run's history, as PickedUp does:
// a workflow task scheduled and not completed since (its worker was
// killed while it ran one, or before it was handed the next: the task
// times out and is scheduled again, never started), or an activity
// scheduled on the host's queue and not closed, which the run's
// description says no worker has started (a commit or rollback whose
// worker died is retried there, and waits however long). It never
// changes the run.
func (a *Activities) Stall(ctx context.Context, in StallInput) (StallReport, error) {
	return Stall(ctx, a.Client, in)
}

// Stall is the activity's body, for any client.
func Stall(ctx context.Context, c client.Client, in StallInput) (StallReport, error) {
	var rep StallReport
	// wftSince is when the first workflow task after the last completed
	// one was scheduled; zero while none is pending.
	var wftSince time.Time
	open := map[int64]string{} // scheduled event ID -> activity ID, on in.Queue
	it := c.GetWorkflowHistory(ctx, in.WorkflowID, in.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return rep, err
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			if wftSince.IsZero() {
				wftSince = ev.GetEventTime().AsTime()
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			wftSince = time.Time{}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			if at := ev.GetActivityTaskScheduledEventAttributes(); at.GetTaskQueue().GetName() == in.Queue {
				open[ev.GetEventId()] = at.GetActivityId()
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			delete(open, ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
			delete(open, ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			delete(open, ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId())
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
			delete(open, ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId())
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
			enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
			rep.Closed = true
			return rep, nil
		}
	}
	if !wftSince.IsZero() {
		rep.Waiting, rep.Since, rep.Task = true, wftSince, "workflow task"
		return rep, nil
	}
	if len(open) == 0 {
		return rep, nil
	}
	ids := map[string]bool{}
	for _, id := range open {
		ids[id] = true
	}
	d, err := c.DescribeWorkflowExecution(ctx, in.WorkflowID, in.RunID)
	if err != nil {
		return rep, err
	}
	for _, pa := range d.GetPendingActivities() {
		if !ids[pa.GetActivityId()] || pa.GetState() != enumspb.PENDING_ACTIVITY_STATE_SCHEDULED || pa.GetScheduledTime() == nil {
			continue
		}
		// Scheduled, not started: a first attempt no worker took, or a
		// retry after its worker's heartbeat stopped.
		since := pa.GetScheduledTime().AsTime()
		if !rep.Waiting || since.Before(rep.Since) {
			rep.Waiting, rep.Since, rep.Task = true, since, "activity "+pa.GetActivityId()
		}
	}
	return rep, nil
}

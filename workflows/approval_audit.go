package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/renewal"
)

// earlierRuns asks visibility, by a local activity on the worker's client,
// for the other runs of this workflow ID, newest first.
func earlierRuns(ctx workflow.Context, info *workflow.Info) ([]activities.EarlierRun, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 2 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second},
	})
	var runs []activities.EarlierRun
	err := workflow.ExecuteLocalActivity(lctx, a.EarlierRuns, activities.EarlierRunsInput{
		WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, StateAttribute: ApprovalStateKey.GetName(),
	}).Get(ctx, &runs)
	if err != nil {
		return nil, fmt.Errorf("cannot tell whether %s was used before (visibility did not answer): nothing is pending; start it again later: %w",
			info.WorkflowExecution.ID, err)
	}
	return runs, nil
}

// refuseReuse ends a run started under a request ID already used: nothing
// pending, the refusal audited, the run failed as RequestClosed naming the
// earlier run and its state.
func (g *gate) refuseReuse(ctx workflow.Context, earlier activities.EarlierRun) (ApprovalStatus, error) {
	state := earlier.Status
	if earlier.State != "" {
		state = earlier.State + ", " + earlier.Status
	}
	reason := fmt.Sprintf("request %s (%s) was already used by run %s (%s, started %s): a closed request ID stays closed; ask again under a new request_id",
		g.status.RequestID, g.wfID, earlier.RunID, state, earlier.StartTime.UTC().Format(time.RFC3339))
	now := workflow.Now(ctx)
	s := &g.status
	s.State, s.ClosedAt = StateRefused, &now
	s.Refused = append(s.Refused, Refusal{Actor: s.RequestedBy, At: now, Reason: reason, Via: "start"})
	_ = workflow.UpsertTypedSearchAttributes(ctx, ApprovalStateKey.ValueSet(StateRefused), ApprovalProfileKey.ValueSet(s.ProfileID))
	workflow.GetLogger(ctx).Warn("approval request ID reused: refused", "request_id", s.RequestID, "earlier_run", earlier.RunID, "earlier_state", state)
	seq := g.record(ctx, audit.Event{Event: audit.Refused, Actor: s.RequestedBy, Reason: reason, Via: "start"})
	_ = workflow.Await(ctx, func() bool { return g.audited >= seq && workflow.AllHandlersFinished(ctx) })
	return g.snapshot(), temporal.NewNonRetryableApplicationError(reason, contract.RequestClosed, nil, earlier)
}

// record queues an audit event, filling what every event carries, and
// returns its sequence number.
func (g *gate) record(ctx workflow.Context, ev audit.Event) int {
	g.seq++
	s := &g.status
	ev.ID = fmt.Sprintf("%s:%s#%d", g.wfID, g.runID, g.seq)
	ev.Time = workflow.Now(ctx).UTC()
	ev.RequestID, ev.WorkflowID, ev.RunID = s.RequestID, g.wfID, g.runID
	ev.ProfileID, ev.State, ev.RequestedBy = s.ProfileID, s.State, s.RequestedBy
	ev.Subject, ev.CertID = s.Subject, s.CertID
	if s.State != StatePending && s.ClosedAt != nil && ev.Event != audit.Refused && ev.Event != audit.Requested {
		ev.PendingSeconds = s.ClosedAt.Sub(s.RequestedAt).Seconds()
	}
	g.queue = append(g.queue, ev)
	return g.seq
}

// startAuditor writes queued events in order, one activity each: the log's
// lines follow the history's order.
func (g *gate) startAuditor(ctx workflow.Context) {
	opts := workflow.ActivityOptions{
		TaskQueue:           contract.TaskQueue,
		StartToCloseTimeout: 30 * time.Second,
		// The audit line must be written: retry until it is (the pending
		// activity and its last error show in the Web UI).
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			_ = workflow.Await(ctx, func() bool { return len(g.queue) > 0 })
			ev := g.queue[0]
			var res renewal.AuditResult
			if err := workflow.ExecuteActivity(actx, ra.Audit, ev).Get(ctx, &res); err != nil {
				workflow.GetLogger(ctx).Error("audit event not written", "id", ev.ID, "error", err)
			}
			g.queue = g.queue[1:]
			g.audited++
		}
	})
}

var ra *renewal.Activities

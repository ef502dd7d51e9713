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
	"github.com/certctl/certctl/target"
)

// inFlight is one deploy a rollout started and waits for.
type inFlight struct {
	// index numbers its target in the whole rollout.
	index int
	id    string
	start time.Time
	child workflow.ChildWorkflowFuture
	// deadline is when its host_wait is over, if no worker has picked it
	// up by then; zero once it is known to have been picked up, or for an
	// agentless target (this very worker runs it).
	deadline time.Time
	// givenUp is the HostUnavailable message once the rollout gave the
	// deploy up.
	givenUp string
	// stallCheck is when the rollout next asks whether the deploy, picked
	// up, is waiting for its host's worker (hostLostChange); zero when it
	// is not watched.
	stallCheck time.Time
	// lost is the HostLost message once the rollout stopped waiting for
	// the deploy: it was counted then, and its end, if it comes while the
	// rollout runs, changes nothing.
	lost string
}

// hostLostChange is the GetVersion change ID under which a rollout stops
// waiting for a deploy whose host's worker picked it up and then died for
// good: version 1 asks Stall of each picked-up deploy every stall_after
// and counts one waiting longer than that HostLost. Rollouts recorded
// before it wait for such a deploy as long as it runs.
const (
	hostLostChange  = "rollout-host-lost"
	hostLostVersion = workflow.Version(1)
)

// RolloutDeployID is the workflow ID of a rollout's deploy of a target,
// beside `certctl deploy`'s "deploy/<target>/<stamp>" and a renewal's
// "deploy/<target>/renew-<request>".
func RolloutDeployID(rolloutID, targetID string) string {
	return fmt.Sprintf("deploy/%s/rollout-%s", targetID, rolloutID)
}

// MaxWorkflowIDLength is the longest workflow ID the Temporal server takes
// (its limit.maxIDLength, 1,000 unless its operator changed it; task queue
// names too). A child started with a longer one is not refused as a child: the server fails the
// rollout's workflow task (BadStartChildExecutionAttributes), for ever.
const MaxWorkflowIDLength = 1000

// CheckRolloutDeployID refuses a target whose deploy in rollout rolloutID
// the server would refuse to start: its workflow ID, or its host's task
// queue, longer than the server takes.
func CheckRolloutDeployID(rolloutID string, t target.Target) error {
	if n := len(RolloutDeployID(rolloutID, t.TargetID)); n > MaxWorkflowIDLength {
		return contract.Invalid("target_id", fmt.Sprintf("is %d characters: its deploy's workflow ID (deploy/<target_id>/rollout-<id>) would be %d, more than the %d the server takes: give it a shorter target_id",
			len(t.TargetID), n, MaxWorkflowIDLength))
	}
	if n := len(queueFor(t)); n > MaxWorkflowIDLength {
		return contract.Invalid("host", fmt.Sprintf("is %d characters: its task queue (%s<host>) would be %d, more than the %d the server takes: give a shorter host",
			len(t.Host), contract.HostQueuePrefix, n, MaxWorkflowIDLength))
	}
	return nil
}

// start starts the next target's deploy: a DeployWorkflow on the target's
// own queue, the host run, found by CertctlTarget from its start. It is
// abandoned, not terminated, if the rollout ends: a deploy finishes or
// rolls back on its own.
func (r *rollout) start(ctx workflow.Context) {
	t := r.req.Targets[r.next]
	f := &inFlight{index: r.c.Offset + r.next, id: r.childID(t), start: workflow.Now(ctx)}
	r.next++
	r.started++
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            f.id,
		TaskQueue:             queueFor(t),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		TypedSearchAttributes: temporal.NewSearchAttributes(TargetKey.ValueSet(t.TargetID)),
		StaticSummary:         fmt.Sprintf("rollout %s: %s", r.id, t.TargetID),
	})
	f.child = workflow.ExecuteChildWorkflow(cctx, contract.DeployWorkflow, DeployRequest{
		Target: t, Material: r.req.Material, DryRun: r.req.DryRun, ForceValidity: r.req.ForceValidity,
		HostWait: target.Duration(r.hostWait), HeartbeatTimeout: r.req.HeartbeatTimeout,
	})
	if queueFor(t) != contract.TaskQueue {
		f.deadline = f.start.Add(r.hostWait + hostWaitMargin(r.hostWait))
	}
	r.flight = append(r.flight, f)
	r.sel.AddFuture(f.child, func(fu workflow.Future) { r.finished(ctx, f, fu) })
}

// hostWaitMargin is how long after a deploy's own host_wait the rollout
// asks whether it was picked up: a run picked up later than its host_wait
// gives itself up on its first workflow task, so a run the rollout finds
// not picked up can be terminated without a race.
func hostWaitMargin(wait time.Duration) time.Duration { return time.Second + wait/20 }

// finished records a deploy that ended.
func (r *rollout) finished(ctx workflow.Context, f *inFlight, fu workflow.Future) {
	if f.lost != "" {
		// Counted HostLost already, and no longer in flight: its worker
		// came back and it ended; its own result says how.
		return
	}
	var dr DeployResult
	err := fu.Get(ctx, &dr)
	t := r.req.Targets[f.index-r.c.Offset]
	switch {
	case f.givenUp != "":
		dr = DeployResult{TargetID: t.TargetID, Outcome: contract.HostUnavailable, Error: f.givenUp}
	case err != nil:
		dr = childResult(err, t.TargetID)
	}
	for i, g := range r.flight {
		if g == f {
			r.flight = append(r.flight[:i], r.flight[i+1:]...)
			break
		}
	}
	r.record(f, dr, workflow.Now(ctx).Sub(f.start).Milliseconds())
}

// childResult is a failed child deploy's result: the DeployResult its
// failure carries, else (terminated, timed out) DeployFailed with what is
// known.
func childResult(err error, targetID string) DeployResult {
	var dr DeployResult
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Details(&dr) == nil && dr.Outcome != "" {
		return dr
	}
	return DeployResult{TargetID: targetID, Outcome: contract.DeployFailed, Error: errMessage(err)}
}

// watch arms the host-wait timer for the earliest deadline of the deploys
// in flight, unless one is armed: a rollout keeps a single timer, however
// many deploys it waits for.
func (r *rollout) watch(ctx workflow.Context) {
	if r.watching {
		return
	}
	ctx = r.hostWaitCtx(ctx)
	var next time.Time
	for _, f := range r.flight {
		if !f.deadline.IsZero() && f.givenUp == "" && (next.IsZero() || f.deadline.Before(next)) {
			next = f.deadline
		}
		if !f.stallCheck.IsZero() && (next.IsZero() || f.stallCheck.Before(next)) {
			next = f.stallCheck
		}
	}
	if next.IsZero() {
		return
	}
	r.watching = true
	timer := workflow.NewTimer(ctx, max(next.Sub(workflow.Now(ctx)), time.Second))
	r.sel.AddFuture(timer, func(workflow.Future) {
		r.watching = false
		r.checkHosts(ctx)
	})
}

// hostWaitCtx is the context of the host-wait timer and its checks: the
// run's, until the rollout is cancelled, then one the cancel does not
// reach. A cancelled rollout still waits for its deploys in flight to end
// (a child's future resolves only when it closes), and one whose host has
// no worker never reads its cancel request: the host wait must go on
// giving such deploys up. (On the cancelled context a timer is ready at
// once and its callback armed the next, the workflow spinning without
// yielding: the SDK's deadlock error, for ever.) Before a cancel the timer
// and its checks are what they always were, so recorded histories replay.
func (r *rollout) hostWaitCtx(ctx workflow.Context) workflow.Context {
	if ctx.Err() == nil {
		return ctx
	}
	if r.afterCancel == nil {
		r.afterCancel, _ = workflow.NewDisconnectedContext(ctx)
	}
	return r.afterCancel
}

// checkHosts asks, of each deploy whose host_wait is over, whether its
// host's worker picked it up; one that was not is terminated (GiveUp) and
// counts as HostUnavailable when its end arrives.
func (r *rollout) checkHosts(ctx workflow.Context) {
	ctx = r.hostWaitCtx(ctx)
	now := workflow.Now(ctx)
	var due []*inFlight
	var checks []workflow.Future
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		Summary:             "host-wait",
	})
	for _, f := range r.flight {
		if f.deadline.IsZero() || f.givenUp != "" || now.Before(f.deadline) {
			continue
		}
		var we workflow.Execution
		if err := f.child.GetChildWorkflowExecution().Get(ctx, &we); err != nil {
			// It never started (the start itself failed): its future
			// carries that.
			f.deadline = time.Time{}
			continue
		}
		t := r.req.Targets[f.index-r.c.Offset]
		due = append(due, f)
		checks = append(checks, workflow.ExecuteLocalActivity(lctx, a.GiveUp, activities.GiveUpInput{
			WorkflowID: we.ID, RunID: we.RunID, Reason: hostUnavailable(t.Host, r.hostWait), HostWait: r.hostWait,
		}))
	}
	for i, c := range checks {
		var picked bool
		switch err := c.Get(ctx, &picked); {
		case err != nil:
			// Unknown is not absent, and too early (GiveUpTooEarly) is not
			// yet: ask again later.
			due[i].deadline = now.Add(hostWaitMargin(r.hostWait))
		case picked:
			due[i].deadline = time.Time{}
			if r.watchesLostHosts(ctx) {
				due[i].stallCheck = now.Add(r.stallAfter)
			}
		default:
			due[i].givenUp = hostUnavailable(r.req.Targets[due[i].index-r.c.Offset].Host, r.hostWait)
		}
	}
	r.checkStalls(ctx, now, lctx)
}

// watchesLostHosts says whether this run stops waiting for a deploy whose
// host's worker was lost (hostLostChange), asked once, when the first
// deploy is known picked up.
func (r *rollout) watchesLostHosts(ctx workflow.Context) bool {
	if !r.asked {
		r.asked = true
		r.hostLost = workflow.GetVersion(ctx, hostLostChange, workflow.DefaultVersion, hostLostVersion)
	}
	return r.hostLost >= hostLostVersion
}

// checkStalls asks, of each picked-up deploy whose stall check is due,
// whether a task of it has waited for its host's worker (Stall). One that
// has waited stall_after or longer counts as failed, HostLost, and leaves
// the flight, freeing its slot: it is never terminated (it may be past
// commit), and finishes or rolls back when its worker returns. One waiting
// less is asked again once it would have waited that long; one not
// waiting, stall_after from now. The waits are the server's clock against
// the workflow's, which is the server's too.
func (r *rollout) checkStalls(ctx workflow.Context, now time.Time, lctx workflow.Context) {
	var due []*inFlight
	var checks []workflow.Future
	for _, f := range r.flight {
		if f.stallCheck.IsZero() || now.Before(f.stallCheck) {
			continue
		}
		var we workflow.Execution
		if err := f.child.GetChildWorkflowExecution().Get(ctx, &we); err != nil {
			f.stallCheck = time.Time{}
			continue
		}
		due = append(due, f)
		checks = append(checks, workflow.ExecuteLocalActivity(lctx, a.Stall, activities.StallInput{
			WorkflowID: we.ID, RunID: we.RunID, Queue: queueFor(r.req.Targets[f.index-r.c.Offset]),
		}))
	}
	var lost []*inFlight
	for i, c := range checks {
		f := due[i]
		var rep activities.StallReport
		switch err := c.Get(ctx, &rep); {
		case err != nil:
			// Unknown is not lost: ask again.
			f.stallCheck = now.Add(hostWaitMargin(r.stallAfter))
		case rep.Closed:
			f.stallCheck = time.Time{} // its result is on its way
		case rep.Waiting && now.Sub(rep.Since) >= r.stallAfter:
			t := r.req.Targets[f.index-r.c.Offset]
			f.stallCheck, f.lost = time.Time{}, HostLostMessage(t.Host, t.TargetID, rep.Task, rep.Since, r.stallAfter)
			lost = append(lost, f)
		case rep.Waiting:
			f.stallCheck = rep.Since.Add(r.stallAfter + time.Second)
		default:
			f.stallCheck = now.Add(r.stallAfter)
		}
	}
	for _, f := range lost {
		for i, g := range r.flight {
			if g == f {
				r.flight = append(r.flight[:i], r.flight[i+1:]...)
				break
			}
		}
		t := r.req.Targets[f.index-r.c.Offset]
		r.record(f, DeployResult{TargetID: t.TargetID, Outcome: contract.HostLost, Error: f.lost}, now.Sub(f.start).Milliseconds())
	}
}

// HostLostMessage says why a rollout stopped waiting for a deploy (left
// running, never terminated), and what to do: contract.NextAction(HostLost)
// with the host and target named, within the 300 characters a rollout's
// output shows of it for short names.
func HostLostMessage(host, targetID, task string, since time.Time, stallAfter time.Duration) string {
	return fmt.Sprintf("HostLost: the worker on %s picked the deploy up, then stopped: its %s has waited on %s since %s (stall_after %s); "+
		"the deploy resumes when the worker on %s returns; check it with certctl status --target %s",
		host, task, HostQueue(host), since.UTC().Format(time.RFC3339), stallAfter, host, targetID)
}

// hostUnavailable says why a deploy was given up, and what to do.
func hostUnavailable(host string, wait time.Duration) string {
	return HostUnavailableMessage(host, wait) + "; nothing was touched"
}

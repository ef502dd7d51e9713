package lock

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// The per-target lock of "target-lock" version 1, kept for deploys that
// started under it; new deploys take their host's file lock (files.go).
//
// One deploy per target at a time (DESIGN promise 6). Each target has a lock
// workflow, "lock/<target_id>", that grants the target to one deploy at a
// time in the order the requests reached it. A deploy asks with
// SignalWithStart (a local activity, so the lock starts on first use), waits
// for the grant signal, and releases when it ends. Because the lock lives in
// DeployWorkflow itself, a deploy started from the temporal CLI waits its
// turn as well as one started by certctl.

// DefaultLease is how often the lock checks that its holder still runs:
// a terminated workflow runs no release.
const DefaultLease = 10 * time.Minute

// TargetLockID names the lock of a target.
func TargetLockID(targetID string) string { return "lock/" + targetID }

// TargetState is TargetLockWorkflow's input and what it carries across
// continue-as-new.
type TargetState struct {
	TargetID string          `json:"target_id"`
	Holder   *Request        `json:"holder,omitempty"`
	Queue    []Request       `json:"queue,omitempty"`
	Lease    target.Duration `json:"lease,omitempty"`
}

// lockIdle is how long an unused lock waits for a new request before it ends.
const lockIdle = 5 * time.Minute

// lockGrantsPerRun bounds a lock's history before it continues as new.
const lockGrantsPerRun = 200

// TargetLockWorkflow grants one target to one deploy at a time, first come
// first served. Query "state" shows the holder and the queue.
func TargetLockWorkflow(ctx workflow.Context, st TargetState) error {
	lease, acquire, release, err := serve(ctx, &st, st.Lease)
	if err != nil {
		return err
	}
	grants := 0
	for {
		// Grant while the target is free and someone waits.
		for st.Holder == nil && len(st.Queue) > 0 {
			next := st.Queue[0]
			st.Queue = st.Queue[1:]
			err := workflow.SignalExternalWorkflow(ctx, next.WorkflowID, next.RunID, contract.LockGrantedSignal, nil).Get(ctx, nil)
			if err != nil {
				// The requester is gone; the next one gets it.
				workflow.GetLogger(ctx).Warn("lock: requester gone", "workflow_id", next.WorkflowID, "error", err)
				continue
			}
			st.Holder = &next
			grants++
		}
		if st.Holder == nil && grants >= lockGrantsPerRun && !pending(acquire, release) {
			return workflow.NewContinueAsNewError(ctx, TargetLockWorkflow, st)
		}
		s := workflow.NewSelector(ctx)
		s.AddReceive(acquire, func(c workflow.ReceiveChannel, _ bool) {
			var r Request
			c.Receive(ctx, &r)
			if !st.holds(r) && !st.queued(r) {
				st.Queue = append(st.Queue, r)
			}
		})
		s.AddReceive(release, func(c workflow.ReceiveChannel, _ bool) {
			var r Request
			c.Receive(ctx, &r)
			if st.holds(r) {
				st.Holder = nil
				return
			}
			st.dequeue(r) // released before it was granted: it gave up
		})
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		wait := lockIdle
		if st.Holder != nil {
			wait = lease
		}
		expired := false
		s.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) { expired = true })
		s.Select(ctx)
		cancelTimer()
		if !expired {
			continue
		}
		if st.Holder != nil {
			// The lease only asks whether the holder still runs: a deploy
			// waiting hours for its host keeps the target; a terminated one
			// (which ran no release) frees it.
			err := workflow.SignalExternalWorkflow(ctx, st.Holder.WorkflowID, "", contract.LockPingSignal, nil).Get(ctx, nil)
			if err != nil {
				workflow.GetLogger(ctx).Warn("lock: holder is gone; granting the next deploy", "holder", st.Holder.WorkflowID, "error", err)
				st.Holder = nil
			}
			continue
		}
		if len(st.Queue) == 0 && !pending(acquire, release) {
			return nil // idle: the next request starts a fresh lock
		}
	}
}

// holds matches on the workflow ID alone: deploy IDs are unique, and a reset
// deploy (a new run of the same ID) must still be able to release.
func (st *TargetState) holds(r Request) bool {
	return st.Holder != nil && st.Holder.WorkflowID == r.WorkflowID
}

func (st *TargetState) queued(r Request) bool {
	for _, q := range st.Queue {
		if q.WorkflowID == r.WorkflowID && q.RunID == r.RunID {
			return true
		}
	}
	return false
}

func (st *TargetState) dequeue(r Request) {
	for i, q := range st.Queue {
		if q.WorkflowID == r.WorkflowID && q.RunID == r.RunID {
			st.Queue = append(st.Queue[:i], st.Queue[i+1:]...)
			return
		}
	}
}

// AcquireTarget asks for the target's lock and waits for the grant; the
// returned func releases it (also when ctx is canceled). Version 1 of
// "target-lock"; new deploys use AcquireFiles.
func AcquireTarget(ctx workflow.Context, targetID string) (release func(), err error) {
	info := workflow.GetInfo(ctx)
	req := Request{TargetID: targetID, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID}
	return awaitGrant(ctx, TargetLockID(targetID), req, la.RequestTargetLock, req)
}

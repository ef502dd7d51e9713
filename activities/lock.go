package activities

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"

	"github.com/certctl/certctl/lock"
)

// LockInput is Lock's and Unlock's input. The keys are derived here, on
// the host, from the target (lock.Keys): its ID and every file it writes.
type LockInput struct {
	Request
}

// LockResult says whether the deploy holds its keys and, when not, which
// deploys are in its way.
type LockResult struct {
	Granted bool     `json:"granted"`
	Keys    []string `json:"keys"`
	// Ticket is the deploy's place in the host's line: grants of shared
	// keys go in ticket order.
	Ticket     uint64   `json:"ticket"`
	WaitingFor []string `json:"waiting_for,omitempty"`
}

// Lock takes the deploy's keys in this host's lease table
// ($CERTCTL_STATE_DIR/locks.json): granted when no other deploy holds one
// of them or asked for one before; otherwise the deploy keeps its place in
// line and asks again later. A deploy whose workflow no longer runs loses
// its lease to the next that asks. The workflow (the host run) is the
// lease's owner: the same deploy asking again, after its workflow task was
// retried, holds it still.
func (a *Activities) Lock(ctx context.Context, in LockInput) (LockResult, error) {
	keys := lock.Keys(in.Target)
	res := LockResult{Keys: keys}
	t, me := a.leases(), ownerOf(ctx)
	granted, blockers, err := t.Acquire(ctx, me, keys, time.Now(), a.alive)
	if err != nil {
		return res, fmt.Errorf("lock %s: %w", in.Target.TargetID, err)
	}
	res.Granted = granted
	for _, b := range blockers {
		res.WaitingFor = append(res.WaitingFor, b.Owner.WorkflowID)
		if b.AliveError != "" {
			activity.GetLogger(ctx).Warn("lock: could not tell whether a deploy in the way still runs", "blocker", b.String())
		}
	}
	if granted {
		// The ticket says the order the host granted its deploys in.
		leases, err := t.Leases()
		if err != nil {
			return res, fmt.Errorf("lock %s: %w", in.Target.TargetID, err)
		}
		for _, l := range leases {
			if l.Owner == me {
				res.Ticket = l.Ticket
			}
		}
	}
	return res, nil
}

// Unlock releases the deploy's lease; releasing one not held is no error.
func (a *Activities) Unlock(ctx context.Context, in LockInput) error {
	if err := a.leases().Release(ownerOf(ctx)); err != nil {
		return fmt.Errorf("unlock %s: %w", in.Target.TargetID, err)
	}
	return nil
}

func (a *Activities) leases() lock.Table {
	return lock.Table{Path: filepath.Join(a.stateDir(), "locks.json")}
}

func ownerOf(ctx context.Context) lock.Owner {
	we := activity.GetInfo(ctx).WorkflowExecution
	return lock.Owner{WorkflowID: we.ID, RunID: we.RunID}
}

// alive says whether a lease's owner still runs, as the server knows it.
func (a *Activities) alive(ctx context.Context, o lock.Owner) (bool, error) {
	if a.Client == nil {
		return true, errors.New("no Temporal client to ask whether the lease's deploy still runs")
	}
	resp, err := a.Client.DescribeWorkflowExecution(ctx, o.WorkflowID, o.RunID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return false, nil
	case err != nil:
		return true, err
	}
	return resp.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

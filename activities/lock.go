package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/client"
)

// LockRequest mirrors workflows.LockRequest (activities cannot import
// workflows): the deploy asking for a target.
type LockRequest struct {
	TargetID   string `json:"target_id"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

// Lock workflow names, shared with package workflows.
const (
	LockWorkflowType  = "TargetLockWorkflow"
	LockAcquireSignal = "acquire"
)

// RequestTargetLock sends the deploy's request to the target's lock
// workflow, starting the lock if it is not running (SignalWithStart is
// atomic). It runs as a local activity on the workflow worker; a retry sends
// the same request again, which the lock ignores.
func (a *Activities) RequestTargetLock(ctx context.Context, req LockRequest) error {
	if a == nil || a.Client == nil {
		return errors.New("RequestTargetLock needs a Temporal client (worker without --host)")
	}
	info := struct {
		TargetID string `json:"target_id"`
	}{req.TargetID}
	_, err := a.Client.SignalWithStartWorkflow(ctx, "lock/"+req.TargetID, LockAcquireSignal, req,
		client.StartWorkflowOptions{TaskQueue: "certctl"}, LockWorkflowType, info)
	return err
}

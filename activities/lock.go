package activities

import (
	"context"
	"errors"

	"github.com/certctl/certctl/contract"
	"go.temporal.io/sdk/client"
)

// LockRequest mirrors workflows.LockRequest (activities cannot import
// workflows): the deploy asking for a target, and since the file lock the
// keys it needs (its target and the canonical files it writes).
type LockRequest struct {
	TargetID   string   `json:"target_id"`
	WorkflowID string   `json:"workflow_id"`
	RunID      string   `json:"run_id"`
	Keys       []string `json:"keys,omitempty"`
}

// RequestTargetLock sends the deploy's request to the target's lock
// workflow, starting the lock if it is not running (SignalWithStart is
// atomic). It runs as a local activity on the workflow worker; a retry sends
// the same request again, which the lock ignores. Deploys from before the
// file lock (version 1 of "target-lock") still use it.
func (a *Activities) RequestTargetLock(ctx context.Context, req LockRequest) error {
	if a == nil || a.Client == nil {
		return errors.New("RequestTargetLock needs a Temporal client (worker without --host)")
	}
	info := struct {
		TargetID string `json:"target_id"`
	}{req.TargetID}
	_, err := a.Client.SignalWithStartWorkflow(ctx, "lock/"+req.TargetID, contract.LockAcquireSignal, req,
		client.StartWorkflowOptions{TaskQueue: "certctl"}, contract.TargetLockWorkflow, info)
	return err
}

// FileLockStart is RequestFileLock's input: which lock, and the request.
type FileLockStart struct {
	LockID  string      `json:"lock_id"`
	Scope   string      `json:"scope"`
	Request LockRequest `json:"request"`
}

// RequestFileLock sends the deploy's request to its host's file lock
// (FileLockWorkflow, ID in.LockID), starting the lock if it is not running.
// Like RequestTargetLock it is a local activity whose retry the lock ignores.
func (a *Activities) RequestFileLock(ctx context.Context, in FileLockStart) error {
	if a == nil || a.Client == nil {
		return errors.New("RequestFileLock needs a Temporal client (worker without --host)")
	}
	if in.LockID == "" {
		return errors.New("RequestFileLock: lock_id is empty")
	}
	state := struct {
		Scope string `json:"scope"`
	}{in.Scope}
	_, err := a.Client.SignalWithStartWorkflow(ctx, in.LockID, contract.LockAcquireSignal, in.Request,
		client.StartWorkflowOptions{TaskQueue: "certctl"}, contract.FileLockWorkflow, state)
	return err
}

// Package lock keeps deploys of the same files apart: the lock workflows,
// the local activity by which a deploy asks one (SignalWithStart, so the
// lock starts on first use), and the acquire/release helpers DeployWorkflow
// calls, side by side as in temporalio/samples-go's mutex.
//
// Two locks exist. FileLockWorkflow (version 2 of "target-lock", files.go)
// is the host's lock, granting sets of keys (the target and the files it
// writes). TargetLockWorkflow (version 1, target.go) is the per-target lock
// kept for deploys that started under it. Their registered names, the
// activity names RequestTargetLock and RequestFileLock and the JSON of
// their inputs are recorded in histories: they never change.
package lock

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// Registry is what workers, the test environment and the replayer share.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers both lock workflows under their contract names.
func Register(r Registry) {
	// TargetLockWorkflow stays for deploys of "target-lock" version 1.
	r.RegisterWorkflowWithOptions(TargetLockWorkflow, workflow.RegisterOptions{Name: contract.TargetLockWorkflow})
	r.RegisterWorkflowWithOptions(FileLockWorkflow, workflow.RegisterOptions{Name: contract.FileLockWorkflow})
}

// Request identifies the deploy that asks or releases: its target, and
// since the file lock the keys it needs (its target and the canonical files
// it writes).
type Request struct {
	TargetID   string   `json:"target_id"`
	WorkflowID string   `json:"workflow_id"`
	RunID      string   `json:"run_id"`
	Keys       []string `json:"keys,omitempty"`
}

// FileStart is RequestFileLock's input: which lock, and the request.
type FileStart struct {
	LockID  string  `json:"lock_id"`
	Scope   string  `json:"scope"`
	Request Request `json:"request"`
}

// Activities are the local activities by which a deploy asks for a lock.
// The workflow worker registers them with its own client.
type Activities struct {
	Client client.Client
}

// la names the local activities in workflow code; the worker's registered
// Activities (with a client) runs them.
var la *Activities

// RequestTargetLock sends the deploy's request to the target's lock
// workflow, starting the lock if it is not running (SignalWithStart is
// atomic). It runs as a local activity on the workflow worker; a retry sends
// the same request again, which the lock ignores. Deploys from before the
// file lock (version 1 of "target-lock") still use it.
func (a *Activities) RequestTargetLock(ctx context.Context, req Request) error {
	if a == nil || a.Client == nil {
		return errors.New("RequestTargetLock needs a Temporal client (worker without --host)")
	}
	info := struct {
		TargetID string `json:"target_id"`
	}{req.TargetID}
	_, err := a.Client.SignalWithStartWorkflow(ctx, TargetLockID(req.TargetID), contract.LockAcquireSignal, req,
		client.StartWorkflowOptions{TaskQueue: contract.TaskQueue}, contract.TargetLockWorkflow, info)
	return err
}

// RequestFileLock sends the deploy's request to its host's file lock
// (FileLockWorkflow, ID in.LockID), starting the lock if it is not running.
// Like RequestTargetLock it is a local activity whose retry the lock ignores.
func (a *Activities) RequestFileLock(ctx context.Context, in FileStart) error {
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
		client.StartWorkflowOptions{TaskQueue: contract.TaskQueue}, contract.FileLockWorkflow, state)
	return err
}

// awaitGrant sends the request with the local activity ask(in), waits for
// the grant signal and returns the func that releases lockID (also when ctx
// is canceled while waiting).
func awaitGrant(ctx workflow.Context, lockID string, req Request, ask, in any) (release func(), err error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second},
	})
	if err := workflow.ExecuteLocalActivity(lctx, ask, in).Get(ctx, nil); err != nil {
		return func() {}, err
	}
	release = func() {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		_ = workflow.SignalExternalWorkflow(dctx, lockID, "", contract.LockReleaseSignal, req).Get(dctx, nil)
	}
	granted := false
	s := workflow.NewSelector(ctx)
	s.AddReceive(workflow.GetSignalChannel(ctx, contract.LockGrantedSignal), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		granted = true
	})
	s.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	s.Select(ctx)
	if !granted {
		// Canceled while queued: leave the queue (a release before the grant
		// dequeues), so the next deploy is not kept waiting for us.
		release()
		return func() {}, temporal.NewCanceledError("canceled while waiting for " + lockID)
	}
	return release, nil
}

// serve sets up what both locks share: the lease (DefaultLease when
// unset), the query "state" answering *st, and the acquire and release
// signal channels.
func serve[S any](ctx workflow.Context, st *S, lease target.Duration) (time.Duration, workflow.ReceiveChannel, workflow.ReceiveChannel, error) {
	d := lease.D()
	if d <= 0 {
		d = DefaultLease
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryState, func() (S, error) { return *st, nil }); err != nil {
		return 0, nil, nil, err
	}
	return d, workflow.GetSignalChannel(ctx, contract.LockAcquireSignal), workflow.GetSignalChannel(ctx, contract.LockReleaseSignal), nil
}

// pending reports whether a signal waits on any of chs.
func pending(chs ...workflow.ReceiveChannel) bool {
	for _, c := range chs {
		if c.Len() > 0 {
			return true
		}
	}
	return false
}

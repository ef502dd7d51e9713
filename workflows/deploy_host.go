package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
)

// hostDeploy is the host run: DeployWorkflow on its target's own queue,
// started there by `certctl deploy` or by a DeployWorkflow on the "certctl"
// queue (version 3 of "target-lock"). Its steps run on the host's worker,
// most of them as local activities (step): one deploy is a few workflow
// tasks instead of one or two per step.
func hostDeploy(ctx workflow.Context, req DeployRequest) (DeployResult, error) {
	d := newDeploy(ctx, req, true)
	upsertTarget(ctx, req)
	info := workflow.GetInfo(ctx)
	// Whoever started the run gives it up once host_wait is over and no
	// worker has picked it up (HostUnavailable): a worker that comes back
	// later finds it, on its very first workflow task, too late, and touches
	// nothing.
	if late := workflow.Now(ctx).Sub(info.WorkflowStartTime); info.GetCurrentHistoryLength() <= 3 && late > d.hostWait {
		d.end(contract.HostUnavailable, fmt.Errorf("%s; this worker picked the deploy up only %s after it started, when it was given up: deploy again; nothing was touched",
			HostUnavailableMessage(req.Target.Host, d.hostWait), late.Round(time.Second)))
		return d.finish(ctx, req)
	}
	if err := validTarget(req.Target); err != nil {
		d.end(contract.InvalidInput, err)
		return d.finish(ctx, req)
	}
	d.runLocked(ctx, req)
	return d.finish(ctx, req)
}

// runLocked runs the pipeline holding the host's lease on the target and
// its files (package lock, Table): a second deploy of the same target, or
// of another target sharing a file, waits its turn. A dry run touches
// nothing live and takes no lease.
func (d *deploy) runLocked(ctx workflow.Context, req DeployRequest) {
	if req.DryRun {
		d.run(ctx, req.Material)
		return
	}
	if err := d.lock(ctx); err != nil {
		d.end(beforeCommit(err, contract.HostUnavailable), err)
		d.unlock(ctx)
		return
	}
	d.run(ctx, req.Material)
	d.unlock(ctx)
}

// lockBackoff bounds how often a waiting deploy asks again.
const (
	lockFirstWait = 200 * time.Millisecond
	lockMaxWait   = 5 * time.Second
)

// lock takes the lease, asking again while other deploys hold or wait for
// one of its keys (first come, first served: the table keeps the order).
// It is one step, "lock", whatever the number of asks.
func (d *deploy) lock(ctx workflow.Context) error {
	start := workflow.Now(ctx)
	opts := localOptions(contract.StepLock, d.opts)
	opts.StartToCloseTimeout = time.Minute
	lctx := workflow.WithLocalActivityOptions(ctx, opts)
	wait := lockFirstWait
	var waited []string
	for {
		var r activities.LockResult
		err := workflow.ExecuteLocalActivity(lctx, a.Lock, activities.LockInput{Request: d.req}).Get(ctx, &r)
		s := Step{Name: string(contract.StepLock), Ms: workflow.Now(ctx).Sub(start).Milliseconds()}
		switch {
		case err != nil:
			s.Failed, s.Detail = true, errMessage(err)
		case r.Granted:
			s.Detail = fmt.Sprintf("ticket %d, holds %s", r.Ticket, strings.Join(r.Keys, ", "))
			if len(waited) > 0 {
				s.Detail += "; waited for " + strings.Join(waited, ", ")
			}
		default:
			for _, w := range r.WaitingFor {
				if !slices.Contains(waited, w) {
					waited = append(waited, w)
				}
			}
			if err = workflow.Sleep(ctx, wait); err == nil {
				wait = min(2*wait, lockMaxWait)
				continue
			}
			s.Failed, s.Detail = true, "canceled while waiting for "+strings.Join(waited, ", ")
		}
		d.res.Steps = append(d.res.Steps, s)
		return err
	}
}

// unlock releases the lease unless Cleanup did. Whatever happened to the
// workflow's context, it runs: a lease left behind would hold the target
// until a later deploy finds this one closed.
func (d *deploy) unlock(ctx workflow.Context) {
	if d.released {
		return
	}
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	opts := d.opts
	opts.StartToCloseTimeout = time.Minute
	_ = d.step(ctx, contract.StepUnlock, opts, a.Unlock, activities.LockInput{Request: d.req}, nil)
	d.released = true
}

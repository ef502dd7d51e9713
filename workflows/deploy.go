// Package workflows holds the orchestration: deterministic code that decides
// which step runs next. Every effect happens in package activities.
package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/lock"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// HostQueue is the queue of the worker on host: file steps run there.
func HostQueue(host string) string { return contract.HostQueuePrefix + host }

// DefaultHostWait is how long a step waits for its host's worker to poll.
const DefaultHostWait = 5 * time.Minute

// HostUnavailableMessage is what a deploy says when no worker of host
// polled its queue within wait: which queue, how long, and the command to
// run on that host. Callers that know add what was (not) touched.
func HostUnavailableMessage(host string, wait time.Duration) string {
	return fmt.Sprintf("HostUnavailable: no worker polled %s for %s; start one on %s with: certctl-worker --host %s",
		HostQueue(host), wait, host, host)
}

// Search attributes set by DeployWorkflow (contract.SearchAttributes).
var (
	TargetKey  = contract.TargetKey
	OutcomeKey = contract.OutcomeKey
)

// DeployRequest is DeployWorkflow's input, the JSON an operator may give the
// temporal CLI.
type DeployRequest struct {
	Target   target.Target     `json:"target"`
	Material material.Material `json:"material"`
	DryRun   bool              `json:"dry_run"`
	// ForceValidity deploys a leaf that is expired or not yet valid.
	ForceValidity bool `json:"force_validity,omitempty"`
	// HostWait bounds the wait for the host's worker (default 5m); past it
	// the deploy ends HostUnavailable.
	HostWait target.Duration `json:"host_wait,omitempty"`
	// HeartbeatTimeout is how soon a step whose worker died is retried
	// elsewhere (default 30s).
	HeartbeatTimeout target.Duration `json:"heartbeat_timeout,omitempty"`
	// Delegated marks the host run a DeployWorkflow on the "certctl" queue
	// starts for itself: that deploy sets the search attributes and counts
	// the metrics, so the run does neither.
	Delegated bool `json:"delegated,omitempty"`
}

// DefaultHeartbeatTimeout bounds how long a dead worker holds a step.
const DefaultHeartbeatTimeout = 30 * time.Second

// Step is one finished step, for the operator.
type Step struct {
	Name   string `json:"name"`
	Ms     int64  `json:"ms"`
	Detail string `json:"detail,omitempty"`
	Failed bool   `json:"failed,omitempty"`
}

// DeployResult is the workflow's result, and the details of its failure.
type DeployResult struct {
	Outcome    string                   `json:"outcome"`
	TargetID   string                   `json:"target_id"`
	LeafSHA256 string                   `json:"leaf_sha256"`
	Steps      []Step                   `json:"steps"`
	Error      string                   `json:"error,omitempty"`
	Backups    []activities.Backup      `json:"backups,omitempty"`
	Files      []activities.PlannedFile `json:"files,omitempty"`
}

// DeployWorkflow lands one certificate on one target: plan, backup, stage,
// validate, commit, reload, verify, and on failure after commit a
// compensating rollback. A deploy that does not end Deployed,
// SkippedIdempotent or DryRunPassed fails with an application error whose
// type is the outcome and whose details are the DeployResult.
//
// Where it runs decides how (docs/performance.md):
//   - on its target's own queue ("certctl-host-<host>", where `certctl
//     deploy` starts it when the host's worker polls), the steps run on that
//     worker as local activities, Commit and Rollback as activities: the
//     host run (deploy_host.go);
//   - on the "certctl" queue (the temporal CLI's line, a renewal), version 3
//     delegates to a host run, a child "<id>/host" on the target's queue,
//     and ends HostUnavailable when the host's worker never picks it up
//     within host_wait (deploy_delegate.go); versions 0 to 2, still replayed
//     for deploys started before, run every step as an activity on the
//     host's queue under a lock workflow.
func DeployWorkflow(ctx workflow.Context, req DeployRequest) (DeployResult, error) {
	if q := workflow.GetInfo(ctx).TaskQueueName; q != contract.TaskQueue && q == queueFor(req.Target) {
		// No deploy of versions 0 to 2 ever ran on a host queue: this
		// branch replays no older history.
		return hostDeploy(ctx, req)
	}
	d := newDeploy(ctx, req, false)
	upsertTarget(ctx, req)
	// Version 1 added the per-target lock; histories from before it replay
	// without one (README "Changing a workflow"). Version 2 locks the
	// target's files on its host instead (package lock); version 1 deploys
	// still running keep the target lock. Version 3 runs the steps on the
	// host's own worker (the host run), locked by the host's lease table.
	v := workflow.GetVersion(ctx, "target-lock", workflow.DefaultVersion, 3)
	if v >= 2 {
		// The lock's ID and keys are built from the target: a target that
		// is not valid (a control character in its ID or host, say) ends
		// InvalidInput here, named by certctl, not by the server's checks.
		if err := validTarget(req.Target); err != nil {
			d.end(contract.InvalidInput, err)
			return d.finish(ctx, req)
		}
	}
	if v >= 3 {
		if queueFor(req.Target) == contract.TaskQueue {
			// An agentless target's steps run on this very worker.
			d.local = true
			d.runLocked(ctx, req)
		} else {
			d.delegate(ctx, req)
		}
		return d.finish(ctx, req)
	}
	if v >= 1 && !req.DryRun {
		start := workflow.Now(ctx)
		var release func()
		var err error
		detail := "waited for " + lock.TargetLockID(req.Target.TargetID)
		if v == 1 {
			release, err = lock.AcquireTarget(ctx, req.Target.TargetID)
		} else {
			var lockID string
			var keys []string
			lockID, keys, release, err = lock.AcquireFiles(ctx, req.Target)
			detail = "waited for " + lockID + ": " + strings.Join(keys, ", ")
		}
		d.res.Steps = append(d.res.Steps, Step{Name: string(contract.StepLock), Ms: workflow.Now(ctx).Sub(start).Milliseconds(), Detail: detail})
		if err != nil {
			d.end(contract.HostUnavailable, err)
			return d.finish(ctx, req)
		}
		defer release()
	}
	d.run(ctx, req.Material)
	return d.finish(ctx, req)
}

// newDeploy sets up one deploy's state and its steps' options. local: the
// steps run on this worker (the host run).
func newDeploy(ctx workflow.Context, req DeployRequest, local bool) *deploy {
	// The stamp names this deploy's temp and backup files. The host run's
	// steps may run again when a workflow task is retried after a crash:
	// its stamp is the workflow's start time, the same in every attempt.
	// Versions 0 to 2 keep the first workflow task's time.
	stamp := workflow.Now(ctx).UnixNano()
	if local {
		stamp = workflow.GetInfo(ctx).WorkflowStartTime.UnixNano()
	}
	d := &deploy{
		req:   activities.Request{Target: req.Target, Stamp: stamp, DryRun: req.DryRun, ForceValidity: req.ForceValidity},
		res:   DeployResult{TargetID: req.Target.TargetID},
		local: local,
		quiet: req.Delegated,
	}
	d.hostWait = req.HostWait.D()
	if d.hostWait <= 0 {
		d.hostWait = DefaultHostWait
	}
	heartbeat := req.HeartbeatTimeout.D()
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeatTimeout
	}
	d.opts = workflow.ActivityOptions{
		TaskQueue:              queueFor(req.Target),
		ScheduleToStartTimeout: d.hostWait,
		// A command step runs up to command_timeout, then reports.
		StartToCloseTimeout: max(5*time.Minute, req.Target.Config.CommandLimit()+time.Minute),
		HeartbeatTimeout:    heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			MaximumAttempts:    5,
			NonRetryableErrorTypes: []string{
				contract.InvalidInput, contract.ValidateFailed, contract.ReloadFailed, contract.RollbackFailed,
				contract.PolicyRefused, contract.CommitLost, contract.PlanMismatch, contract.ConcurrentChange,
			},
		},
	}
	return d
}

// upsertTarget makes the deploy findable by CertctlTarget, unless its
// starter already set it (certctl deploy does: one event less).
func upsertTarget(ctx workflow.Context, req DeployRequest) {
	if req.Delegated {
		return
	}
	if v, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(TargetKey); ok && v == req.Target.TargetID {
		return
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, TargetKey.ValueSet(req.Target.TargetID))
}

func validTarget(t target.Target) error {
	if err := t.Validate(); err != nil {
		return contract.InvalidField(err, "target")
	}
	return nil
}

// finish records the outcome, notifies the outcomes that need a person
// (notify.go), and returns the workflow's result or failure. A delegated
// host run leaves all three to the deploy it runs for.
func (d *deploy) finish(ctx workflow.Context, req DeployRequest) (DeployResult, error) {
	if !d.quiet {
		_ = workflow.UpsertTypedSearchAttributes(ctx, OutcomeKey.ValueSet(d.res.Outcome))
		recordDeploy(ctx, req.Target.TargetType, d.res)
		d.notifyDeploy(ctx, req)
	}
	if contract.Succeeded(d.res.Outcome) {
		return d.res, nil
	}
	return d.res, temporal.NewNonRetryableApplicationError(d.res.Error, d.res.Outcome, nil, d.res)
}

func queueFor(t target.Target) string {
	if t.Host == "" {
		return contract.TaskQueue
	}
	return HostQueue(t.Host)
}

type deploy struct {
	req  activities.Request
	opts workflow.ActivityOptions
	res  DeployResult
	// hostWait bounds the wait for the host's worker.
	hostWait time.Duration
	// local: the steps run on this worker (the host run): local activities,
	// except the irreversible ones (see step).
	local bool
	// quiet: a delegated host run; the deploy it runs for sets the search
	// attributes and counts the metrics.
	quiet bool
	// released: Cleanup released the host's lease.
	released bool
}

var a *activities.Activities

// step runs one step and records it. In the host run (d.local) a step is a
// local activity on this worker, named by its Summary: its result is
// recorded with the workflow task that runs it, several steps to a task.
// The irreversible steps stay activities (durable): scheduling one
// completes the workflow task, so what every earlier step did (the backups
// above all) is in the history before anything live changes, and a crash
// inside one retries that step alone. On the host's own queue the server
// hands such an activity straight back to the worker that scheduled it
// (eager execution) when it can.
func (d *deploy) step(ctx workflow.Context, name contract.Step, opts workflow.ActivityOptions, fn, in, out any) error {
	start := workflow.Now(ctx)
	var err error
	switch {
	case d.local && !durable[name]:
		err = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localOptions(name, opts)), fn, in).Get(ctx, out)
	default:
		// The step name is the activity ID: the Web UI and `certctl deploy`
		// show "rollback-reload", not a second "Reload".
		opts.ActivityID = string(name)
		if d.local {
			// The workflow itself runs on the host's worker: a step it
			// schedules there waits for that worker, however long.
			opts.ScheduleToStartTimeout = 0
			opts.Summary = string(name)
		}
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), fn, in).Get(ctx, out)
	}
	s := Step{Name: string(name), Ms: workflow.Now(ctx).Sub(start).Milliseconds()}
	if err != nil {
		s.Failed, s.Detail = true, errMessage(err)
	}
	d.res.Steps = append(d.res.Steps, s)
	return err
}

// durable are the host run's steps that stay activities: those that change
// live files.
var durable = map[contract.Step]bool{contract.StepCommit: true, contract.StepRollback: true}

// localOptions are an activity's options for the same step as a local
// activity: the same time bound and retries, no queue, no heartbeat.
func localOptions(name contract.Step, o workflow.ActivityOptions) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout,
		RetryPolicy:         o.RetryPolicy,
		Summary:             string(name),
	}
}

func (d *deploy) note(detail string) {
	if n := len(d.res.Steps); n > 0 && detail != "" {
		d.res.Steps[n-1].Detail = detail
	}
}

func (d *deploy) end(o string, err error) {
	d.res.Outcome = o
	if err != nil {
		d.res.Error = errMessage(err)
	}
	// A step no worker of the host started within host_wait says so, not
	// "timed out (scheduletostart)".
	if o == contract.HostUnavailable && isHostTimeout(err) && d.req.Target.Host != "" {
		d.res.Error = HostUnavailableMessage(d.req.Target.Host, d.hostWait)
	}
}

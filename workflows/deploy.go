// Package workflows holds the orchestration: deterministic code that decides
// which step runs next. Every effect happens in package activities.
package workflows

import (
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

// Search attributes set by DeployWorkflow (registered by temporal-dev.yaml).
var (
	TargetKey  = temporal.NewSearchAttributeKeyKeyword("CertctlTarget")
	OutcomeKey = temporal.NewSearchAttributeKeyKeyword("CertctlOutcome")
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
func DeployWorkflow(ctx workflow.Context, req DeployRequest) (DeployResult, error) {
	d := &deploy{
		req: activities.Request{Target: req.Target, Stamp: workflow.Now(ctx).UnixNano(), DryRun: req.DryRun, ForceValidity: req.ForceValidity},
		res: DeployResult{TargetID: req.Target.TargetID},
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, TargetKey.ValueSet(req.Target.TargetID))
	hostWait := req.HostWait.D()
	if hostWait <= 0 {
		hostWait = DefaultHostWait
	}
	heartbeat := req.HeartbeatTimeout.D()
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeatTimeout
	}
	d.opts = workflow.ActivityOptions{
		TaskQueue:              queueFor(req.Target),
		ScheduleToStartTimeout: hostWait,
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
	// Version 1 added the per-target lock; histories from before it replay
	// without one (README "Changing a workflow"). Version 2 locks the
	// target's files on its host instead (package lock); version 1 deploys
	// still running keep the target lock.
	v := workflow.GetVersion(ctx, "target-lock", workflow.DefaultVersion, 2)
	if v >= 2 {
		// The lock's ID and keys are built from the target: a target that
		// is not valid (a control character in its ID or host, say) ends
		// InvalidInput here, named by certctl, not by the server's checks.
		t := req.Target
		if err := t.Validate(); err != nil {
			err = contract.InvalidField(err, "target")
			d.end(contract.InvalidInput, err)
			return d.finish(ctx, req)
		}
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

// finish records the outcome and returns the workflow's result or failure.
func (d *deploy) finish(ctx workflow.Context, req DeployRequest) (DeployResult, error) {

	_ = workflow.UpsertTypedSearchAttributes(ctx, OutcomeKey.ValueSet(d.res.Outcome))
	recordDeploy(ctx, req.Target.TargetType, d.res)
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
}

var a *activities.Activities

// step runs one activity and records it as a step.
func (d *deploy) step(ctx workflow.Context, name contract.Step, opts workflow.ActivityOptions, fn, in, out any) error {
	start := workflow.Now(ctx)
	// The step name is the activity ID: the Web UI and `certctl deploy` show
	// "rollback-reload", not a second "Reload".
	opts.ActivityID = string(name)
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), fn, in).Get(ctx, out)
	s := Step{Name: string(name), Ms: workflow.Now(ctx).Sub(start).Milliseconds()}
	if err != nil {
		s.Failed, s.Detail = true, errMessage(err)
	}
	d.res.Steps = append(d.res.Steps, s)
	return err
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
}

// Package workflows holds the orchestration: deterministic code that decides
// which step runs next. Every effect happens in package activities.
package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
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
	// target's files on its host instead (lock_files.go); version 1 deploys
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
		detail := "waited for " + LockWorkflowID(req.Target.TargetID)
		if v == 1 {
			release, err = acquireTarget(ctx, req.Target.TargetID)
		} else {
			var lockID string
			var keys []string
			lockID, keys, release, err = acquireFiles(ctx, req.Target, req.Material)
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

func (d *deploy) run(ctx workflow.Context, m material.Material) {
	var plan activities.Plan
	if err := d.step(ctx, contract.StepPlan, d.opts, a.Plan, activities.PlanInput{Request: d.req, Material: m}, &plan); err != nil {
		d.end(beforeCommit(err, contract.ValidateFailed), err)
		return
	}
	d.res.LeafSHA256, d.res.Files = plan.LeafSHA256, plan.Files
	d.note("action " + plan.Action)
	// From here a cancel request is not obeyed half way: the deploy finishes,
	// or rolls back and cleans up, whatever happens to the workflow's context.
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	if d.req.DryRun {
		d.dryRun(ctx, m, plan)
		return
	}
	switch plan.Action {
	case activities.ActionSkip:
		d.end(contract.SkippedIdempotent, nil)
		return
	case activities.ActionReload:
		// Files match but the old leaf is served (a crash between commit and
		// reload): finish the job, never leave the old cert served.
		if err := d.reloadAndVerify(ctx, plan, activities.Backups{}); err != nil {
			return
		}
		d.end(contract.Deployed, nil)
		return
	}

	var backups activities.Backups
	if err := d.step(ctx, contract.StepBackup, d.opts, a.Backup, activities.StageInput{PlanInput: activities.PlanInput{Request: d.req}, Plan: plan}, &backups); err != nil {
		d.end(beforeCommit(err, contract.ValidateFailed), err)
		d.cleanup(ctx, plan, activities.Staged{}, backups, false)
		return
	}
	d.res.Backups = backups.Files
	var staged activities.Staged
	if err := d.step(ctx, contract.StepStage, d.opts, a.Stage, activities.StageInput{PlanInput: activities.PlanInput{Request: d.req, Material: m}, Plan: plan}, &staged); err != nil {
		d.end(beforeCommit(err, contract.ValidateFailed), err)
		d.cleanup(ctx, plan, staged, backups, false)
		return
	}
	var check activities.ValidateResult
	if err := d.step(ctx, contract.StepValidate, d.opts, a.Validate, activities.ValidateInput{Request: d.req, Plan: plan, Staged: staged}, &check); err != nil {
		d.end(beforeCommit(err, contract.ValidateFailed), err)
		d.cleanup(ctx, plan, staged, backups, false)
		return
	}
	d.note(checkDetail(check))
	var commit activities.CommitResult
	if err := d.step(ctx, contract.StepCommit, d.opts, a.Commit, activities.CommitInput{Request: d.req, Plan: plan, Staged: staged}, &commit); err != nil {
		d.compensate(ctx, plan, backups, contract.CommitFailed, err, false)
		// The staged key copies must not stay beside the live files.
		d.cleanup(ctx, plan, staged, backups, false)
		return
	}
	if check.ServerCheck == activities.CheckDeferred {
		// The check could not see the staged files: it runs on the live files
		// now, and a failure restores the backups without ever reloading.
		var live activities.ValidateResult
		if err := d.step(ctx, contract.StepValidateLive, d.opts, a.Validate, activities.ValidateInput{Request: d.req, Plan: plan, Staged: staged, Live: true}, &live); err != nil {
			d.compensate(ctx, plan, backups, contract.ValidateFailed, err, false)
			return
		}
	}
	if err := d.reloadAndVerify(ctx, plan, backups); err != nil {
		return
	}
	d.cleanup(ctx, plan, staged, backups, true)
	d.end(contract.Deployed, nil)
}

// reloadAndVerify reloads and checks the served leaf; on failure it
// compensates and records the outcome.
func (d *deploy) reloadAndVerify(ctx workflow.Context, plan activities.Plan, backups activities.Backups) error {
	// Files this deploy did not change have nothing to roll back.
	fail := func(o string, err error) {
		if plan.Action == activities.ActionReload {
			d.end(o, err)
			d.res.Error += "; nothing rolled back: the files already held the new certificate before this deploy"
			return
		}
		d.compensate(ctx, plan, backups, o, err, true)
	}
	var reload activities.CommandResult
	if err := d.step(ctx, contract.StepReload, d.opts, a.Reload, d.req, &reload); err != nil {
		fail(contract.ReloadFailed, err)
		return err
	}
	if !d.req.Target.Config.VerifyEnabled() {
		d.res.Steps = append(d.res.Steps, Step{Name: string(contract.StepVerify), Detail: "skipped: post_deploy_verify.enabled is false"})
		return nil
	}
	var v activities.VerifyResult
	if err := d.step(ctx, contract.StepVerify, d.verifyOpts(), a.Verify, activities.VerifyInput{Request: d.req, Expected: plan.LeafSHA256}, &v); err != nil {
		fail(contract.VerifyFailed, err)
		return err
	}
	d.note(fmt.Sprintf("served %s (attempt %d)", v.Served, v.Attempt))
	return nil
}

// compensate restores the backups and, when the server was (or may have been)
// reloaded with the new files, reloads again and checks the old leaf is back.
// The outcome is o unless the rollback itself fails: then RollbackFailed.
func (d *deploy) compensate(ctx workflow.Context, plan activities.Plan, backups activities.Backups, o string, cause error, reload bool) {
	if isHostTimeout(cause) {
		o = contract.HostUnavailable
	}
	d.end(o, cause)
	rollbackOpts := d.opts
	// A rollback keeps trying longer than a forward step: it is the last
	// chance to leave the target serving.
	rollbackOpts.RetryPolicy = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 10,
		NonRetryableErrorTypes: []string{contract.RollbackFailed, contract.ReloadFailed, contract.InvalidInput}}
	var rb activities.RollbackResult
	if err := d.step(ctx, contract.StepRollback, rollbackOpts, a.Rollback, activities.RollbackInput{Request: d.req, Plan: plan, Backups: backups}, &rb); err != nil {
		d.rollbackFailed(cause, err)
		return
	}
	if !reload {
		return
	}
	var r activities.CommandResult
	if err := d.step(ctx, contract.StepRollbackReload, rollbackOpts, a.Reload, d.req, &r); err != nil {
		d.rollbackFailed(cause, err)
		return
	}
	if d.req.Target.Config.VerifyEnabled() && plan.ServedSHA256 != "" {
		var v activities.VerifyResult
		if err := d.step(ctx, contract.StepRollbackVerify, d.verifyOpts(), a.Verify, activities.VerifyInput{Request: d.req, Expected: plan.ServedSHA256}, &v); err != nil {
			d.rollbackFailed(cause, err)
		}
	}
}

func (d *deploy) rollbackFailed(cause, err error) {
	d.res.Outcome = contract.RollbackFailed
	d.res.Error = fmt.Sprintf("%s; then rollback failed: %s; files: %s; backups: %s",
		errMessage(cause), errMessage(err), filesOf(d.res.Files), backupsOf(d.res.Backups))
}

func (d *deploy) verifyOpts() workflow.ActivityOptions {
	attempts, backoff, maxBackoff, timeout := d.req.Target.Config.VerifyPolicy()
	o := d.opts
	o.StartToCloseTimeout = timeout + 5*time.Second
	o.HeartbeatTimeout = 0
	o.RetryPolicy = &temporal.RetryPolicy{
		InitialInterval:    backoff,
		BackoffCoefficient: 2,
		MaximumInterval:    maxBackoff,
		MaximumAttempts:    int32(attempts),
	}
	return o
}

func (d *deploy) dryRun(ctx workflow.Context, m material.Material, plan activities.Plan) {
	var staged activities.Staged
	if err := d.step(ctx, contract.StepStage, d.opts, a.Stage, activities.StageInput{PlanInput: activities.PlanInput{Request: d.req, Material: m}, Plan: plan}, &staged); err != nil {
		d.end(beforeCommit(err, contract.ValidateFailed), err)
		d.cleanup(ctx, plan, staged, activities.Backups{}, false)
		return
	}
	var check activities.ValidateResult
	err := d.step(ctx, contract.StepValidate, d.opts, a.Validate, activities.ValidateInput{Request: d.req, Plan: plan, Staged: staged}, &check)
	if err == nil {
		d.note(checkDetail(check))
	}
	d.cleanup(ctx, plan, staged, activities.Backups{}, false)
	if err != nil {
		d.end(beforeCommit(err, contract.ValidateFailed), err)
		return
	}
	d.end(contract.DryRunPassed, nil)
}

// cleanup removes temp files and prunes backups; its failure never changes
// the outcome, but it is shown in the step.
func (d *deploy) cleanup(ctx workflow.Context, plan activities.Plan, staged activities.Staged, backups activities.Backups, succeeded bool) {
	var r activities.CleanupResult
	_ = d.step(ctx, contract.StepCleanup, d.opts, a.Cleanup, activities.CleanupInput{Request: d.req, Plan: plan, Staged: staged, Backups: backups, Succeeded: succeeded}, &r)
	if succeeded {
		d.note(fmt.Sprintf("%d backup(s) kept", len(r.Backups)))
	}
}

// beforeCommit maps a failure before anything live changed to its outcome.
func beforeCommit(err error, fallback string) string {
	switch {
	case isHostTimeout(err):
		return contract.HostUnavailable
	case contract.Of(err) == contract.InvalidInput:
		return contract.InvalidInput
	case contract.Of(err) == contract.InsecurePath:
		return contract.InsecurePath
	case contract.Of(err) == contract.PolicyRefused:
		return contract.PolicyRefused
	}
	return fallback
}

func isHostTimeout(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}

func checkDetail(r activities.ValidateResult) string {
	s := "material ok; server check " + r.ServerCheck
	if r.Command != "" && r.ServerCheck != activities.CheckNone {
		s += " (" + r.Command + ")"
	}
	if r.Note != "" {
		s += ": " + r.Note
	}
	return s
}

// errMessage is the innermost useful message of an activity error.
func errMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "timed out (" + strings.ToLower(strings.TrimPrefix(te.TimeoutType().String(), "TIMEOUT_TYPE_")) + ")"
	}
	return err.Error()
}

func filesOf(files []activities.PlannedFile) string {
	var s []string
	for _, f := range files {
		s = append(s, f.Path)
	}
	return strings.Join(s, ", ")
}

func backupsOf(b []activities.Backup) string {
	if len(b) == 0 {
		return "none"
	}
	var s []string
	for _, f := range b {
		s = append(s, f.Backup)
	}
	return strings.Join(s, ", ")
}

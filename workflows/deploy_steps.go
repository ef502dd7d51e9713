package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
)

func (d *deploy) run(ctx workflow.Context, m material.Material) {
	var plan activities.Plan
	if err := d.step(ctx, contract.StepPlan, d.opts, a.Plan, activities.PlanInput{Request: d.req, Material: m}, &plan); err != nil {
		d.end(beforeCommit(err, contract.ValidateFailed), err)
		return
	}
	d.res.LeafSHA256, d.res.Files = plan.LeafSHA256, plan.Files
	d.note("action " + string(plan.Action))
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
	d.note(reload.Note)
	if !d.req.Target.Config.VerifyEnabled() {
		d.res.Steps = append(d.res.Steps, Step{Name: string(contract.StepVerify), Detail: "skipped: post_deploy_verify.enabled is false"})
		return nil
	}
	v, attempt, err := d.verify(ctx, contract.StepVerify, activities.VerifyInput{Request: d.req, Expected: plan.LeafSHA256, ExpectedChain: plan.Chain})
	if err != nil {
		fail(contract.VerifyFailed, err)
		return err
	}
	d.note(fmt.Sprintf("served %s (attempt %d)", v.Served, attempt))
	return nil
}

// verifyChange is the GetVersion change ID of the verify loop: version 1
// runs a retried verify of the host run (and of an agentless deploy) as one
// local activity per attempt with a timer between attempts, instead of one
// local activity whose retry policy hid its attempts and waits until the
// end. It is asked only once a first attempt has failed, so a deploy whose
// first attempt passes records no version marker.
const verifyChange = "verify-attempts"

// VerifyBackoffSummary is the summary of the timer between two verify
// attempts (the Web UI's and the temporal CLI's name for the wait):
// attempt is the attempt that failed. `certctl deploy` reads the timer
// itself (starter/progress.go), not this text.
func VerifyBackoffSummary(step contract.Step, attempt, attempts int, backoff time.Duration) string {
	return fmt.Sprintf("%s attempt %d of %d failed; next attempt in %s", step, attempt, attempts, backoff)
}

// verify runs a verify step (verify, rollback-verify) by the target's verify
// policy and returns the result with the attempt that gave it. In the host
// run each attempt is a local activity of its own, recorded as a marker
// named by the step; between two attempts the workflow sleeps the backoff
// (first backoff, doubling, capped), and the timer completes the workflow
// task, so every attempt so far and the wait are in the history while the
// deploy waits: the attempts are seen live. A non-retryable failure ends
// the step at once. A first attempt that passes costs no event more than a
// step. Elsewhere (the activities of versions 0 to 2) the activity's retry
// policy retries, as before.
func (d *deploy) verify(ctx workflow.Context, name contract.Step, in activities.VerifyInput) (activities.VerifyResult, int, error) {
	o := d.verifyOpts()
	attempts := int(o.RetryPolicy.MaximumAttempts)
	var v activities.VerifyResult
	if !d.local || attempts <= 1 {
		err := d.step(ctx, name, o, a.Verify, in, &v)
		return v, int(v.Attempt), err
	}
	start := workflow.Now(ctx)
	lo := localOptions(name, o)
	lo.RetryPolicy = &temporal.RetryPolicy{MaximumAttempts: 1}
	lctx := workflow.WithLocalActivityOptions(ctx, lo)
	backoff := o.RetryPolicy.InitialInterval
	var err error
	attempt := 1
	for ; ; attempt++ {
		v = activities.VerifyResult{}
		err = workflow.ExecuteLocalActivity(lctx, a.Verify, in).Get(ctx, &v)
		if err == nil || attempt >= attempts || !retryable(err) {
			break
		}
		// A history recorded before version 1 holds the first local
		// activity's result after all its retries: that result is final.
		if attempt == 1 && workflow.GetVersion(ctx, verifyChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			break
		}
		if serr := workflow.NewTimerWithOptions(ctx, backoff, workflow.TimerOptions{Summary: VerifyBackoffSummary(name, attempt, attempts, backoff)}).Get(ctx, nil); serr != nil {
			break
		}
		backoff = min(2*backoff, o.RetryPolicy.MaximumInterval)
	}
	s := Step{Name: string(name), Ms: workflow.Now(ctx).Sub(start).Milliseconds()}
	if err != nil {
		s.Failed, s.Detail = true, errMessage(err)
	}
	d.res.Steps = append(d.res.Steps, s)
	return v, attempt, err
}

// retryable: what a verify policy retries (everything but a non-retryable
// application error or a cancel).
func retryable(err error) bool {
	var ae *temporal.ApplicationError
	var ce *temporal.CanceledError
	return !(errors.As(err, &ae) && ae.NonRetryable()) && !errors.As(err, &ce)
}

func (d *deploy) verifyOpts() workflow.ActivityOptions {
	attempts, backoff, maxBackoff, timeout := d.req.Target.Config.VerifyPolicy()
	o := d.opts
	o.StartToCloseTimeout = timeout + 5*time.Second
	o.HeartbeatTimeout = 0
	if d.local {
		// Files read back do not change by waiting: one read says it.
		if c, err := connectors.Get(d.req.Target.TargetType); err == nil && connectors.VerifiesByReadBack(c) {
			attempts = 1
		}
	}
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
	// In the host run the last step of a deploy releases the host's lease
	// too: one step less.
	release := d.local && !d.req.DryRun
	err := d.step(ctx, contract.StepCleanup, d.opts, a.Cleanup, activities.CleanupInput{Request: d.req, Plan: plan, Staged: staged, Backups: backups, Succeeded: succeeded, Release: release}, &r)
	d.released = d.released || (release && err == nil && r.Released)
	if succeeded {
		d.note(fmt.Sprintf("%d backup(s) kept", len(r.Backups)))
	}
}

package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
)

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
		if _, _, err := d.verify(ctx, contract.StepRollbackVerify, activities.VerifyInput{Request: d.req, Expected: plan.ServedSHA256}); err != nil {
			d.rollbackFailed(cause, err)
		}
	}
}

func (d *deploy) rollbackFailed(cause, err error) {
	d.res.Outcome = contract.RollbackFailed
	d.res.Error = fmt.Sprintf("%s; then rollback failed: %s; files: %s; backups: %s",
		errMessage(cause), errMessage(err), filesOf(d.res.Files), backupsOf(d.res.Backups))
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
	case contract.Of(err) == contract.HostKeyMismatch:
		return contract.HostKeyMismatch
	case contract.Of(err) == contract.HostUnavailable:
		// An agentless SSH target whose host cannot be reached.
		return contract.HostUnavailable
	}
	return fallback
}

func isHostTimeout(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}

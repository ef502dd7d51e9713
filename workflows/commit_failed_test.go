package workflows

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
)

// failCommit makes every Commit attempt fail with err.
func (h *harness) failCommit(err error) *int {
	attempts := new(int)
	h.env.OnActivity(a.Commit, mock.Anything, mock.Anything).Return(func(context.Context, activities.CommitInput) (activities.CommitResult, error) {
		h.rec("Commit")
		*attempts++
		return activities.CommitResult{}, err
	})
	return attempts
}

// A rename the kernel refuses (activities.TestCommitOntoMountPointFails:
// EBUSY onto a mount point) is retried, then the deploy ends CommitFailed:
// the backups are restored, nothing is reloaded (the server never saw the
// new files), the staged files are cleaned up.
func TestCommitFailedRestoresWithoutReload(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	attempts := h.failCommit(fmt.Errorf("commit /etc/nginx/certs/cert.pem: %w", syscall.EBUSY))
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.CommitFailed)
	if *attempts != 5 {
		t.Errorf("Commit ran %d times, want 5 (the step retry policy's attempts)", *attempts)
	}
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Commit", "Commit", "Commit", "Commit", "Rollback", "Cleanup")
	if len(h.cleanups) != 1 || h.cleanups[0] {
		t.Errorf("cleanups %v, want one after failure", h.cleanups)
	}
	if !strings.Contains(res.Error, "/etc/nginx/certs/cert.pem") || !strings.Contains(res.Error, "busy") {
		t.Errorf("error %q does not say which rename failed and why", res.Error)
	}
}

// Commit's own refusals are not retried and end CommitFailed too, with the
// same restore: a plan mismatch, a lost staged file, a concurrent change.
func TestCommitRefusedEndsCommitFailed(t *testing.T) {
	for _, typ := range []string{contract.PlanMismatch, contract.CommitLost, contract.ConcurrentChange} {
		t.Run(typ, func(t *testing.T) {
			h := newHarness(t, activities.ActionDeploy)
			attempts := h.failCommit(temporal.NewNonRetryableApplicationError("commit /etc/nginx/certs/cert.pem: refused", typ, nil))
			res, err := h.run(testRequest())
			wantOutcome(t, res, err, contract.CommitFailed)
			if *attempts != 1 {
				t.Errorf("a %s Commit ran %d times, want once", typ, *attempts)
			}
			h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Rollback", "Cleanup")
		})
	}
}

// When the restore after a failed Commit fails too, the target needs a
// person: RollbackFailed, naming both failures.
func TestCommitFailedThenRollbackFailed(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.failCommit(temporal.NewNonRetryableApplicationError("commit /etc/nginx/certs/cert.pem: refused", contract.PlanMismatch, nil))
	h.rollback = temporal.NewNonRetryableApplicationError("rollback incomplete: /etc/nginx/certs/cert.pem has no backup", contract.RollbackFailed, nil)
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.RollbackFailed)
	if !strings.Contains(res.Error, "commit /etc/nginx/certs/cert.pem") || !strings.Contains(res.Error, "no backup") {
		t.Errorf("error %q does not name the commit and the rollback failures", res.Error)
	}
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Rollback", "Cleanup")
}

// Package contract holds every name an operator, a script or a recorded
// history relies on: outcomes and error types, workflow, signal, query,
// update and step names. Outcomes are the workflow's result, the type of its
// failure, the CertctlOutcome search attribute, the last line `certctl
// deploy` prints and a metric label.
package contract

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// Outcomes and error types an operator acts on.
const (
	Deployed          = "Deployed"          // the new leaf is served
	SkippedIdempotent = "SkippedIdempotent" // files and served leaf already match: nothing done
	DryRunPassed      = "DryRunPassed"      // dry run: plan and validate passed, nothing live touched
	ValidateFailed    = "ValidateFailed"    // material or the server's check refused the new files; live files as before (untouched, or restored unreloaded after a check of the live files)
	ReloadFailed      = "ReloadFailed"      // reload failed; backups restored and reloaded: serving the old cert
	VerifyFailed      = "VerifyFailed"      // the new leaf was not served; rolled back: serving the old cert
	RollbackFailed    = "RollbackFailed"    // rollback itself failed: the target needs a person (files and backups named)
	CommitFailed      = "CommitFailed"      // a rename failed (disk, permissions); backups restored, no reload
	HostUnavailable   = "HostUnavailable"   // no worker polled the host's queue in time; nothing touched
	HostLost          = "HostLost"          // rollout: the host's worker picked the deploy up, then nothing for stall_after; counted failed, the deploy left to finish or roll back when its worker returns
	InvalidInput      = "InvalidInput"      // the request was refused before anything was written
	InsecurePath      = "InsecurePath"      // a directory on the way to a destination is writable by others; refused before anything was written
	PolicyRefused     = "PolicyRefused"     // the host worker's policy (CERTCTL_WORKER_POLICY) refused the target; nothing written
	HostKeyMismatch   = "HostKeyMismatch"   // agentless SSH: the host's key is unknown to known_hosts_path or not the pinned host_key; never accepted, nothing written
	ApprovalRejected  = "ApprovalRejected"  // renewal: an approver rejected the request; nothing was issued or deployed
	ApprovalExpired   = "ApprovalExpired"   // renewal: no decision before the deadline; terminal, nothing was issued or deployed
)

// Rollout outcomes.
const (
	// RolloutCompleted: every target of the rollout ended Deployed,
	// SkippedIdempotent or DryRunPassed, or its failures stayed within
	// max_failures.
	RolloutCompleted = "RolloutCompleted"
	// RolloutHalted: a canary failed or the failures passed max_failures;
	// nothing new was started after that, and the targets not started are
	// untouched.
	RolloutHalted = "RolloutHalted"
)

// Renewal outcomes and approval error types.
const (
	// RenewalNotDue: a scheduled renewal found every target's certificate
	// outside its renewal window; nothing asked, issued or deployed.
	RenewalNotDue = "RenewalNotDue"
	// IssueFailed: the issuer could not mint the certificate; nothing deployed.
	IssueFailed = "IssueFailed"
	// DeployFailed: a deploy child ended without an outcome of its own
	// (terminated, timed out).
	DeployFailed = "DeployFailed"
	// ApprovalRefused is the type of a refused decision (update `decide`):
	// two-person integrity, not an approver, a duplicate approver, a closed
	// request, an empty actor or an unknown decision.
	ApprovalRefused = "ApprovalRefused"
	// RequestClosed: an ApprovalWorkflow started under a request ID that an
	// earlier run already used; it ends at once, nothing pending.
	RequestClosed = "RequestClosed"
)

// Succeeded reports whether an outcome is a success (exit code 0).
func Succeeded(o string) bool {
	return o == Deployed || o == SkippedIdempotent || o == DryRunPassed
}

// Invalid is a non-retryable InvalidInput error naming the field at fault.
func Invalid(field, msg string) error {
	return temporal.NewNonRetryableApplicationError(field+": "+msg, InvalidInput, nil, field)
}

// Of returns the type of a Temporal application error in err's chain, or "".
func Of(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}

// Package outcome names how a deploy ends. The names are a contract: they are
// the workflow's result, the type of its failure, the CertctlOutcome search
// attribute, the last line `certctl deploy` prints and a metric label.
package outcome

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// Outcomes and error types an operator acts on.
const (
	Deployed          = "Deployed"          // the new leaf is served
	SkippedIdempotent = "SkippedIdempotent" // files and served leaf already match: nothing done
	DryRunPassed      = "DryRunPassed"      // dry run: plan and validate passed, nothing live touched
	ValidateFailed    = "ValidateFailed"    // material or the server's check refused the staged files; live files untouched
	ReloadFailed      = "ReloadFailed"      // reload failed; backups restored and reloaded: serving the old cert
	VerifyFailed      = "VerifyFailed"      // the new leaf was not served; rolled back: serving the old cert
	RollbackFailed    = "RollbackFailed"    // rollback itself failed: the target needs a person (files and backups named)
	HostUnavailable   = "HostUnavailable"   // no worker polled the host's queue in time; nothing touched
	InvalidInput      = "InvalidInput"      // the request was refused before anything was written
	ApprovalRejected  = "ApprovalRejected"
	ApprovalExpired   = "ApprovalExpired"
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

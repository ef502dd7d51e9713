package kubernetes

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
)

// typedErr is a non-retryable application error of type typ: retrying
// cannot change a refusal, a missing namespace or a foreign change.
func typedErr(typ, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), typ, nil)
}

// mismatchErr is VerifyMismatch, retryable by the verify policy.
func mismatchErr(format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), contract.VerifyMismatch)
}

func rollbackFailed(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, contract.RollbackFailed, nil)
}

// errMessage is an application error's message, or err's.
func errMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return err.Error()
}

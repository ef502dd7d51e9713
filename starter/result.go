package main

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// detailsOf decodes into out the result a failed workflow carries in its
// failure's details: certctl's workflows fail with an application error
// whose type is the outcome and whose details are the result (a cancelled
// rollout with a cancelled error carrying it). False when the failure
// carries none (a terminated or timed-out run).
func detailsOf(err error, out any) bool {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Details(out) == nil
	}
	var ce *temporal.CanceledError
	if errors.As(err, &ce) {
		return ce.Details(out) == nil
	}
	return false
}

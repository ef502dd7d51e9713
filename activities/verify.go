package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/probe"
	"github.com/certctl/certctl/target"
)

// settlePauses are the waits before each probe of one verify attempt.
var settlePauses = []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}

// Verify dials the endpoint and compares the served leaf's SHA-256 with the
// expected one. A mismatch or a failed handshake is retryable: the workflow's
// retry policy gives the server time (1s, 2s, 4s … capped) to pick it up.
func (a *Activities) Verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	c, err := connectorOf(in.Target)
	if err != nil {
		return VerifyResult{}, err
	}
	cfg := in.Target.Config
	_, _, _, timeout := cfg.VerifyPolicy()
	res := VerifyResult{Endpoint: cfg.PostDeployVerify.Endpoint}
	if activity.IsActivity(ctx) {
		res.Attempt = activity.GetInfo(ctx).Attempt
	}
	// A server swaps certificates a moment after its reload command returns
	// (nginx re-reads on SIGHUP): a few quick probes inside one attempt save
	// the retry policy's first full second in the common case.
	// The whole attempt, quick probes included, stays within the timeout,
	// so a silent endpoint ends the attempt with its own error, not the
	// activity's start-to-close timeout.
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var served string
probes:
	for i, pause := range settlePauses {
		if pause > 0 {
			select {
			case <-actx.Done():
				break probes
			case <-time.After(pause):
			}
		}
		if i > 0 && actx.Err() != nil {
			break
		}
		failpoint.Hit("verify:probe")
		served, err = probeTarget(actx, c, in.Target, timeout)
		metrics.VerifyAttemptsTotal.Inc()
		if err == nil && served == in.Expected {
			break
		}
	}
	if err != nil {
		return res, temporal.NewApplicationError(fmt.Sprintf("verify %s: %v", res.Endpoint, err), contract.VerifyUnreachable)
	}
	res.Served = served
	if served != in.Expected {
		return res, temporal.NewApplicationError(
			fmt.Sprintf("verify %s: serves leaf %s, want %s", res.Endpoint, short(served), short(in.Expected)), contract.VerifyMismatch, res)
	}
	return res, nil
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

// probeTarget reads the leaf a target's verify endpoint serves, speaking
// its protocol (the target's post_deploy_verify.protocol, else its
// connector's default).
func probeTarget(ctx context.Context, c connectors.Connector, t target.Target, timeout time.Duration) (string, error) {
	v := t.Config.PostDeployVerify
	return probe.Leaf(ctx, v.Endpoint, probe.Host(v), connectors.VerifyProtocol(c, t.Config), timeout)
}

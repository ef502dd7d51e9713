package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/probe"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/target"
)

// Verify dials the endpoint and compares what it serves with what was
// deployed: the leaf's SHA-256 and, when the input names the chain
// (ExpectedChain), every certificate the server sends, in order — a server
// that sends the right leaf without its intermediates fails clients that do
// not hold them ("unable to verify the first certificate"), so it fails
// verify too. A mismatch or a failed handshake is retryable: the workflow's
// retry policy gives the server time (1s, 2s, 4s … capped) to pick it up.
// A connector that verifies by reading back (connectors.ReadBackVerifier)
// has nothing to dial: its leaf file is read instead (verifyReadBack).
func (a *Activities) Verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	c, err := connectorOf(in.Target)
	if err != nil {
		return VerifyResult{}, err
	}
	if s, ok := a.store(in.Target); ok {
		// Read back, then the endpoint serving the Secret when one is named.
		if res, err := s.Verify(ctx, in); err != nil || in.Target.Config.PostDeployVerify.Endpoint == "" {
			return res, err
		}
	} else if connectors.VerifiesByReadBack(c) {
		fsys, release, err := a.fsFor(ctx, in.Target)
		if err != nil {
			return VerifyResult{}, err
		}
		defer release()
		return verifyReadBack(ctx, fsys, c, in)
	}
	cfg := in.Target.Config
	_, _, _, timeout := cfg.VerifyPolicy()
	res := VerifyResult{Endpoint: cfg.PostDeployVerify.Endpoint}
	if activity.IsActivity(ctx) {
		res.Attempt = activity.GetInfo(ctx).Attempt
	}
	// A server swaps certificates a moment after its reload command returns,
	// and for a while serves both (see settleWindow): one attempt probes
	// every confirmPause for up to quickProbing, and passes once every
	// handshake for settleWindow has seen the expected chain. That saves the
	// retry policy's first full second in the common case. The whole
	// attempt stays within the timeout, so a silent endpoint ends the
	// attempt with its own error, not the activity's start-to-close timeout.
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var served []material.CertRef
	var streak time.Time // the first handshake of the current run of expected chains
	settled := false
	for start := time.Now(); ; {
		failpoint.Hit("verify:probe")
		served, err = probeChain(actx, c, in.Target, timeout)
		metrics.VerifyAttemptsTotal.Inc()
		switch {
		case err != nil || !in.matches(served):
			streak = time.Time{}
		case streak.IsZero():
			streak = time.Now()
		}
		if settled = !streak.IsZero() && time.Since(streak) >= settleWindow; settled {
			break
		}
		if time.Since(start) > quickProbing {
			break
		}
		select {
		case <-actx.Done():
		case <-time.After(confirmPause):
		}
		if actx.Err() != nil {
			break
		}
	}
	if err != nil {
		return res, temporal.NewApplicationError(fmt.Sprintf("verify %s: %v", res.Endpoint, err), contract.VerifyUnreachable)
	}
	res.Served = served[0].SHA256
	if len(in.ExpectedChain) > 0 {
		res.ServedChain = served
	}
	if in.matches(served) && !settled {
		return res, temporal.NewApplicationError(
			fmt.Sprintf("verify %s: serves leaf %s, but not on every handshake for %s (old workers still serving?)", res.Endpoint, served[0], settleWindow), contract.VerifyMismatch, res)
	}
	if res.Served != in.Expected {
		want := short(in.Expected)
		if len(in.ExpectedChain) > 0 {
			want = in.ExpectedChain[0].String()
		}
		return res, temporal.NewApplicationError(
			fmt.Sprintf("verify %s: serves leaf %s, want %s", res.Endpoint, served[0], want), contract.VerifyMismatch, res)
	}
	if !in.matches(served) {
		return res, temporal.NewApplicationError(chainMismatch(res.Endpoint, served, in.ExpectedChain), contract.VerifyMismatch, res)
	}
	return res, nil
}

// matches reports whether served is what the endpoint must send: the
// expected leaf first and, when the chain is expected, exactly the expected
// certificates in order (nothing missing, nothing extra, nothing swapped).
func (in VerifyInput) matches(served []material.CertRef) bool {
	if len(served) == 0 || served[0].SHA256 != in.Expected {
		return false
	}
	if len(in.ExpectedChain) == 0 {
		return true
	}
	if len(served) != len(in.ExpectedChain) {
		return false
	}
	for i, r := range served {
		if r.SHA256 != in.ExpectedChain[i].SHA256 {
			return false
		}
	}
	return true
}

// chainMismatch says what the endpoint sent and what it must send, each
// certificate by name, and what to look at when intermediates are missing.
func chainMismatch(endpoint string, served, want []material.CertRef) string {
	msg := fmt.Sprintf("verify %s: serves the chain %s; want %s (the leaf, then each intermediate of the deployed chain, in order)",
		endpoint, material.RefList(served), material.RefList(want))
	if len(served) < len(want) {
		msg += ": clients that do not hold the missing intermediates fail (\"unable to verify the first certificate\"); " +
			"the server must read the chain: the file it reads the certificate from holds it after the leaf, or its chain directive names chain_path"
	}
	return msg
}

// After the first handshake that sees the expected leaf, every handshake
// for settleWindow more (confirmPause apart) must see it too. A server's old
// workers still take connections while they drain after a reload: nginx
// starts its new workers, waits 100 ms, then tells the old ones to stop
// (measured here: new and old leaves alternate from ~20 ms to ~110 ms after
// `nginx -s reload`). One lucky handshake to a new worker is not the leaf
// being served.
const (
	settleWindow = 150 * time.Millisecond
	confirmPause = 25 * time.Millisecond
	// quickProbing bounds one attempt's probes; the retry policy takes over
	// after it.
	quickProbing = 600 * time.Millisecond
)

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

// probeChain is probeTarget for every certificate the endpoint sends, leaf
// first (never empty without an error).
func probeChain(ctx context.Context, c connectors.Connector, t target.Target, timeout time.Duration) ([]material.CertRef, error) {
	v := t.Config.PostDeployVerify
	certs, err := probe.Chain(ctx, v.Endpoint, probe.Host(v), connectors.VerifyProtocol(c, t.Config), timeout)
	if err != nil {
		return nil, err
	}
	return material.Refs(certs...), nil
}

// verifyReadBack reads the target's leaf file back and compares the SHA-256
// of its first certificate with the expected leaf: the deploy's after a
// commit, the one it replaced after a rollback. One read per attempt (files
// do not settle); a file that is missing, a link, not a regular file or
// without a certificate fails like a served mismatch, naming the file.
func verifyReadBack(ctx context.Context, fsys FS, c connectors.Connector, in VerifyInput) (VerifyResult, error) {
	var res VerifyResult
	if activity.IsActivity(ctx) {
		res.Attempt = activity.GetInfo(ctx).Attempt
	}
	failpoint.Hit("verify:probe")
	path, leaf, err := readBackLeaf(fsys, c, in.Target)
	metrics.VerifyAttemptsTotal.Inc()
	res.Endpoint = path
	if err != nil {
		return res, temporal.NewApplicationError(fmt.Sprintf("verify by reading back: %v", err), contract.VerifyMismatch, res)
	}
	res.Served = leaf
	if leaf != in.Expected {
		return res, temporal.NewApplicationError(
			fmt.Sprintf("verify by reading back: %s holds leaf %s, want %s", path, short(leaf), short(in.Expected)), contract.VerifyMismatch, res)
	}
	return res, nil
}

// readBackLeaf is the path of the target's leaf file (connectors.LeafFile)
// and the SHA-256 of the first certificate it holds, read through package
// safefs: no link is followed, on the way or at the file, and only a regular
// file is read. Errors name the file and its field.
func readBackLeaf(fsys FS, c connectors.Connector, t target.Target) (path, leaf string, err error) {
	d, ok := connectors.LeafFile(c, t.Config)
	if !ok {
		return "", "", errors.New("the target names no file for the certificate")
	}
	b, err := readRegular(fsys, d.Path)
	switch {
	case errors.Is(err, safefs.ErrSymlink):
		return d.Path, "", fmt.Errorf("%s: %w: not followed, so not read (the file certctl wrote was replaced by a link)", d.Field, err)
	case errors.Is(err, fs.ErrNotExist):
		return d.Path, "", fmt.Errorf("%s: %s does not exist", d.Field, d.Path)
	case err != nil:
		return d.Path, "", fmt.Errorf("%s: %w", d.Field, err)
	}
	cert, err := material.FirstCertificate(b)
	if err != nil {
		return d.Path, "", fmt.Errorf("%s: %s %w", d.Field, d.Path, err)
	}
	return d.Path, material.Fingerprint(cert.Raw), nil
}

// currentLeaf is the leaf a target delivers now, before a deploy: the one
// its endpoint serves, or, for a connector that verifies by reading back,
// the one its leaf file holds.
func currentLeaf(ctx context.Context, fsys FS, c connectors.Connector, t target.Target, timeout time.Duration) (string, error) {
	if connectors.VerifiesByReadBack(c) {
		_, leaf, err := readBackLeaf(fsys, c, t)
		return leaf, err
	}
	return probeTarget(ctx, c, t, timeout)
}

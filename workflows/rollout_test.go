package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// fleet is a rollout test's world: RolloutWorkflow for real, and in place
// of DeployWorkflow a fake whose outcome and length each test sets per
// target. It records which deploys started, in order, and how many ran at
// once.
type fleet struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	// outcome per target ID (absent: Deployed); "dead": the host's worker
	// never picks the deploy up (the fake runs for an hour, then fails as a
	// terminated run would).
	outcome map[string]string
	took    time.Duration
	mu      sync.Mutex
	started []string
	at      map[string]time.Time
	running int
	peak    int
	giveUps []string
	// lostAt is when a picked-up deploy's host worker died, per target
	// (set by a deploy fake): Stall says it waits since then.
	lostAt map[string]time.Time
	stalls []string
	// back lists the lost deploys whose worker returned.
	back []string
}

// mockStall answers Stall as the server would: a deploy whose worker the
// fake killed waits since then, any other is making progress.
func (f *fleet) mockStall() {
	f.env.OnActivity(a.Stall, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.StallInput) (activities.StallReport, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		id := strings.Split(in.WorkflowID, "/")[1]
		f.stalls = append(f.stalls, id)
		if at, ok := f.lostAt[id]; ok {
			return activities.StallReport{Waiting: true, Since: at, Task: "workflow task"}, nil
		}
		return activities.StallReport{}, nil
	}).Maybe()
}

// dies records that target id's host worker died now, its deploy picked
// up.
func (f *fleet) dies(ctx workflow.Context, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lostAt == nil {
		f.lostAt = map[string]time.Time{}
	}
	f.lostAt[id] = workflow.Now(ctx)
}

func newFleet(t *testing.T) *fleet {
	s := &testsuite.WorkflowTestSuite{}
	f := &fleet{t: t, env: s.NewTestWorkflowEnvironment(), outcome: map[string]string{}, took: 10 * time.Second}
	f.env.RegisterWorkflowWithOptions(RolloutWorkflow, workflow.RegisterOptions{Name: contract.RolloutWorkflow})
	f.env.RegisterWorkflowWithOptions(NotifyWorkflow, workflow.RegisterOptions{Name: contract.NotifyWorkflow})
	f.env.RegisterWorkflowWithOptions(f.deploy, workflow.RegisterOptions{Name: contract.DeployWorkflow})
	f.env.RegisterActivity(a)
	f.env.OnActivity(a.GiveUp, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.GiveUpInput) (bool, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.giveUps = append(f.giveUps, in.WorkflowID)
		return !strings.Contains(in.WorkflowID, "/dead-"), nil
	}).Maybe()
	f.mockStall()
	return f
}

func (f *fleet) deploy(ctx workflow.Context, req DeployRequest) (DeployResult, error) {
	id := req.Target.TargetID
	f.mu.Lock()
	f.started = append(f.started, id)
	if f.at == nil {
		f.at = map[string]time.Time{}
	}
	f.at[id] = workflow.Now(ctx)
	f.running++
	f.peak = max(f.peak, f.running)
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.running--; f.mu.Unlock() }()
	o := f.outcome[id]
	if strings.HasPrefix(id, "dead-") {
		_ = workflow.Sleep(ctx, time.Hour)
		return DeployResult{}, temporal.NewApplicationError("terminated", "Terminated")
	}
	if err := workflow.Sleep(ctx, f.took); err != nil {
		return DeployResult{}, err
	}
	res := DeployResult{TargetID: id, Outcome: contract.Deployed, LeafSHA256: newLeaf}
	if o != "" {
		res.Outcome, res.Error = o, id+" failed on purpose"
		return res, temporal.NewNonRetryableApplicationError(res.Error, o, nil, res)
	}
	return res, nil
}

// inOrder checks that the deploys started were exactly ids, each once, in
// that order (the test environment runs children started together in any
// order, so the order is their start times').
func (f *fleet) inOrder(ids []string) {
	f.t.Helper()
	got := slices.Clone(f.started)
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		f.t.Fatalf("started %v, want %v", got, want)
	}
	for i := 1; i < len(ids); i++ {
		if f.at[ids[i]].Before(f.at[ids[i-1]]) {
			f.t.Fatalf("%s started before %s", ids[i], ids[i-1])
		}
	}
}

func targets(ids ...string) []target.Target {
	var ts []target.Target
	for _, id := range ids {
		ts = append(ts, target.Target{TargetID: id, TargetType: "nginx", Host: "h-" + id, Config: target.Config{
			CertPath: "/etc/nginx/certs/cert.pem", KeyPath: "/etc/nginx/certs/key.pem",
			PostDeployVerify: target.Verify{Endpoint: id + ":443"},
		}})
	}
	return ts
}

func names(prefix string, n int) []string {
	var s []string
	for i := 1; i <= n; i++ {
		s = append(s, fmt.Sprintf("%s%02d", prefix, i))
	}
	return s
}

func intp(n int) *int { return &n }

func (f *fleet) run(req RolloutRequest) (RolloutResult, error) {
	if req.Material.CertPEM == "" {
		req.Material = material.Material{CertPEM: "cert", KeyPEM: "key"}
	}
	f.env.ExecuteWorkflow(contract.RolloutWorkflow, req)
	if !f.env.IsWorkflowCompleted() {
		f.t.Fatal("the rollout did not complete")
	}
	var res RolloutResult
	err := f.env.GetWorkflowError()
	if err == nil {
		if gerr := f.env.GetWorkflowResult(&res); gerr != nil {
			f.t.Fatal(gerr)
		}
		return res, nil
	}
	res = childResultOf(f.t, err)
	return res, err
}

func childResultOf(t *testing.T, err error) RolloutResult {
	var res RolloutResult
	var ae *temporal.ApplicationError
	if !asApp(err, &ae) {
		t.Fatalf("rollout failed without an application error: %v", err)
	}
	if derr := ae.Details(&res); derr != nil {
		t.Fatalf("details: %v (%v)", derr, err)
	}
	return res
}

func (f *fleet) progress() RolloutProgress {
	v, err := f.env.QueryWorkflow(contract.QueryProgress)
	if err != nil {
		f.t.Fatal(err)
	}
	var p RolloutProgress
	if err := v.Get(&p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// The canary goes first and alone; when it succeeds, the others run
// Batch at a time, each target once, in order.
func TestRolloutCanaryThenBatches(t *testing.T) {
	f := newFleet(t)
	ids := names("web-", 12)
	res, err := f.run(RolloutRequest{Targets: targets(ids...), Batch: 4})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != contract.RolloutCompleted || res.Succeeded != 12 || res.Total != 12 || len(res.Failed) != 0 {
		t.Fatalf("result %+v", res)
	}
	f.inOrder(ids)
	// The canary ran alone: everything else started once it had ended.
	for _, id := range ids[1:] {
		if f.at[id].Sub(f.at[ids[0]]) < f.took {
			t.Fatalf("%s started %s after the canary, before it ended", id, f.at[id].Sub(f.at[ids[0]]))
		}
	}
	if f.peak != 4 {
		t.Fatalf("at most %d ran at once, want 4", f.peak)
	}
	if res.Outcomes[contract.Deployed] != 12 {
		t.Fatalf("outcomes %v", res.Outcomes)
	}
}

// A canary that fails halts the rollout: nothing else is started, and the
// result names the canary and its outcome.
func TestRolloutCanaryFailureStartsNothingElse(t *testing.T) {
	f := newFleet(t)
	ids := names("web-", 8)
	f.outcome["web-02"] = contract.VerifyFailed
	res, err := f.run(RolloutRequest{Targets: targets(ids...), Canary: intp(2), Batch: 4, MaxFailures: 5})
	if contract.Of(err) != contract.RolloutHalted {
		t.Fatalf("err %v", err)
	}
	f.inOrder(ids[:2])
	if res.NotStarted != 6 || len(res.Failed) != 1 || res.Failed[0].TargetID != "web-02" || res.Failed[0].Outcome != contract.VerifyFailed {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Error, "the canary failed: web-02 VerifyFailed; 6 targets not started") {
		t.Fatalf("error %q", res.Error)
	}
	if res.Failed[0].WorkflowID != RolloutDeployID("test-rollout", "web-02") && !strings.HasPrefix(res.Failed[0].WorkflowID, "deploy/web-02/rollout-") {
		t.Fatalf("workflow id %q", res.Failed[0].WorkflowID)
	}
}

// After the canary, the rollout halts at the first failure past
// max_failures: it starts nothing new, lets those in flight end, and lists
// every failed target.
func TestRolloutHaltsPastMaxFailures(t *testing.T) {
	f := newFleet(t)
	ids := names("web-", 20)
	f.outcome["web-03"] = contract.ValidateFailed
	f.outcome["web-05"] = contract.ReloadFailed
	res, err := f.run(RolloutRequest{Targets: targets(ids...), Batch: 2, MaxFailures: 1})
	if contract.Of(err) != contract.RolloutHalted {
		t.Fatalf("err %v", err)
	}
	// web-01 canary; then 02+03, 03 fails (1 ≤ max) → 04, then 05 fails
	// (2 > max) while 04 or 06 is in flight: nothing after 06.
	if len(f.started) > 6 || !slices.Contains(f.started, "web-05") {
		t.Fatalf("started %v", f.started)
	}
	var failed []string
	for _, fl := range res.Failed {
		failed = append(failed, fl.TargetID+" "+fl.Outcome)
	}
	if !slices.Equal(failed, []string{"web-03 ValidateFailed", "web-05 ReloadFailed"}) {
		t.Fatalf("failed %v", failed)
	}
	if res.Succeeded+len(res.Failed)+res.NotStarted != 20 {
		t.Fatalf("counts do not add up: %+v", res)
	}
}

// Within max_failures the rollout completes, its failures listed.
func TestRolloutCompletesWithinMaxFailures(t *testing.T) {
	f := newFleet(t)
	f.outcome["web-04"] = contract.VerifyFailed
	res, err := f.run(RolloutRequest{Targets: targets(names("web-", 6)...), Batch: 3, MaxFailures: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != contract.RolloutCompleted || res.Succeeded != 5 || len(res.Failed) != 1 {
		t.Fatalf("result %+v", res)
	}
}

// Paused, the rollout starts nothing new (those in flight end); resumed,
// it goes on. The progress query says so.
func TestRolloutPauseResume(t *testing.T) {
	f := newFleet(t)
	ids := names("web-", 6)
	var paused RolloutProgress
	f.env.RegisterDelayedCallback(func() { f.env.SignalWorkflow(contract.SignalPause, nil) }, 15*time.Second)
	f.env.RegisterDelayedCallback(func() { paused = f.progress() }, time.Hour)
	f.env.RegisterDelayedCallback(func() { f.env.SignalWorkflow(contract.SignalResume, nil) }, 2*time.Hour)
	res, err := f.run(RolloutRequest{Targets: targets(ids...), Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 6 {
		t.Fatalf("result %+v", res)
	}
	// Canary 0–10s; 02, 03 start at 10s, pause at 15s: they end at 20s and
	// nothing starts until the resume.
	if paused.State != contract.RolloutPaused || paused.Done != 3 || paused.Pending != 3 || len(paused.InFlight) != 0 {
		t.Fatalf("progress while paused %+v", paused)
	}
	if paused.Phase != "batches" || paused.Total != 6 || paused.Succeeded != 3 {
		t.Fatalf("progress while paused %+v", paused)
	}
}

// A rollout of more targets than a run starts continues as new: the new
// run carries the counts and the failures, and every target is deployed
// once.
func TestRolloutContinuesAsNew(t *testing.T) {
	f := newFleet(t)
	ids := names("web-", 9)
	f.outcome["web-05"] = contract.VerifyFailed
	f.env.ExecuteWorkflow(contract.RolloutWorkflow, RolloutRequest{Targets: targets(ids...), Batch: 2, MaxFailures: 3, ContinueAfter: 4,
		Material: material.Material{CertPEM: "cert", KeyPEM: "key"}})
	err := f.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !asCAN(err, &can) {
		t.Fatalf("want continue-as-new after 4 deploys, got %v", err)
	}
	f.inOrder(ids[:4])
	var next RolloutRequest
	if err := decodeCAN(can, &next); err != nil {
		t.Fatal(err)
	}
	if next.Carried == nil || next.Carried.Offset != 4 || next.Carried.Done != 4 || next.Carried.Runs != 1 || len(next.Targets) != 5 {
		t.Fatalf("carried %+v, %d targets", next.Carried, len(next.Targets))
	}
	// The next runs, as the server would start them: 4 more, then 1.
	g := newFleet(t)
	g.outcome = f.outcome
	g.env.ExecuteWorkflow(contract.RolloutWorkflow, next)
	var can2 *workflow.ContinueAsNewError
	if !asCAN(g.env.GetWorkflowError(), &can2) {
		t.Fatalf("second run: want continue-as-new after 4 more, got %v", g.env.GetWorkflowError())
	}
	var third RolloutRequest
	if err := decodeCAN(can2, &third); err != nil {
		t.Fatal(err)
	}
	if third.Carried.Runs != 2 || third.Carried.Offset != 8 || len(third.Carried.Failed) != 1 {
		t.Fatalf("third run carried %+v", third.Carried)
	}
	h := newFleet(t)
	h.outcome = f.outcome
	res, err := h.run(third)
	if err != nil {
		t.Fatal(err)
	}
	if p := h.progress(); p.Run != 2 || p.State != contract.RolloutFinished || p.Done != 9 {
		t.Fatalf("last run's progress %+v", p)
	}
	g.inOrder(ids[4:8])
	h.inOrder(ids[8:])
	if res.Total != 9 || res.Succeeded != 8 || len(res.Failed) != 1 || res.Failed[0].TargetID != "web-05" || res.Outcome != contract.RolloutCompleted {
		t.Fatalf("result %+v", res)
	}
}

// A target whose host has no worker counts as failed, HostUnavailable,
// once its host_wait is over, and holds up nobody: the others end first.
func TestRolloutHostThatNeverAnswers(t *testing.T) {
	f := newFleet(t)
	ids := []string{"web-01", "dead-02", "web-03", "web-04", "web-05"}
	f.took = time.Second
	res, err := f.run(RolloutRequest{Targets: targets(ids...), Batch: 3, MaxFailures: 1, HostWait: target.Duration(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 1 || res.Failed[0].TargetID != "dead-02" || res.Failed[0].Outcome != contract.HostUnavailable {
		t.Fatalf("failed %+v", res.Failed)
	}
	if want := "HostUnavailable: no worker polled certctl-host-h-dead-02 for 1m0s; start one on h-dead-02 with: certctl-worker --host h-dead-02; nothing was touched"; res.Failed[0].Error != want {
		t.Fatalf("error %q, want %q", res.Failed[0].Error, want)
	}
	if !slices.Contains(f.giveUps, RolloutDeployID("default-test-workflow-id", "dead-02")) {
		t.Fatalf("GiveUp asked for %v", f.giveUps)
	}
	if res.Succeeded != 4 {
		t.Fatalf("result %+v", res)
	}
}

// Bad requests end InvalidInput naming the field, before any deploy.
func TestRolloutRefusesBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		req  RolloutRequest
		want string
	}{
		"empty":       {RolloutRequest{}, "targets: is empty"},
		"duplicate":   {RolloutRequest{Targets: targets("web-1", "web-2", "web-1")}, `targets[2]: target_id "web-1" is also targets[0]`},
		"canary":      {RolloutRequest{Targets: targets("web-1"), Canary: intp(-1)}, "canary: is -1"},
		"batch":       {RolloutRequest{Targets: targets("web-1"), Batch: -2}, "batch: is -2"},
		"max":         {RolloutRequest{Targets: targets("web-1"), MaxFailures: -1}, "max_failures: is -1"},
		"stall":       {RolloutRequest{Targets: targets("web-1"), StallAfter: target.Duration(-time.Second)}, "stall_after: is -1s: want 30s or more (a live worker may hold a workflow task up to its 10s timeout), or none for host_wait"},
		"stall short": {RolloutRequest{Targets: targets("web-1"), StallAfter: target.Duration(5 * time.Second)}, "stall_after: is 5s: want 30s or more"},
		"bad target":  {RolloutRequest{Targets: []target.Target{{TargetID: "a b", TargetType: "nginx"}}}, "targets[0]: "},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFleet(t)
			_, err := f.run(tc.req)
			if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want InvalidInput with %q", err, tc.want)
			}
			if len(f.started) != 0 {
				t.Fatalf("started %v", f.started)
			}
		})
	}
}

func asApp(err error, ae **temporal.ApplicationError) bool { return errors.As(err, ae) }

func asCAN(err error, can **workflow.ContinueAsNewError) bool { return errors.As(err, can) }

// decodeCAN reads the next run's request out of a continue-as-new.
func decodeCAN(can *workflow.ContinueAsNewError, req *RolloutRequest) error {
	return converter.GetDefaultDataConverter().FromPayloads(can.Input, req)
}

// Cancelled, a rollout starts nothing new and ends cancelled, its result
// saying what ran and how many were never started.
func TestRolloutCancelledStartsNothingNew(t *testing.T) {
	f := newFleet(t)
	f.env.RegisterDelayedCallback(func() { f.env.CancelWorkflow() }, 15*time.Second)
	f.env.ExecuteWorkflow(contract.RolloutWorkflow, RolloutRequest{Targets: targets(names("web-", 10)...), Batch: 2,
		Material: material.Material{CertPEM: "cert", KeyPEM: "key"}})
	err := f.env.GetWorkflowError()
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("want a cancelled rollout, got %v", err)
	}
	var res RolloutResult
	if derr := ce.Details(&res); derr != nil {
		t.Fatal(derr)
	}
	// The canary (0–10s), then web-02 and web-03 (10–20s) when the cancel
	// arrives at 15s: nothing after them.
	if len(f.started) != 3 || res.NotStarted != 7 || !strings.Contains(res.Error, "cancelled; ") || !strings.Contains(res.Error, "7 targets not started") {
		t.Fatalf("started %v, result %+v", f.started, res)
	}
}

// What a rollout carries into its next run (one payload with the key,
// compressed by the codec when large) holds no text a deploy reported:
// errors stay in each deploy's own result (codec/compress.go).
func TestRolloutCarriesNoDeployText(t *testing.T) {
	f := newFleet(t)
	f.outcome["web-02"] = contract.VerifyFailed
	f.env.ExecuteWorkflow(contract.RolloutWorkflow, RolloutRequest{Targets: targets(names("web-", 4)...), Batch: 1, MaxFailures: 2, ContinueAfter: 3,
		Material: material.Material{CertPEM: "cert", KeyPEM: "key"}})
	var can *workflow.ContinueAsNewError
	if !asCAN(f.env.GetWorkflowError(), &can) {
		t.Fatalf("want continue-as-new, got %v", f.env.GetWorkflowError())
	}
	var next RolloutRequest
	if err := decodeCAN(can, &next); err != nil {
		t.Fatal(err)
	}
	if len(next.Carried.Failed) != 1 || next.Carried.Failed[0].TargetID != "web-02" || next.Carried.Failed[0].Outcome != contract.VerifyFailed {
		t.Fatalf("carried failures %+v", next.Carried.Failed)
	}
	b, _ := json.Marshal(next)
	if strings.Contains(string(b), "failed on purpose") {
		t.Fatalf("the next run's input carries a deploy's error text: %s", b)
	}
}

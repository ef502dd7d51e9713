package workflows

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
)

func renewProfile() profile.Profile {
	p := profile.Profile{
		ProfileID: "p-prod", RequiresApproval: true, Approvers: []string{"bob", "carol"},
		Subject: profile.Subject{CommonName: "shop.example.com"}, SANs: []string{"shop.example.com"},
		Issuer: profile.Issuer{Type: profile.IssuerLocalCA, CACert: "/etc/certctl/ca.pem", CAKey: "/etc/certctl/ca.key"},
		Targets: []target.Target{
			testRequest().Target,
			{TargetID: "web-2", TargetType: "nginx", Config: target.Config{CertPath: "/srv/web-2/cert.pem", KeyPath: "/srv/web-2/key.pem",
				PostDeployVerify: target.Verify{Endpoint: "web-2:443"}}},
		},
	}
	p.ApplyDefaults()
	return p
}

func renewRequest() RenewRequest {
	return RenewRequest{RequestID: "r-1", CertID: "shop", RequestedBy: "alice", ProfileID: "p-prod"}
}

// renewHarness runs RenewWorkflow with the real ApprovalWorkflow as its
// child (and the real Audit activity), and mocks of Issue, InspectDeployed
// and the child DeployWorkflow that count their calls.
type renewHarness struct {
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	auditPath string
	issued    int
	deployed  []DeployRequest
	deployIDs []string
	deployErr map[string]string // target id → failing outcome
	served    map[string]time.Time
	// inspectErr makes InspectDeployed of a target fail.
	inspectErr map[string]error
	// profile and bypass are the workflow worker's (LoadProfile).
	profile profile.Profile
	bypass  bool
	loaded  []string
}

func newRenewHarness(t *testing.T) *renewHarness {
	s := &testsuite.WorkflowTestSuite{}
	h := &renewHarness{t: t, env: s.NewTestWorkflowEnvironment(), auditPath: filepath.Join(t.TempDir(), "audit.jsonl"),
		deployErr: map[string]string{}, served: map[string]time.Time{}, profile: renewProfile()}
	Register(h.env)
	h.env.RegisterActivity(renewal.New(h.auditPath))
	h.env.OnActivity(a.EarlierRuns, mock.Anything, mock.Anything).Return([]activities.EarlierRun(nil), nil).Maybe() // h4: no earlier run of approval/<id>
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: RenewID("r-1")})
	h.env.OnActivity(ra.LoadProfile, mock.Anything, mock.Anything).Return(func(_ context.Context, in renewal.ProfileInput) (renewal.ProfileResult, error) {
		h.loaded = append(h.loaded, in.ProfileID)
		if in.ProfileID != h.profile.ProfileID {
			return renewal.ProfileResult{}, contract.Invalid("profile_id", "not installed")
		}
		return renewal.ProfileResult{Profile: h.profile, Bypass: h.bypass}, nil
	}).Maybe()
	h.env.OnActivity(ra.Issue, mock.Anything, mock.Anything).Return(func(_ context.Context, in renewal.IssueInput) (renewal.IssueResult, error) {
		h.issued++
		if in.ProfileID != "p-prod" || in.SANs[0] != "shop.example.com" || in.KeyType != profile.KeyECDSAP256 {
			t.Errorf("issue input %+v", in)
		}
		return renewal.IssueResult{Material: material.Material{CertPEM: "new cert", KeyPEM: "new key"}, LeafSHA256: newLeaf,
			Serial: "01", NotAfter: time.Now().Add(90 * 24 * time.Hour)}, nil
	}).Maybe()
	h.env.OnActivity(ra.InspectDeployed, mock.Anything, mock.Anything).Return(func(_ context.Context, tg target.Target) (renewal.Deployed, error) {
		if err := h.inspectErr[tg.TargetID]; err != nil {
			return renewal.Deployed{}, err
		}
		na, ok := h.served[tg.TargetID]
		return renewal.Deployed{TargetID: tg.TargetID, Path: tg.Config.CertPath, Exists: ok, NotAfter: na, LeafSHA256: oldLeaf}, nil
	}).Maybe()
	h.env.OnWorkflow(DeployWorkflow, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, req DeployRequest) (DeployResult, error) {
		h.deployed = append(h.deployed, req)
		h.deployIDs = append(h.deployIDs, workflow.GetInfo(ctx).WorkflowExecution.ID)
		res := DeployResult{Outcome: contract.Deployed, TargetID: req.Target.TargetID, LeafSHA256: newLeaf}
		if o := h.deployErr[req.Target.TargetID]; o != "" {
			res.Outcome, res.Error = o, "served "+oldLeaf[:12]
			return res, temporal.NewNonRetryableApplicationError(res.Error, o, nil, res)
		}
		return res, nil
	}).Maybe()
	return h
}

func (h *renewHarness) run(req RenewRequest) (RenewResult, error) {
	h.t.Helper()
	h.env.ExecuteWorkflow(RenewWorkflow, req)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	var res RenewResult
	err := h.env.GetWorkflowError()
	if err == nil {
		if gerr := h.env.GetWorkflowResult(&res); gerr != nil {
			h.t.Fatal(gerr)
		}
		return res, nil
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		h.t.Fatalf("workflow error is not an application error: %v", err)
	}
	if derr := ae.Details(&res); derr != nil {
		h.t.Fatalf("failure details: %v", derr)
	}
	if ae.Type() != res.Outcome {
		h.t.Fatalf("failure type %q, outcome %q", ae.Type(), res.Outcome)
	}
	return res, err
}

func (h *renewHarness) decide(at time.Duration, requestID, actor, decision string) {
	h.env.RegisterDelayedCallback(func() {
		err := h.env.UpdateWorkflowByID(ApprovalID(requestID), contract.UpdateDecide, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { h.t.Errorf("%s's %s refused: %v", actor, decision, err) },
		}, DecideInput{Actor: actor, Decision: decision})
		if err != nil {
			h.t.Errorf("update approval/%s: %v", requestID, err)
		}
	}, at)
}

func (h *renewHarness) wantNothingDownstream() {
	h.t.Helper()
	if h.issued != 0 || len(h.deployed) != 0 {
		h.t.Fatalf("issued %d times, deployed %d times: nothing may run after a refused approval", h.issued, len(h.deployed))
	}
}

func TestRenewApprovedIssuesAndDeploysEveryTarget(t *testing.T) {
	h := newRenewHarness(t)
	h.decide(10*time.Minute, "r-1", "carol", contract.DecisionApprove)
	res, err := h.run(renewRequest())
	if err != nil || res.Outcome != contract.Deployed {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	if h.issued != 1 || len(h.deployed) != 2 {
		t.Fatalf("issued %d, deployed %d", h.issued, len(h.deployed))
	}
	// The child deploys run side by side: match them by target, not by the
	// order they happened to start in.
	byTarget := map[string]int{}
	for i, d := range h.deployed {
		byTarget[d.Target.TargetID] = i
	}
	for i, id := range []string{"web-1", "web-2"} {
		j, ok := byTarget[id]
		if !ok {
			t.Fatalf("no deploy to %s", id)
		}
		d := h.deployed[j]
		if d.Material.CertPEM != "new cert" || d.Material.KeyPEM != "new key" {
			t.Fatalf("deploy to %s: material %+v", id, d.Material)
		}
		if h.deployIDs[j] != "deploy/"+id+"/renew-r-1" || res.Deploys[i].WorkflowID != h.deployIDs[j] || res.Deploys[i].Outcome != contract.Deployed {
			t.Fatalf("deploy to %s: %s %+v", id, h.deployIDs[j], res.Deploys[i])
		}
	}
	if res.Approval == nil || res.Approval.State != StateApproved || res.Approval.Decisions[0].Actor != "carol" ||
		res.Approval.RequestedBy != "alice" || res.Approval.Subject != "CN=shop.example.com" || res.LeafSHA256 != newLeaf {
		t.Fatalf("result %+v", res)
	}
	wantAudit(t, h.auditPath, "requested:pending:alice", "approved:approved:carol")
}

func TestRenewRejectedRunsNothingDownstream(t *testing.T) {
	h := newRenewHarness(t)
	h.decide(time.Hour, "r-1", "bob", contract.DecisionReject)
	res, err := h.run(renewRequest())
	if contract.Of(err) != contract.ApprovalRejected || res.Outcome != contract.ApprovalRejected || !strings.Contains(res.Error, "bob rejected approval/r-1") {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	h.wantNothingDownstream()
}

func TestRenewExpiredRunsNothingDownstream(t *testing.T) {
	h := newRenewHarness(t)
	req := renewRequest()
	req.ApprovalTimeout = target.Duration(3 * time.Hour)
	start := h.env.Now()
	res, err := h.run(req)
	if contract.Of(err) != contract.ApprovalExpired || res.Approval == nil || res.Approval.State != StateExpired {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	if took := h.env.Now().Sub(start); took < 3*time.Hour || took > 4*time.Hour {
		t.Fatalf("expired after %s", took)
	}
	h.wantNothingDownstream()
	wantAudit(t, h.auditPath, "requested:pending:alice", "expired:expired")
}

// The same request is never asked twice: approval/<request-id> is not
// reused once it closed, so an expired request cannot be retried into running.
func TestRenewRequestIDNeverReused(t *testing.T) {
	h := newRenewHarness(t)
	h.env.OnWorkflow(contract.ApprovalWorkflow, mock.Anything, mock.Anything).Return(ApprovalStatus{},
		&temporal.ChildWorkflowExecutionAlreadyStartedError{})
	res, err := h.run(renewRequest())
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(res.Error, "already used") {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	h.wantNothingDownstream()
}

func TestRenewWithoutApprovalDeploysDirectly(t *testing.T) {
	h := newRenewHarness(t)
	h.profile.RequiresApproval = false
	res, err := h.run(renewRequest())
	if err != nil || res.Outcome != contract.Deployed || res.Approval != nil || h.issued != 1 || len(h.deployed) != 2 {
		t.Fatalf("outcome %s approval %v issued %d deployed %d: %v", res.Outcome, res.Approval, h.issued, len(h.deployed), err)
	}
}

func TestRenewBypassAutoApproves(t *testing.T) {
	h := newRenewHarness(t)
	h.bypass = true
	res, err := h.run(renewRequest())
	if err != nil || res.Outcome != contract.Deployed || res.Approval.State != StateBypassed || res.Approval.Decisions[0].Actor != SystemBypass {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	wantAudit(t, h.auditPath, "requested:pending:alice", "bypassed:bypassed:system-bypass")
}

func TestRenewDeployFailureIsTheOutcome(t *testing.T) {
	h := newRenewHarness(t)
	h.deployErr["web-2"] = contract.VerifyFailed
	h.decide(time.Minute, "r-1", "bob", contract.DecisionApprove)
	res, err := h.run(renewRequest())
	if contract.Of(err) != contract.VerifyFailed || len(res.Deploys) != 2 || res.Deploys[0].Outcome != contract.Deployed ||
		res.Deploys[1].Outcome != contract.VerifyFailed || !strings.Contains(res.Error, "web-2 VerifyFailed") {
		t.Fatalf("outcome %s deploys %+v: %v", res.Outcome, res.Deploys, err)
	}
}

func TestRenewInvalidProfileRefused(t *testing.T) {
	h := newRenewHarness(t)
	h.profile.Targets = nil
	res, err := h.run(renewRequest())
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(res.Error, "targets") {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	h.wantNothingDownstream()
}

// The scheduled path passes through the same gate: a run whose target is
// inside the renewal window asks approval (as the schedule's creator, with
// a fresh request id per run), and a rejection stops it.
func TestScheduledRenewalAsksApproval(t *testing.T) {
	h := newRenewHarness(t)
	h.served["web-1"] = h.env.Now().Add(90 * 24 * time.Hour) // fine
	h.served["web-2"] = h.env.Now().Add(24 * time.Hour)      // inside renew_before (30 days)
	var asked []ApprovalRequest
	var askedID string
	h.env.OnWorkflow(contract.ApprovalWorkflow, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in ApprovalRequest) (ApprovalStatus, error) {
		asked = append(asked, in)
		askedID = workflow.GetInfo(ctx).WorkflowExecution.ID
		return ApprovalStatus{RequestID: in.RequestID, State: StateRejected, Decisions: []Decision{{Actor: "bob", Decision: contract.DecisionReject}}}, nil
	})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "renew/shop/scheduled-2026-06-07T20:31:30Z"})
	req := renewRequest()
	req.RequestID, req.OnlyIfDue = "", true
	res, err := h.run(req)
	if len(asked) != 1 {
		t.Fatalf("the scheduled path asked approval %d times", len(asked))
	}
	if asked[0].RequestedBy != "alice" || asked[0].ProfileID != "p-prod" || !strings.HasPrefix(asked[0].RequestID, "shop-") ||
		askedID != ApprovalID(asked[0].RequestID) || res.RequestID != asked[0].RequestID {
		t.Fatalf("approval asked as %+v with id %s (result request %s)", asked[0], askedID, res.RequestID)
	}
	if contract.Of(err) != contract.ApprovalRejected || len(res.Checked) != 2 {
		t.Fatalf("outcome %s checked %d: %v", res.Outcome, len(res.Checked), err)
	}
	h.wantNothingDownstream()
}

func TestScheduledRenewalNotDueAsksNothing(t *testing.T) {
	h := newRenewHarness(t)
	h.served["web-1"] = h.env.Now().Add(60 * 24 * time.Hour)
	h.served["web-2"] = h.env.Now().Add(80 * 24 * time.Hour)
	h.env.OnWorkflow(contract.ApprovalWorkflow, mock.Anything, mock.Anything).Return(ApprovalStatus{}, nil).Never()
	req := renewRequest()
	req.OnlyIfDue = true
	res, err := h.run(req)
	if err != nil || res.Outcome != contract.RenewalNotDue || res.Approval != nil || len(res.Checked) != 2 {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	h.wantNothingDownstream()
}

// A scheduled renewal whose host's worker never picks up the inspection
// ends HostUnavailable, saying which worker to start.
func TestScheduledRenewalHostUnavailable(t *testing.T) {
	h := newRenewHarness(t)
	h.inspectErr = map[string]error{"web-1": temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)}
	h.served["web-2"] = h.env.Now().Add(80 * 24 * time.Hour)
	req := renewRequest()
	req.OnlyIfDue = true
	res, err := h.run(req)
	want := "HostUnavailable: no worker polled certctl-host-web-1 for 5m0s; start one on web-1 with: certctl-worker --host web-1 (to read web-1's certificate)"
	if err == nil || res.Outcome != contract.HostUnavailable || res.Error != want {
		t.Fatalf("outcome %s, error %q, want %q", res.Outcome, res.Error, want)
	}
	h.wantNothingDownstream()
}

// A target with nothing deployed yet is due.
func TestScheduledRenewalMissingCertIsDue(t *testing.T) {
	h := newRenewHarness(t)
	h.served["web-1"] = h.env.Now().Add(60 * 24 * time.Hour)
	h.decide(time.Minute, "r-1", "bob", contract.DecisionApprove)
	req := renewRequest()
	req.OnlyIfDue = true
	res, err := h.run(req)
	if err != nil || res.Outcome != contract.Deployed || h.issued != 1 {
		t.Fatalf("outcome %s issued %d: %v", res.Outcome, h.issued, err)
	}
}

// A request carries no policy: a start whose JSON says requires_approval:
// false, an empty pool, or approval_bypass still gets the worker's profile
// and the worker's bypass setting (off).
func TestRenewRequestCannotCarryPolicy(t *testing.T) {
	h := newRenewHarness(t)
	req := renewRequest()
	req.ProfileID = ""
	req.LegacyProfile = renewProfile()
	req.LegacyProfile.RequiresApproval = false
	req.LegacyProfile.Approvers = nil
	req.LegacyApprovalBypass = true
	var asked []ApprovalRequest
	h.env.OnWorkflow(contract.ApprovalWorkflow, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in ApprovalRequest) (ApprovalStatus, error) {
		asked = append(asked, in)
		return ApprovalStatus{RequestID: in.RequestID, State: StateRejected, Decisions: []Decision{{Actor: "bob", Decision: contract.DecisionReject}}}, nil
	})
	res, err := h.run(req)
	if contract.Of(err) != contract.ApprovalRejected {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	if len(h.loaded) != 1 || h.loaded[0] != "p-prod" {
		t.Fatalf("profile loaded %v, want the worker's p-prod", h.loaded)
	}
	if len(asked) != 1 || asked[0].Bypass || strings.Join(asked[0].Approvers, ",") != "bob,carol" {
		t.Fatalf("approval asked %+v: the request's policy was obeyed", asked)
	}
	h.wantNothingDownstream()
}

func TestRenewUnknownProfileRefused(t *testing.T) {
	h := newRenewHarness(t)
	req := renewRequest()
	req.ProfileID = "p-nope"
	res, err := h.run(req)
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(res.Error, "profile_id") {
		t.Fatalf("outcome %s: %v", res.Outcome, err)
	}
	h.wantNothingDownstream()
}

// A renewal lands its certificate as a rollout: the canary first; when it
// fails, no other target is deployed and the result says how many were
// left untouched.
func TestRenewCanaryFailureDeploysNothingElse(t *testing.T) {
	h := newRenewHarness(t)
	h.profile.RequiresApproval = false
	third := h.profile.Targets[1]
	third.TargetID = "web-3"
	h.profile.Targets = append(h.profile.Targets, third)
	h.deployErr["web-1"] = contract.ValidateFailed
	res, err := h.run(renewRequest())
	if contract.Of(err) != contract.ValidateFailed || len(h.deployed) != 1 || h.deployed[0].Target.TargetID != "web-1" {
		t.Fatalf("outcome %s, deployed %d: %v", res.Outcome, len(h.deployed), err)
	}
	if res.NotStarted != 2 || !strings.Contains(res.Error, "the rollout halted: 2 targets not started") {
		t.Fatalf("result %+v", res)
	}
}

package workflows

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
)

func approvalRequest() ApprovalRequest {
	return ApprovalRequest{RequestID: "r-1", RequestedBy: "alice", ProfileID: "p-prod", Subject: "CN=shop.example.com",
		SANs: []string{"shop.example.com"}, Approvers: []string{"bob", "carol"}, RequiredApprovals: 1,
		Timeout: target.Duration(168 * time.Hour)}
}

// approvalEnv runs ApprovalWorkflow as approval/r-1 with the real Audit
// activity writing a temporary audit log.
func approvalEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, string) {
	return approvalEnvAfter(t, nil)
}

// approvalEnvAfter is approvalEnv where visibility lists earlier runs of
// approval/r-1 (the EarlierRuns local activity).
func approvalEnvAfter(t *testing.T, earlier []activities.EarlierRun) (*testsuite.TestWorkflowEnvironment, string) {
	t.Helper()
	s := &testsuite.WorkflowTestSuite{}
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	env.RegisterActivity(renewal.New(path))
	env.OnActivity(a.EarlierRuns, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EarlierRunsInput) ([]activities.EarlierRun, error) {
		if in.WorkflowID != ApprovalID("r-1") || in.StateAttribute != "ApprovalState" {
			t.Errorf("EarlierRuns(%+v)", in)
		}
		return earlier, nil
	}).Maybe()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: ApprovalID("r-1")})
	return env, path
}

// update is the outcome of one `decide` sent to the test workflow.
type update struct {
	refused  error
	accepted bool
	done     bool
	status   ApprovalStatus
	err      error
}

func decideAt(t *testing.T, env *testsuite.TestWorkflowEnvironment, at time.Duration, actor, decision, note string) *update {
	u := &update{}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(contract.UpdateDecide, "", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { u.refused = err },
			OnAccept: func() { u.accepted = true },
			OnComplete: func(v any, err error) {
				u.done, u.err = true, err
				if err == nil {
					s, ok := v.(ApprovalStatus)
					if !ok {
						t.Errorf("update result is %T", v)
					}
					u.status = s
				}
			},
		}, DecideInput{Actor: actor, Decision: decision, Note: note})
	}, at)
	return u
}

func signalAt(env *testsuite.TestWorkflowEnvironment, at time.Duration, name string, body any) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(name, body) }, at)
}

func finalState(t *testing.T, env *testsuite.TestWorkflowEnvironment) ApprovalStatus {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var st ApprovalStatus
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func wantRefused(t *testing.T, u *update, substr string) {
	t.Helper()
	if u.refused == nil {
		t.Fatalf("update was not refused (accepted %v, err %v)", u.accepted, u.err)
	}
	if u.accepted || u.done {
		t.Fatal("a refused update must never be accepted: validator rejections do not enter history")
	}
	if contract.Of(u.refused) != contract.ApprovalRefused {
		t.Fatalf("refusal type %q, want %s: %v", contract.Of(u.refused), contract.ApprovalRefused, u.refused)
	}
	if !strings.Contains(u.refused.Error(), substr) {
		t.Fatalf("refusal %q lacks %q", u.refused, substr)
	}
}

func wantAccepted(t *testing.T, u *update) {
	t.Helper()
	if u.refused != nil || !u.accepted || !u.done || u.err != nil {
		t.Fatalf("update: refused %v, accepted %v, done %v, err %v", u.refused, u.accepted, u.done, u.err)
	}
}

func auditEvents(t *testing.T, path string) []string {
	t.Helper()
	evs, err := audit.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		s := e.Event + ":" + e.State
		if e.Actor != "" {
			s += ":" + e.Actor
		}
		out = append(out, s)
	}
	return out
}

func wantAudit(t *testing.T, path string, want ...string) {
	t.Helper()
	if got := auditEvents(t, path); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit log:\n got  %v\n want %v", got, want)
	}
}

func TestApprovalExpiresAfterSevenDaysByDefault(t *testing.T) {
	env, path := approvalEnv(t)
	req := approvalRequest()
	req.Timeout = 0
	var states, decidedBy []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if v, ok := sa.GetKeyword(ApprovalStateKey); ok {
			states = append(states, v)
		}
		if v, ok := sa.GetKeyword(ApprovalDecidedByKey); ok {
			decidedBy = append(decidedBy, v)
		}
	}).Return(nil)
	start := env.Now()
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	if st.State != StateExpired || len(st.Decisions) != 0 {
		t.Fatalf("state %s decisions %v", st.State, st.Decisions)
	}
	if st.Deadline.Sub(st.RequestedAt) != 168*time.Hour || env.Now().Sub(start) < 168*time.Hour {
		t.Fatalf("deadline %s after the request; workflow clock moved %s", st.Deadline.Sub(st.RequestedAt), env.Now().Sub(start))
	}
	if strings.Join(states, ",") != "pending,expired" || len(decidedBy) != 0 {
		t.Fatalf("ApprovalState upserts %v, ApprovalDecidedBy %v", states, decidedBy)
	}
	wantAudit(t, path, "requested:pending:alice", "expired:expired")
	evs, _ := audit.Read(path)
	if evs[1].PendingSeconds != (168 * time.Hour).Seconds() {
		t.Fatalf("pending seconds %v", evs[1].PendingSeconds)
	}
}

// A custom timeout, and a decision that arrives once the request expired
// (while its last audit line is still being written) is refused.
func TestApprovalCustomTimeoutThenDecisionRefused(t *testing.T) {
	env, _ := approvalEnv(t)
	req := approvalRequest()
	req.Timeout = target.Duration(2 * time.Hour)
	env.OnActivity(ra.Audit, mock.Anything, mock.Anything).Return(renewal.AuditResult{Written: true}, nil).After(time.Minute)
	late := decideAt(t, env, 2*time.Hour+30*time.Second, "bob", contract.DecisionApprove, "too late")
	start := env.Now()
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	if st.State != StateExpired || st.Deadline.Sub(st.RequestedAt) != 2*time.Hour {
		t.Fatalf("state %s, deadline after %s", st.State, st.Deadline.Sub(st.RequestedAt))
	}
	if took := env.Now().Sub(start); took < 2*time.Hour || took > 3*time.Hour {
		t.Fatalf("expired after %s", took)
	}
	wantRefused(t, late, "already expired")
	if len(st.Decisions) != 0 {
		t.Fatalf("decisions %v", st.Decisions)
	}
}

func TestApprovalApprovedByAnotherActor(t *testing.T) {
	env, path := approvalEnv(t)
	var pending ApprovalStatus
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(contract.QueryState)
		if err != nil {
			t.Error(err)
			return
		}
		_ = v.Get(&pending)
	}, 30*time.Minute)
	u := decideAt(t, env, time.Hour, "Bob", contract.DecisionApprove, "ticket 123")
	env.ExecuteWorkflow(ApprovalWorkflow, approvalRequest())
	st := finalState(t, env)
	wantAccepted(t, u)
	if pending.State != StatePending || pending.RequestedBy != "alice" || pending.Deadline.Sub(pending.RequestedAt) != 168*time.Hour ||
		pending.Subject != "CN=shop.example.com" || len(pending.Decisions) != 0 || pending.Refused == nil {
		t.Fatalf("query state while pending: %+v", pending)
	}
	if st.State != StateApproved || len(st.Decisions) != 1 || st.Decisions[0].Actor != "bob" || st.Decisions[0].Note != "ticket 123" {
		t.Fatalf("final %+v", st)
	}
	if u.status.State != StateApproved {
		t.Fatalf("the update returns the state after the decision: %s", u.status.State)
	}
	wantAudit(t, path, "requested:pending:alice", "approved:approved:bob") // recorded as identity.Canonical maps it
	evs, _ := audit.Read(path)
	if evs[1].PendingSeconds != 3600 || evs[1].Via != "update" || evs[1].Note != "ticket 123" || evs[1].ID == evs[0].ID {
		t.Fatalf("approval line %+v", evs[1])
	}
}

func TestApprovalSelfApprovalRefusedTrimmedAndCaseFolded(t *testing.T) {
	env, path := approvalEnv(t)
	self := decideAt(t, env, time.Minute, " ALICE ", contract.DecisionApprove, "")
	selfReject := decideAt(t, env, 2*time.Minute, "alice", contract.DecisionReject, "")
	ok := decideAt(t, env, 3*time.Minute, "carol", contract.DecisionApprove, "")
	env.ExecuteWorkflow(ApprovalWorkflow, approvalRequest())
	st := finalState(t, env)
	wantRefused(t, self, "two-person integrity")
	wantRefused(t, selfReject, "two-person integrity")
	wantAccepted(t, ok)
	if st.State != StateApproved || len(st.Decisions) != 1 || st.Decisions[0].Actor != "carol" || len(st.Refused) != 0 {
		t.Fatalf("final %+v", st)
	}
	// A refused update is not in history, so neither in state nor audit.
	wantAudit(t, path, "requested:pending:alice", "approved:approved:carol")
}

// Two of three: one approval leaves it pending, the same approver again is
// refused, a non-approver is refused, a second distinct approver approves.
func TestApprovalTwoOfThree(t *testing.T) {
	env, path := approvalEnv(t)
	req := approvalRequest()
	req.Approvers, req.RequiredApprovals = []string{"bob", "carol", "dave"}, 2
	first := decideAt(t, env, time.Minute, "bob", contract.DecisionApprove, "")
	again := decideAt(t, env, 2*time.Minute, " BOB", contract.DecisionApprove, "")
	stranger := decideAt(t, env, 3*time.Minute, "mallory", contract.DecisionApprove, "")
	second := decideAt(t, env, 4*time.Minute, "dave", contract.DecisionApprove, "")
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	wantAccepted(t, first)
	if first.status.State != StatePending || first.status.Approvals() != 1 {
		t.Fatalf("after one of two: %s with %d", first.status.State, first.status.Approvals())
	}
	wantRefused(t, again, "already approved")
	wantRefused(t, stranger, "not an approver")
	wantAccepted(t, second)
	if st.State != StateApproved || st.Approvals() != 2 || st.RequiredApprovals != 2 {
		t.Fatalf("final %+v", st)
	}
	wantAudit(t, path, "requested:pending:alice", "approved:pending:bob", "approved:approved:dave")
}

func TestApprovalRejectEndsIt(t *testing.T) {
	env, path := approvalEnv(t)
	req := approvalRequest()
	req.RequiredApprovals = 2
	var decidedBy string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(ApprovalDecidedByKey); ok {
			decidedBy = v
		}
	}).Return(nil)
	approve := decideAt(t, env, time.Minute, "bob", contract.DecisionApprove, "")
	reject := decideAt(t, env, 2*time.Minute, "carol", contract.DecisionReject, "wrong SANs")
	late := decideAt(t, env, 3*time.Minute, "bob", contract.DecisionReject, "")
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	wantAccepted(t, approve)
	wantAccepted(t, reject)
	if st.State != StateRejected || len(st.Decisions) != 2 || decidedBy != "carol" {
		t.Fatalf("final %+v, decided by %q", st, decidedBy)
	}
	if late.accepted {
		t.Fatal("a decision after the reject must not be obeyed")
	}
	wantAudit(t, path, "requested:pending:alice", "approved:pending:bob", "rejected:rejected:carol")
}

// An approver who approved may still reject: stopping is always allowed.
func TestApprovalApproverChangesMindToReject(t *testing.T) {
	env, path := approvalEnv(t)
	req := approvalRequest()
	req.RequiredApprovals = 2
	approve := decideAt(t, env, time.Minute, "bob", contract.DecisionApprove, "")
	again := decideAt(t, env, 2*time.Minute, "bob", contract.DecisionApprove, "")
	reject := decideAt(t, env, 3*time.Minute, " Bob", contract.DecisionReject, "changed my mind")
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	wantAccepted(t, approve)
	wantRefused(t, again, "already approved")
	wantAccepted(t, reject)
	if st.State != StateRejected {
		t.Fatalf("final %+v", st)
	}
	wantAudit(t, path, "requested:pending:alice", "approved:pending:bob", "rejected:rejected:bob")
}

func TestApprovalRefusesMalformedDecisions(t *testing.T) {
	env, _ := approvalEnv(t)
	req := approvalRequest()
	req.Timeout = target.Duration(time.Hour)
	empty := decideAt(t, env, time.Minute, "  ", contract.DecisionApprove, "")
	maybe := decideAt(t, env, 2*time.Minute, "bob", "maybe", "")
	long := decideAt(t, env, 3*time.Minute, "bob", contract.DecisionApprove, strings.Repeat("x", MaxNote+1))
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	wantRefused(t, empty, "actor is empty")
	wantRefused(t, maybe, `decision "maybe"`)
	wantRefused(t, long, "note is longer")
	if st.State != StateExpired {
		t.Fatalf("state %s", st.State)
	}
}

// Anyone but the requester, when the pool is empty.
func TestApprovalEmptyPoolAnyoneButRequester(t *testing.T) {
	env, _ := approvalEnv(t)
	req := approvalRequest()
	req.Approvers = nil
	self := decideAt(t, env, time.Minute, "Alice", contract.DecisionApprove, "")
	other := decideAt(t, env, 2*time.Minute, "zed", contract.DecisionApprove, "")
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	wantRefused(t, self, "two-person integrity")
	wantAccepted(t, other)
	if st.State != StateApproved || len(st.Approvers) != 0 {
		t.Fatalf("final %+v", st)
	}
}

func TestApprovalBypass(t *testing.T) {
	env, path := approvalEnv(t)
	req := approvalRequest()
	req.Bypass = true
	var decidedBy []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(ApprovalDecidedByKey); ok {
			decidedBy = append(decidedBy, v)
		}
	}).Return(nil)
	start := env.Now()
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	if st.State != StateBypassed || len(st.Decisions) != 1 || st.Decisions[0].Actor != SystemBypass {
		t.Fatalf("final %+v", st)
	}
	if strings.Join(decidedBy, ",") != SystemBypass {
		t.Fatalf("ApprovalDecidedBy upserts %v", decidedBy)
	}
	if env.Now().Sub(start) > time.Minute {
		t.Fatal("a bypass must not wait")
	}
	wantAudit(t, path, "requested:pending:alice", "bypassed:bypassed:system-bypass")
}

// Signals are for the temporal CLI: a refused one is recorded in state and
// the audit log, never obeyed; one that arrives after the request closed is
// refused and recorded before the workflow ends.
func TestApprovalSignalsRefusedAndRecorded(t *testing.T) {
	env, path := approvalEnv(t)
	signalAt(env, time.Minute, contract.SignalApprove, SignalInput{Actor: "ALICE", Note: "my own"})
	signalAt(env, 2*time.Minute, contract.SignalReject, SignalInput{Actor: "mallory"})
	signalAt(env, 3*time.Minute, contract.SignalApprove, "bob") // not an object
	signalAt(env, 4*time.Minute, contract.SignalApprove, nil)   // JSON null: no actor
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(contract.SignalApprove, SignalInput{Actor: "bob", Note: "ok"})
		env.SignalWorkflow(contract.SignalReject, SignalInput{Actor: "carol", Note: "late"})
	}, 5*time.Minute)
	env.ExecuteWorkflow(ApprovalWorkflow, approvalRequest())
	st := finalState(t, env)
	if st.State != StateApproved || len(st.Decisions) != 1 || st.Decisions[0].Actor != "bob" {
		t.Fatalf("final %+v", st)
	}
	var reasons []string
	for _, r := range st.Refused {
		reasons = append(reasons, r.Actor+"/"+r.Decision+": "+r.Reason)
		if r.Via != "signal" || r.At.IsZero() {
			t.Fatalf("refusal %+v", r)
		}
	}
	want := []string{"ALICE/approve: two-person integrity", "mallory/reject: mallory is not an approver", "/approve: the body is not",
		"/approve: actor is empty", "carol/reject: request r-1 is already approved"}
	if len(reasons) != len(want) {
		t.Fatalf("refused:\n%s", strings.Join(reasons, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(reasons[i], want[i]) {
			t.Fatalf("refusal %d: %q, want prefix %q", i, reasons[i], want[i])
		}
	}
	wantAudit(t, path, "requested:pending:alice", "refused:pending:ALICE", "refused:pending:mallory", "refused:pending",
		"refused:pending", "approved:approved:bob", "refused:approved:carol")
}

func TestApprovalInvalidInput(t *testing.T) {
	for _, c := range []struct {
		name, field string
		mod         func(*ApprovalRequest)
		id          string
	}{
		{"request id", "request_id", func(r *ApprovalRequest) { r.RequestID = "r/1" }, "approval/r/1"},
		{"requester", "requested_by", func(r *ApprovalRequest) { r.RequestedBy = " " }, ""},
		{"unreachable M", "required_approvals", func(r *ApprovalRequest) { r.Approvers = []string{"alice", "bob"}; r.RequiredApprovals = 2 }, ""},
		{"duplicate approver", "approvers[1]", func(r *ApprovalRequest) { r.Approvers = []string{"bob", "BOB"} }, ""},
		{"profile", "profile_id", func(r *ApprovalRequest) { r.ProfileID = "" }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, _ := approvalEnv(t)
			if c.id != "" {
				env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: c.id})
			}
			req := approvalRequest()
			c.mod(&req)
			env.ExecuteWorkflow(ApprovalWorkflow, req)
			err := env.GetWorkflowError()
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != contract.InvalidInput || !strings.Contains(ae.Error(), c.field) {
				t.Fatalf("want InvalidInput naming %s, got %v", c.field, err)
			}
		})
	}
}

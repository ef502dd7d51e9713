package workflows

// Issue 10's look-alike actors, as an attacker tries them: the requester
// spells herself so that certctl takes her for someone else, a pool lists
// one person twice in two spellings, a closed request ID is started again.

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// openRequest is alice's request with an empty pool (anyone but alice
// decides): the case where a second spelling of alice would pass as someone
// else. It expires after an hour.
func openRequest() ApprovalRequest {
	req := approvalRequest()
	req.Approvers = nil
	req.Timeout = target.Duration(time.Hour)
	return req
}

// states records every ApprovalState the workflow upserts.
func states(env *testsuite.TestWorkflowEnvironment) *[]string {
	var got []string
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(ApprovalStateKey); ok {
			got = append(got, v)
		}
	}).Return(nil)
	return &got
}

func TestApprovalLookAlikeRequesterCannotSelfApprove(t *testing.T) {
	for _, c := range []struct{ name, actor, want string }{
		{"cyrillic a", "\u0430lice", `actor: "\u0430lice" mixes scripts`},
		{"zero-width space", "alice\u200b", `actor: "alice\u200b" holds U+200B`},
		{"full-width", "ａｌｉｃｅ", "two-person integrity: alice requested r-1"},
		{"case and spaces", " ALICE ", "two-person integrity: alice requested r-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, path := approvalEnv(t)
			u := decideAt(t, env, time.Minute, c.actor, contract.DecisionApprove, "it's me, someone else")
			env.ExecuteWorkflow(ApprovalWorkflow, openRequest())
			st := finalState(t, env)
			wantRefused(t, u, c.want)
			if st.State != StateExpired || len(st.Decisions) != 0 {
				t.Fatalf("alice spelled %+q decided her own request: %+v", c.actor, st)
			}
			wantAudit(t, path, "requested:pending:alice", "expired:expired")
		})
	}
}

func TestApprovalLookAlikeSignalsRecordedNeverObeyed(t *testing.T) {
	env, path := approvalEnv(t)
	signalAt(env, time.Minute, contract.SignalApprove, SignalInput{Actor: "ａｌｉｃｅ", Note: "full width"})
	signalAt(env, 2*time.Minute, contract.SignalApprove, SignalInput{Actor: "\u0430lice"})
	signalAt(env, 3*time.Minute, contract.SignalApprove, SignalInput{Actor: "alice\u200b"})
	env.ExecuteWorkflow(ApprovalWorkflow, openRequest())
	st := finalState(t, env)
	if st.State != StateExpired || len(st.Decisions) != 0 || len(st.Refused) != 3 {
		t.Fatalf("look-alike signals: %+v", st)
	}
	for i, want := range []string{"two-person integrity", "mixes scripts", "U+200B"} {
		if r := st.Refused[i]; !strings.Contains(r.Reason, want) || r.Via != "signal" {
			t.Errorf("refused[%d] = %+v, want a reason naming %q", i, r, want)
		}
	}
	// The refusal keeps the spelling that was tried: the evidence.
	if st.Refused[0].Actor != "ａｌｉｃｅ" {
		t.Errorf("refused actor %+q", st.Refused[0].Actor)
	}
	wantAudit(t, path, "requested:pending:alice", "refused:pending:ａｌｉｃｅ", "refused:pending:\u0430lice",
		"refused:pending:alice\u200b", "expired:expired")
}

func TestApprovalPoolRefusedAtStart(t *testing.T) {
	for _, c := range []struct {
		name      string
		approvers []string
		want      string
	}{
		{"look-alike entry", []string{"bob", "b\u043eb"}, `approvers[1]: "b\u043eb" mixes scripts`},
		{"full-width collision", []string{"bob", "ｂｏｂ"}, `approvers[1]: "\uff42\uff4f\uff42" and approvers[0] "bob" are one identity (bob)`},
		{"case collision", []string{"Bob", "bob"}, "approvers[1]"},
		{"invisible entry", []string{"carol", "bob\u200b"}, `approvers[1]: "bob\u200b" holds U+200B`},
		{"requester look-alike", []string{"bob", "\u0430lice"}, "approvers[1]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, path := approvalEnv(t)
			got := states(env)
			req := approvalRequest()
			req.Approvers, req.RequiredApprovals = c.approvers, 2
			env.ExecuteWorkflow(ApprovalWorkflow, req)
			err := env.GetWorkflowError()
			if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("pool %+q: want InvalidInput naming %q, got %v", c.approvers, c.want, err)
			}
			if _, err := os.Stat(path); len(*got) != 0 || !os.IsNotExist(err) {
				t.Fatalf("a refused pool left states %v and an audit log (%v)", *got, err)
			}
		})
	}
}

func TestApprovalRequesterMustBeAnIdentity(t *testing.T) {
	env, _ := approvalEnv(t)
	req := openRequest()
	req.RequestedBy = "alice\u200b"
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	if err := env.GetWorkflowError(); contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), "requested_by: ") {
		t.Fatalf("want InvalidInput naming requested_by, got %v", err)
	}
}

// The pool and the requester are recorded, and compared, as mapped: bob in
// full width is bob.
func TestApprovalMappedPoolMember(t *testing.T) {
	env, _ := approvalEnv(t)
	req := approvalRequest()
	req.RequestedBy, req.Approvers = "Alice", []string{"ＢＯＢ", "carol"}
	u := decideAt(t, env, time.Minute, "bob", contract.DecisionApprove, "")
	env.ExecuteWorkflow(ApprovalWorkflow, req)
	st := finalState(t, env)
	wantAccepted(t, u)
	if st.State != StateApproved || st.RequestedBy != "alice" || strings.Join(st.Approvers, ",") != "bob,carol" || st.Decisions[0].Actor != "bob" {
		t.Fatalf("final %+v", st)
	}
}

// A request ID whose earlier run is closed stays closed: the new run ends
// at once as RequestClosed, never pending, the refusal audited.
func TestApprovalReusedRequestIDRefused(t *testing.T) {
	env, path := approvalEnvAfter(t, []activities.EarlierRun{{RunID: "run-0", Status: "completed", State: StateRejected,
		StartTime: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}})
	got := states(env)
	u := decideAt(t, env, time.Minute, "bob", contract.DecisionApprove, "")
	env.ExecuteWorkflow(ApprovalWorkflow, approvalRequest())
	err := env.GetWorkflowError()
	if contract.Of(err) != contract.RequestClosed || !strings.Contains(err.Error(), "run-0 (rejected, completed, started 2026-11-30T09:00:00Z)") {
		t.Fatalf("want RequestClosed naming the earlier run, got %v", err)
	}
	if strings.Join(*got, ",") != StateRefused {
		t.Fatalf("ApprovalState upserts %v, want only %s", *got, StateRefused)
	}
	if u.accepted {
		t.Fatal("a decision was taken by a refused run")
	}
	wantAudit(t, path, "refused:refused:alice")
}

// Runs started before identityVersion replay as they ran; their update
// validator (never in history) still refuses look-alikes.
func TestApprovalOldRunValidatorRefusesLookAlikes(t *testing.T) {
	env, _ := approvalEnv(t)
	env.OnGetVersion(identityChange, workflow.DefaultVersion, identityVersion).Return(workflow.DefaultVersion)
	cyr := decideAt(t, env, time.Minute, "\u0430lice", contract.DecisionApprove, "")
	wide := decideAt(t, env, 2*time.Minute, "ａｌｉｃｅ", contract.DecisionApprove, "")
	env.ExecuteWorkflow(ApprovalWorkflow, openRequest())
	st := finalState(t, env)
	wantRefused(t, cyr, "mixes scripts")
	wantRefused(t, wide, "two-person integrity")
	if st.State != StateExpired || len(st.Decisions) != 0 {
		t.Fatalf("final %+v", st)
	}
}

package testsuite_test

// Issue 10's look-alike actors through the operator's interface only: the
// temporal CLI's update and signal, certctl approvals, and the plain
// `temporal workflow start` of a request ID already used.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// startApproval starts ApprovalWorkflow with the temporal CLI, as DESIGN's
// contract has it.
func startApproval(t *testing.T, codecURL, req, approvers string, m int) string {
	t.Helper()
	id := workflows.ApprovalID(req)
	input := fmt.Sprintf(`{"request_id":%q,"requested_by":"alice","profile_id":"p-prod","subject":"CN=shop.example.com","approvers":%s,"required_approvals":%d,"timeout":"168h"}`,
		req, approvers, m)
	if s := tctl(t, codecURL, "workflow", "start", "--type", "ApprovalWorkflow", "--task-queue", "certctl", "--workflow-id", id, "--input", input); s.code != 0 {
		t.Fatalf("start: exit %d", s.code)
	}
	return id
}

// endsAtOnce waits (30s at most) for the latest run of id to end and
// returns its error.
func endsAtOnce(t *testing.T, id string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st workflows.ApprovalStatus
	err := env.client.GetWorkflow(ctx, id, "").Get(ctx, &st)
	if ctx.Err() != nil {
		t.Fatalf("%s is still running after 30s (state %+v): it should have ended at once", id, approvalState(t, id))
	}
	return err
}

// neverPending says no run of id reads ApprovalState "pending".
func neverPending(t *testing.T, id string) {
	t.Helper()
	q := fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending" AND ExecutionStatus = "Running"`, id)
	resp, err := env.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: q})
	if err != nil || len(resp.Executions) != 0 {
		t.Fatalf("%s is pending: %v %v", id, resp.GetExecutions(), err)
	}
}

func TestIntegrationAttackLookAlikeActors(t *testing.T) {
	cleanAuditLog(t)
	codecURL := codecEndpoint(t)
	req := uniqueID("itest-lookalike")
	// An empty pool: anyone but alice decides, so a second spelling of
	// alice would pass for someone else.
	id := startApproval(t, codecURL, req, "[]", 1)
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending"`, id))

	for _, c := range []struct{ actor, want string }{
		{`\u0430lice`, "mixes scripts"}, // Cyrillic а, as JSON
		{`alice\u200b`, "U+200B"},       // zero-width space
		{"ａｌｉｃｅ", "two-person integrity"},
		{" ALICE ", "two-person integrity"},
	} {
		u := tctl(t, codecURL, "workflow", "update", "execute", "--workflow-id", id, "--name", "decide",
			"--input", fmt.Sprintf(`{"actor":"%s","decision":"approve","note":"someone else"}`, c.actor))
		if u.code == 0 || !strings.Contains(u.stdout+u.stderr, c.want) {
			t.Fatalf("update decide as %q: exit %d, want a refusal naming %q", c.actor, u.code, c.want)
		}
	}
	if a := certctlRun(t, "approvals", "approve", req, "--as", "\u0430lice"); a.code != 2 || !strings.Contains(a.stderr, "invalid input: --as") ||
		!strings.Contains(a.stderr, "mixes scripts") {
		t.Fatalf("certctl approvals approve --as a look-alike: exit %d", a.code)
	}
	if s := tctl(t, codecURL, "workflow", "signal", "--workflow-id", id, "--name", "approve",
		"--input", `{"actor":"ａｌｉｃｅ","note":"full width"}`); s.code != 0 {
		t.Fatalf("signal: exit %d", s.code)
	}
	var st workflows.ApprovalStatus
	testsuite.Poll(30*time.Second, func() (bool, string) {
		st = approvalState(t, id)
		return len(st.Refused) > 0, "no refused signal recorded yet"
	})
	if st.State != workflows.StatePending || len(st.Decisions) != 0 || len(st.Refused) != 1 ||
		st.Refused[0].Actor != "ａｌｉｃｅ" || !strings.Contains(st.Refused[0].Reason, "two-person integrity") {
		t.Fatalf("after the full-width signal: %+v", st)
	}
	if r := tctl(t, codecURL, "workflow", "update", "execute", "--workflow-id", id, "--name", "decide",
		"--input", `{"actor":"ＢＯＢ","decision":"reject","note":"not this one"}`); r.code != 0 {
		t.Fatalf("bob's reject: exit %d", r.code)
	}
	if err := endsAtOnce(t, id); err != nil {
		t.Fatal(err)
	}
	if st := approvalState(t, id); st.State != workflows.StateRejected || st.Decisions[0].Actor != "bob" {
		t.Fatalf("final %+v", st)
	}
	wantAuditOf(t, req, "requested:alice", "refused:ａｌｉｃｅ", "rejected:bob")
	record(t, id, "approval-identity-rejected")

}

// A closed request, started again with the plain temporal CLI (its default
// reuse policy allows it): the new run ends at once, refused, never pending.
func TestIntegrationAttackClosedRequestStartedAgain(t *testing.T) {
	cleanAuditLog(t)
	codecURL := codecEndpoint(t)
	req := uniqueID("itest-reuse")
	id := startApproval(t, codecURL, req, `["bob"]`, 1)
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending"`, id))
	if s := tctl(t, codecURL, "workflow", "signal", "--workflow-id", id, "--name", "reject", "--input", `{"actor":"bob"}`); s.code != 0 {
		t.Fatalf("signal: exit %d", s.code)
	}
	if err := endsAtOnce(t, id); err != nil {
		t.Fatal(err)
	}
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "rejected"`, id))

	startApproval(t, codecURL, req, `["bob"]`, 1)
	err := endsAtOnce(t, id)
	if contract.Of(err) != contract.RequestClosed || !strings.Contains(err.Error(), "rejected, completed") {
		t.Fatalf("a closed request started again ended %v", err)
	}
	neverPending(t, id)
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "refused"`, id))
	if u := tctl(t, codecURL, "workflow", "update", "execute", "--workflow-id", id, "--name", "decide",
		"--input", `{"actor":"bob","decision":"approve"}`); u.code == 0 {
		t.Fatal("a decision on the reused request ID was taken")
	}
	wantAuditOf(t, req, "requested:alice", "rejected:bob", "refused:alice")
	record(t, id, "approval-identity-reused")
}

// A pool that lists bob twice, the second in Cyrillic, with two of two
// required: refused at start, nothing pending.
func TestIntegrationAttackLookAlikePool(t *testing.T) {
	cleanAuditLog(t)
	codecURL := codecEndpoint(t)
	for _, c := range []struct{ pool, want string }{
		{`["bob","b\u043eb"]`, `approvers[1]: "b\u043eb" mixes scripts`},
		{`["bob","ｂｏｂ"]`, "are one identity (bob)"},
	} {
		req := uniqueID("itest-pool")
		id := startApproval(t, codecURL, req, c.pool, 2)
		err := endsAtOnce(t, id)
		if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("pool %s ended %v, want InvalidInput naming %q", c.pool, err, c.want)
		}
		neverPending(t, id)
		if evs, err := audit.Read(auditLog); err == nil {
			for _, e := range evs {
				if e.RequestID == req {
					t.Fatalf("a refused pool was audited as %s", e.Event)
				}
			}
		}
	}
}

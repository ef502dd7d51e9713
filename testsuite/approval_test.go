package testsuite_test

// Approvals and renewal on the real dev server, through the operator's
// interface only: the certctl binary and the temporal CLI (with a codec
// server, so what it sends is encrypted like everything else).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/codec"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/issuers/localca"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// auditLog is where the workers TestMain starts write the approval audit
// log: they inherit this process's environment, set here before TestMain
// runs, so no test writes under /var/lib/certctl. Each approval test removes
// it when done (the worker recreates it on the next event).
var auditLog = func() string {
	p := filepath.Join(os.TempDir(), fmt.Sprintf("certctl-itest-audit-%d", os.Getpid()), "audit.jsonl")
	_ = os.Setenv(audit.EnvPath, p)
	return p
}()

func cleanAuditLog(t *testing.T) {
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(auditLog)) })
}

// codecEndpoint serves the test codec for the temporal CLI's --codec-endpoint.
func codecEndpoint(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(codec.Handler(env.codec, codec.ServerOptions{}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// cliRun is one run of a CLI (certctl, temporal): its exit code and output.
type cliRun = deployRun

func runLogged(t *testing.T, name string, cmd *exec.Cmd) cliRun {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	t.Logf("$ %s %s\n%s%s(exit %d)", name, strings.Join(cmd.Args[1:], " "), r.stdout, r.stderr, r.code)
	return r
}

// temporalCLI runs the temporal CLI against the dev server through the codec.
func tctl(t *testing.T, codecURL string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(env.temporalCLI, append(args, "--address", env.address, "--codec-endpoint", codecURL, "--color", "never")...)
	return runLogged(t, "temporal", cmd)
}

func certctlExec(args ...string) *exec.Cmd {
	cmd := exec.Command(env.certctl, args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+env.address, "CERTCTL_HOST_WAIT=1m")
	return cmd
}

func certctlRun(t *testing.T, args ...string) cliRun {
	t.Helper()
	return runLogged(t, "certctl", certctlExec(args...))
}

// renewProc is a `certctl renew` running in the background.
type renewProc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func startRenew(t *testing.T, args ...string) *renewProc {
	t.Helper()
	r := &renewProc{cmd: certctlExec(append([]string{"renew"}, args...)...)}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	return r
}

func (r *renewProc) wait(t *testing.T) cliRun {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		_ = r.cmd.Process.Kill()
		t.Fatalf("certctl renew did not finish:\n%s%s", r.stdout.String(), r.stderr.String())
	}
	res := cliRun{stdout: r.stdout.String(), stderr: r.stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("$ certctl %s\n%s%s(exit %d)", strings.Join(r.cmd.Args[1:], " "), res.stdout, res.stderr, res.code)
	return res
}

// newLocalCA writes a CA for the profile's localca issuer.
func newLocalCA(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := localca.Create(certPath, keyPath, "certctl itest local CA", 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return
}

// writeRenewProfile installs a profile in the workflow worker's profiles
// directory (CERTCTL_PROFILES_DIR) as <id>.yaml, its one target a target
// file of its own, and returns the ID `certctl renew --profile` names.
func writeRenewProfile(t *testing.T, id string, approvers []string, m int, tg target.Target) string {
	t.Helper()
	p := filepath.Join(env.profilesDir, id+".yaml")
	if err := os.WriteFile(p, renewProfileText(t, id, true, approvers, m, tg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(p) })
	return id
}

// renewProfileText is a profile file whose one target is a target file in a
// temp dir of its own.
func renewProfileText(t *testing.T, id string, requiresApproval bool, approvers []string, m int, tg target.Target) []byte {
	t.Helper()
	dir := t.TempDir()
	b, err := yaml.Marshal(tg)
	if err != nil {
		t.Fatal(err)
	}
	targetFile := filepath.Join(dir, "target.yaml")
	if err := os.WriteFile(targetFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	caCert, caKey := newLocalCA(t)
	return []byte(fmt.Sprintf(`profile_id: %s
requires_approval: %t
required_approvals: %d
approvers: [%s]
key_type: ecdsa-p256
validity: 720h
subject: {common_name: localhost, organization: [certctl itest]}
sans: [localhost, 127.0.0.1]
issuer: {type: localca, ca_cert: %s, ca_key: %s}
targets:
  - %s
`, id, requiresApproval, m, strings.Join(approvers, ", "), caCert, caKey, targetFile))
}

// waitApproval polls visibility until a query finds one approval request.
func waitApproval(t *testing.T, query string) *workflowservice.ListWorkflowExecutionsResponse {
	t.Helper()
	var resp *workflowservice.ListWorkflowExecutionsResponse
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		var err error
		resp, err = env.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		return err == nil && len(resp.Executions) == 1, fmt.Sprintf("no approval request for %s (err %v)", query, err)
	})
	return resp
}

func approvalState(t *testing.T, workflowID string) workflows.ApprovalStatus {
	t.Helper()
	v, err := env.client.QueryWorkflow(context.Background(), workflowID, "", contract.QueryState)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.ApprovalStatus
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// auditOf lists "event:actor" for one request, in file order.
func auditEventsOf(t *testing.T, requestID string) []string {
	t.Helper()
	evs, err := audit.Read(auditLog)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.RequestID == requestID {
			out = append(out, e.Event+":"+e.Actor)
		}
	}
	return out
}

func wantAuditOf(t *testing.T, requestID string, want ...string) {
	t.Helper()
	if got := auditEventsOf(t, requestID); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit log for %s:\n got  %v\n want %v", requestID, got, want)
	}
}

// historyText is a workflow's history as JSON, payloads as stored.
func historyJSON(t *testing.T, workflowID string) (string, map[enumspb.EventType]int) {
	t.Helper()
	it := env.client.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var b strings.Builder
	types := map[enumspb.EventType]int{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		types[ev.GetEventType()]++
		j, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(j)
	}
	return b.String(), types
}

func uniqueID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

// The whole path with the temporal CLI: alice asks; her own approval is
// refused by the update's validator (two-person integrity, never in history)
// and, as a signal, recorded and not obeyed; bob approves by signal; the new
// certificate is issued by the local CA and served by nginx; the audit log
// holds the events in order.
func TestIntegrationRenewApprovedThroughTemporalCLI(t *testing.T) {
	cleanAuditLog(t)
	n, initial := startNginx(t)
	codecURL := codecEndpoint(t)
	profile := writeRenewProfile(t, "p-itest-cli", []string{"bob", "carol"}, 1, n.Target("renew-cli", testHost))
	req := uniqueID("itest-cli")
	approvalID := workflows.ApprovalID(req)
	r := startRenew(t, "--profile", profile, "--cert-id", "shop", "--as", "alice", "--request-id", req)
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending"`, approvalID))

	inbox := tctl(t, codecURL, "workflow", "list", "--query", `ApprovalState="pending"`)
	if inbox.code != 0 || !strings.Contains(inbox.stdout, approvalID) {
		t.Fatalf("the inbox does not list %s", approvalID)
	}
	state := tctl(t, codecURL, "workflow", "query", "--workflow-id", approvalID, "--name", "state")
	if state.code != 0 || !strings.Contains(state.stdout, `"state":"pending"`) || !strings.Contains(state.stdout, `"requested_by":"alice"`) {
		t.Fatal("query state does not show a pending request by alice")
	}
	self := tctl(t, codecURL, "workflow", "update", "execute", "--workflow-id", approvalID, "--name", "decide",
		"--input", `{"actor":"alice","decision":"approve","note":"my own"}`)
	if self.code == 0 || !strings.Contains(self.stdout+self.stderr, "two-person integrity") {
		t.Fatalf("self-approval by update: exit %d", self.code)
	}
	selfSignal := tctl(t, codecURL, "workflow", "signal", "--workflow-id", approvalID, "--name", "approve",
		"--input", `{"actor":" ALICE ","note":"still me"}`)
	if selfSignal.code != 0 {
		t.Fatalf("signal: exit %d", selfSignal.code)
	}
	if st := approvalState(t, approvalID); st.State != workflows.StatePending || len(st.Refused) != 1 ||
		!strings.Contains(st.Refused[0].Reason, "two-person integrity") || len(st.Decisions) != 0 {
		t.Fatalf("after alice's signal: %+v", st)
	}
	bob := tctl(t, codecURL, "workflow", "signal", "--workflow-id", approvalID, "--name", "approve",
		"--input", `{"actor":"bob","note":"ticket 123"}`)
	if bob.code != 0 {
		t.Fatalf("bob's signal: exit %d", bob.code)
	}

	out := r.wait(t)
	if out.code != 0 || out.lastLine() != "outcome: Deployed" {
		t.Fatalf("certctl renew: exit %d, last line %q", out.code, out.lastLine())
	}
	var res workflows.RenewResult
	if err := env.client.GetWorkflow(context.Background(), workflows.RenewID(req), "").Get(context.Background(), &res); err != nil {
		t.Fatal(err)
	}
	if res.LeafSHA256 == "" || res.LeafSHA256 == initial.LeafSHA256 || res.Approval.State != workflows.StateApproved ||
		res.Approval.Decisions[0].Actor != "bob" || len(res.Deploys) != 1 {
		t.Fatalf("result %+v", res)
	}
	wantServed(t, n, res.LeafSHA256)
	served, _ := os.ReadFile(n.CertPath)
	if !strings.Contains(out.stdout, res.LeafSHA256) || len(served) == 0 {
		t.Fatal("the served leaf is not the one certctl renew reported")
	}

	result := tctl(t, codecURL, "workflow", "result", "--workflow-id", approvalID)
	if result.code != 0 || !strings.Contains(result.stdout, `"state":"approved"`) {
		t.Fatal("the approval's result is not the approved state")
	}
	// The refused update never reached the history; no key is in any
	// history in the clear.
	_, types := historyJSON(t, approvalID)
	if types[enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED] != 0 || types[enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED] != 0 ||
		types[enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED] != 2 {
		t.Fatalf("approval history event types: %v", types)
	}
	for _, id := range []string{approvalID, workflows.RenewID(req), res.Deploys[0].WorkflowID} {
		text, _ := historyJSON(t, id)
		if strings.Contains(text, "PRIVATE KEY") || strings.Contains(text, "two-person") {
			t.Fatalf("%s's history holds text in the clear", id)
		}
	}
	wantAuditOf(t, req, "requested:alice", "refused:ALICE", "approved:bob")
	record(t, approvalID, "approval-approved")
	record(t, workflows.RenewID(req), "renew-deployed-rollout")
}

// certctl's own approvals commands, two of two: the requester is refused, a
// duplicate approver is refused, one reject ends it, and the renewal ends
// ApprovalRejected with nothing deployed.
func TestIntegrationApprovalsCLIRejectStopsRenewal(t *testing.T) {
	cleanAuditLog(t)
	n, initial := startNginx(t)
	profile := writeRenewProfile(t, "p-itest-reject", []string{"bob", "carol", "dave"}, 2, n.Target("renew-reject", testHost))
	req := uniqueID("itest-reject")
	r := startRenew(t, "--profile", profile, "--cert-id", "shop", "--as", "alice", "--request-id", req)
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending"`, workflows.ApprovalID(req)))

	if l := certctlRun(t, "approvals", "list", "--state", "pending"); l.code != 0 || !strings.Contains(l.stdout, req) || !strings.Contains(l.stdout, "0 of 2") {
		t.Fatal("approvals list --state pending does not show the request")
	}
	if s := certctlRun(t, "approvals", "show", req); s.code != 0 || !strings.Contains(s.stdout, "requested by: alice") || !strings.Contains(s.stdout, "state:        pending") {
		t.Fatal("approvals show")
	}
	if a := certctlRun(t, "approvals", "approve", req, "--as", "Alice"); a.code != 1 || !strings.Contains(a.stderr, "two-person integrity") {
		t.Fatalf("self-approval: exit %d", a.code)
	}
	if a := certctlRun(t, "approvals", "approve", req, "--as", "bob", "--note", "looks right"); a.code != 0 || !strings.Contains(a.stdout, "pending (1 of 2 approvals)") {
		t.Fatalf("bob: exit %d", a.code)
	}
	if a := certctlRun(t, "approvals", "approve", req, "--as", " BOB "); a.code != 1 || !strings.Contains(a.stderr, "already approved") {
		t.Fatalf("bob twice: exit %d", a.code)
	}
	if a := certctlRun(t, "approvals", "approve", req, "--as", "mallory"); a.code != 1 || !strings.Contains(a.stderr, "not an approver") {
		t.Fatalf("mallory: exit %d", a.code)
	}
	if a := certctlRun(t, "approvals", "reject", req, "--as", "carol", "--note", "wrong SANs"); a.code != 0 || !strings.Contains(a.stdout, "rejected") {
		t.Fatalf("carol: exit %d", a.code)
	}
	out := r.wait(t)
	if out.code != 1 || out.lastLine() != "outcome: ApprovalRejected" {
		t.Fatalf("certctl renew: exit %d, last line %q", out.code, out.lastLine())
	}
	if a := certctlRun(t, "approvals", "approve", req, "--as", "dave"); a.code != 1 || !strings.Contains(a.stderr, "already rejected") {
		t.Fatalf("a decision after the close: exit %d", a.code)
	}
	if l := certctlRun(t, "approvals", "list", "--state", "rejected"); !strings.Contains(l.stdout, req) || !strings.Contains(l.stdout, "carol at") {
		t.Fatal("approvals list --state rejected")
	}
	wantServed(t, n, initial.LeafSHA256)
	resp, err := env.client.ListWorkflow(context.Background(), listByTarget("renew-reject"))
	if err != nil || len(resp.Executions) != 0 {
		t.Fatalf("a deploy ran after a rejection: %v %v", resp.GetExecutions(), err)
	}
	wantAuditOf(t, req, "requested:alice", "approved:bob", "rejected:carol")
	record(t, workflows.ApprovalID(req), "approval-rejected")
	record(t, workflows.RenewID(req), "renew-rejected-v1")
}

// DESIGN's contract: the JSON an operator gives `temporal workflow start`.
// Rejected by signal; a renewal naming the same request later is refused
// (a closed request is never reopened) and asks nothing.
func TestIntegrationApprovalStartedFromTemporalCLI(t *testing.T) {
	cleanAuditLog(t)
	codecURL := codecEndpoint(t)
	req := uniqueID("r")
	id := workflows.ApprovalID(req)
	input := fmt.Sprintf(`{"request_id":%q,"requested_by":"alice","profile_id":"p-prod","subject":"CN=shop.example.com","approvers":["bob","carol"],"required_approvals":1,"timeout":"168h"}`, req)
	if s := tctl(t, codecURL, "workflow", "start", "--type", "ApprovalWorkflow", "--task-queue", "certctl", "--workflow-id", id, "--input", input); s.code != 0 {
		t.Fatalf("start: exit %d", s.code)
	}
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending" AND ApprovalProfile = "p-prod"`, id))
	if s := certctlRun(t, "approvals", "show", req); s.code != 0 || !strings.Contains(s.stdout, "bob, carol (0 of 1 approvals)") {
		t.Fatal("approvals show")
	}
	if s := tctl(t, codecURL, "workflow", "signal", "--workflow-id", id, "--name", "reject", "--input", `{"actor":"carol","note":"not this week"}`); s.code != 0 {
		t.Fatalf("signal: exit %d", s.code)
	}
	res := tctl(t, codecURL, "workflow", "result", "--workflow-id", id)
	if res.code != 0 || !strings.Contains(res.stdout, `"state":"rejected"`) {
		t.Fatal("result")
	}
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "rejected" AND ApprovalDecidedBy = "carol"`, id))

	n, initial := startNginx(t)
	profile := writeRenewProfile(t, "p-prod", []string{"bob", "carol"}, 1, n.Target("renew-reuse", testHost))
	again := certctlRun(t, "renew", "--profile", profile, "--cert-id", "shop", "--as", "alice", "--request-id", req)
	if again.code != 2 || !strings.Contains(again.stdout+again.stderr, "already used") {
		t.Fatalf("a renewal reusing a closed request: exit %d", again.code)
	}
	wantServed(t, n, initial.LeafSHA256)
	wantAuditOf(t, req, "requested:alice", "rejected:carol")
}

// The scheduled path passes through the same gate: a run triggered from the
// schedule finds the served certificate inside its renewal window and asks
// approval as the schedule's creator; rejected, nothing is deployed.
func TestIntegrationScheduledRenewalAsksApproval(t *testing.T) {
	cleanAuditLog(t)
	n, initial := startNginx(t) // a one-day leaf: inside the 240h renewal window
	codecURL := codecEndpoint(t)
	profileID := uniqueID("p-sched")
	profile := writeRenewProfile(t, profileID, []string{"bob"}, 1, n.Target("renew-sched", testHost))
	certID := uniqueID("sched")
	s := certctlRun(t, "renew", "--profile", profile, "--cert-id", certID, "--as", "alice", "--schedule", "24h")
	if s.code != 0 || !strings.Contains(s.stdout, "schedule: renew/"+certID) {
		t.Fatalf("schedule: exit %d", s.code)
	}
	ctx := context.Background()
	h := env.client.ScheduleClient().GetHandle(ctx, "renew/"+certID)
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	found := waitApproval(t, fmt.Sprintf(`WorkflowType = "ApprovalWorkflow" AND ApprovalProfile = %q AND ApprovalState = "pending"`, profileID))
	approvalID := found.Executions[0].GetExecution().GetWorkflowId()
	st := approvalState(t, approvalID)
	if st.RequestedBy != "alice" || st.CertID != certID || !strings.HasPrefix(st.RequestID, certID+"-") {
		t.Fatalf("scheduled request %+v", st)
	}
	if self := certctlRun(t, "approvals", "approve", st.RequestID, "--as", "alice"); self.code != 1 || !strings.Contains(self.stderr, "two-person integrity") {
		t.Fatal("the schedule's creator approved its own scheduled renewal")
	}
	if rej := tctl(t, codecURL, "workflow", "update", "execute", "--workflow-id", approvalID, "--name", "decide",
		"--input", `{"actor":"bob","decision":"reject","note":"not now"}`); rej.code != 0 {
		t.Fatalf("reject: exit %d", rej.code)
	}
	desc, err := env.client.DescribeWorkflowExecution(ctx, approvalID, "")
	if err != nil {
		t.Fatal(err)
	}
	renewID := desc.GetWorkflowExecutionInfo().GetParentExecution().GetWorkflowId()
	if !strings.HasPrefix(renewID, "renew/"+certID+"/scheduled") {
		t.Fatalf("the approval's parent is %q, not the scheduled renewal", renewID)
	}
	var res workflows.RenewResult
	err = env.client.GetWorkflow(ctx, renewID, "").Get(ctx, &res)
	if err == nil || !strings.Contains(err.Error(), "ApprovalRejected") {
		t.Fatalf("the scheduled renewal ended %v", err)
	}
	wantServed(t, n, initial.LeafSHA256)
	resp, err := env.client.ListWorkflow(ctx, listByTarget("renew-sched"))
	if err != nil || len(resp.Executions) != 0 {
		t.Fatalf("a deploy ran after a rejection: %v %v", resp.GetExecutions(), err)
	}
	wantAuditOf(t, st.RequestID, "requested:alice", "rejected:bob")
}

package testsuite_test

// Attacks on policy, through the real binaries: a requester who wants to
// skip approval, and a namespace writer who wants root on a host. Policy
// lives with the workers (the host policy file, the profiles directory, the
// workflow worker's environment), never in the request.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// A requester's own profile file, requires_approval: false, is not a
// profile: --profile takes the ID of one installed on the workflow worker.
func TestAttackPolicyRenewProfileFileRefused(t *testing.T) {
	n, initial := startNginx(t)
	id := uniqueID("p-mine")
	file := filepath.Join(t.TempDir(), id+".yaml")
	if err := os.WriteFile(file, renewProfileText(t, id, false, nil, 1, n.Target("attack-profile-file", testHost)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{file, id + ".yaml"} {
		r := certctlRun(t, "renew", "--profile", arg, "--cert-id", "shop", "--as", "alice", "--request-id", uniqueID("r"))
		if r.code != 2 || !strings.Contains(r.stderr, "profiles live with the workflow worker") || !strings.Contains(r.stderr, "CERTCTL_PROFILES_DIR") {
			t.Fatalf("--profile %s: exit %d, stderr %q", arg, r.code, r.stderr)
		}
	}
	// Named by ID but not installed: refused by the worker, nothing issued.
	r := certctlRun(t, "renew", "--profile", id, "--cert-id", "shop", "--as", "alice", "--request-id", uniqueID("r"))
	if r.code == 0 || r.lastLine() != "outcome: "+contract.InvalidInput || !strings.Contains(r.stdout+r.stderr, id+".yaml") {
		t.Fatalf("an uninstalled profile: exit %d, last line %q", r.code, r.lastLine())
	}
	wantServed(t, n, initial.LeafSHA256)
}

// CERTCTL_APPROVAL_BYPASS=true in the starter's environment bypasses
// nothing: the approval is pending and nothing is deployed.
func TestAttackPolicyStarterBypassIgnored(t *testing.T) {
	cleanAuditLog(t)
	n, initial := startNginx(t)
	id := writeRenewProfile(t, uniqueID("p-bypass"), []string{"bob"}, 1, n.Target("attack-bypass", testHost))
	req := uniqueID("r")
	r := &renewProc{cmd: certctlExec("renew", "--profile", id, "--cert-id", "shop", "--as", "alice", "--request-id", req)}
	r.cmd.Env = append(r.cmd.Env, "CERTCTL_APPROVAL_BYPASS=true")
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
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending"`, workflows.ApprovalID(req)))
	wantServed(t, n, initial.LeafSHA256)
	if s := certctlRun(t, "approvals", "reject", req, "--as", "bob", "--note", "attack test"); s.code != 0 {
		t.Fatalf("reject: exit %d", s.code)
	}
	if out := r.wait(t); out.lastLine() != "outcome: "+contract.ApprovalRejected {
		t.Fatalf("last line %q", out.lastLine())
	}
	wantServed(t, n, initial.LeafSHA256)
}

// A plain `temporal workflow start --type RenewWorkflow` whose JSON carries
// requires_approval: false, its own pool and approval_bypass still gets the
// worker's profile: approval asked of the worker's pool, nothing deployed.
func TestAttackPolicyTemporalStartCarriesNoPolicy(t *testing.T) {
	cleanAuditLog(t)
	codecURL := codecEndpoint(t)
	n, initial := startNginx(t)
	id := writeRenewProfile(t, uniqueID("p-cli"), []string{"bob"}, 1, n.Target("attack-cli", testHost))
	req := uniqueID("r")
	input, err := json.Marshal(map[string]any{
		"request_id": req, "cert_id": "shop", "requested_by": "alice", "profile_id": id,
		"approval_bypass": true,
		"profile":         map[string]any{"profile_id": id, "requires_approval": false, "approvers": []string{"alice"}, "required_approvals": 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := tctl(t, codecURL, "workflow", "start", "--type", "RenewWorkflow", "--task-queue", "certctl",
		"--workflow-id", workflows.RenewID(req), "--input", string(input)); s.code != 0 {
		t.Fatalf("start: exit %d", s.code)
	}
	waitApproval(t, fmt.Sprintf(`WorkflowId = %q AND ApprovalState = "pending"`, workflows.ApprovalID(req)))
	if s := certctlRun(t, "approvals", "show", req); s.code != 0 || !strings.Contains(s.stdout, "bob") {
		t.Fatalf("the approval's pool is not the worker's profile's:\n%s", s.stdout)
	}
	wantServed(t, n, initial.LeafSHA256)
	if s := certctlRun(t, "approvals", "reject", req, "--as", "bob"); s.code != 0 {
		t.Fatalf("reject: exit %d", s.code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = env.client.GetWorkflow(ctx, workflows.RenewID(req), "").Get(ctx, nil)
	if contract.Of(err) != contract.ApprovalRejected {
		t.Fatalf("renewal ended %v", err)
	}
	wantServed(t, n, initial.LeafSHA256)
}

// policyHost starts a host worker for host with the given policy file (""
// gives it a path where no file exists) and returns that path.
func policyHost(t *testing.T, host string, p *policy.Policy) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.yaml")
	if p != nil {
		if err := testsuite.WritePolicy(path, *p); err != nil {
			t.Fatal(err)
		}
	}
	hostWorker(t, host, policy.EnvPath+"="+path)
	return path
}

// refusedDeploy deploys tg and wants PolicyRefused (exit 1) with nothing
// written: the files unchanged, no temp or backup files, the old leaf served.
func refusedDeploy(t *testing.T, n *testsuite.Nginx, initial testsuite.Set, tg target.Target, wantInError ...string) {
	t.Helper()
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	r := deploy(t, tg, issue(t), "--output", "json")
	res := r.result(t)
	if r.code != 1 || res.Outcome != contract.PolicyRefused {
		t.Fatalf("exit %d, outcome %s (%s)", r.code, res.Outcome, res.Error)
	}
	for _, w := range wantInError {
		if !strings.Contains(res.Error, w) {
			t.Errorf("the refusal does not name %q: %s", w, res.Error)
		}
	}
	wantUnchanged(t, before)
	wantNoLeftovers(t, filepath.Dir(n.CertPath), 0)
	wantServed(t, n, initial.LeafSHA256)
}

func TestAttackPolicyPathOutsideAllowPaths(t *testing.T) {
	host := uniqueID("policy-paths")
	n, initial := startNginx(t)
	// /etc/nginx/certs is allowed; the nginx's own directory is not, and
	// neither is a sibling that shares the prefix.
	file := policyHost(t, host, &policy.Policy{
		AllowPaths:    []string{"/etc/nginx/certs", filepath.Dir(n.CertPath) + "2"},
		AllowCommands: [][]string{{policy.Wildcard}},
	})
	refusedDeploy(t, n, initial, n.Target("attack-paths", host), "allow_paths", file, n.CertPath)
}

func TestAttackPolicyCommandOutsideAllowCommands(t *testing.T) {
	host := uniqueID("policy-cmds")
	n, initial := startNginx(t)
	file := policyHost(t, host, &policy.Policy{
		AllowPaths:    []string{filepath.Dir(n.CertPath)},
		AllowCommands: [][]string{n.ValidateCommand(), n.ReloadCommand()},
	})
	marker := filepath.Join(t.TempDir(), "pwned")
	tg := n.Target("attack-cmds", host)
	tg.Config.ReloadCommand = target.Command{"touch", marker}
	refusedDeploy(t, n, initial, tg, "allow_commands", file, "touch")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the refused reload command ran")
	}
	// The same target with its own commands deploys: the policy is not
	// refusing everything.
	set := issue(t)
	if r := deploy(t, n.Target("attack-cmds", host), set); r.code != 0 {
		t.Fatalf("an allowed deploy: exit %d", r.code)
	}
	wantServed(t, n, set.LeafSHA256)
}

func TestAttackPolicyNoPolicyFileRefusesEverything(t *testing.T) {
	host := uniqueID("policy-none")
	n, initial := startNginx(t)
	file := policyHost(t, host, nil)
	refusedDeploy(t, n, initial, n.Target("attack-nofile", host), file, policy.EnvPath)
}

package testsuite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// leafLine is how status names a leaf: "<sha256> <name>, not after <time>".
func leafLine(t *testing.T, s testsuite.Set) string {
	t.Helper()
	c, err := material.FirstCertificate([]byte(s.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s %s, not after %s", s.LeafSHA256, material.Name(c), c.NotAfter.UTC().Format(time.RFC3339))
}

func notAfter(t *testing.T, s testsuite.Set) string {
	t.Helper()
	c, err := material.FirstCertificate([]byte(s.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c.NotAfter.UTC().Format(time.RFC3339)
}

// wantLines compares output line by line: each want is a regular
// expression matched against the whole line.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	got := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), out)
	}
	for i, w := range want {
		if !regexp.MustCompile("^" + w + "$").MatchString(got[i]) {
			t.Fatalf("line %d:\n  %q\nwant (regexp)\n  %q\nin:\n%s", i+1, got[i], w, out)
		}
	}
}

const (
	reTime = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	reStep = `  [a-z-]+ +ok +\d+ ms(  .*)?`
)

// waitListed waits until visibility lists n closed deploys of the target
// with their outcome (CertctlOutcome is upserted just before the close).
func waitListed(t *testing.T, id string, n int) {
	t.Helper()
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		resp, err := env.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("CertctlTarget = '%s' AND WorkflowType = 'DeployWorkflow' AND ExecutionStatus != 'Running' AND CertctlOutcome IS NOT NULL", id)})
		if err != nil {
			return false, err.Error()
		}
		return len(resp.GetExecutions()) == n, fmt.Sprintf("%d deploys of %s listed, want %d", len(resp.GetExecutions()), id, n)
	})
}

// inspectRuns are the InspectWorkflow runs for a target, newest first.
func inspectRuns(t *testing.T, id string) []*workflowpb.WorkflowExecutionInfo {
	t.Helper()
	resp, err := env.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: fmt.Sprintf("WorkflowType = '%s'", contract.InspectWorkflow)})
	if err != nil {
		t.Fatal(err)
	}
	var out []*workflowpb.WorkflowExecutionInfo
	for _, e := range resp.GetExecutions() {
		if strings.HasPrefix(e.GetExecution().GetWorkflowId(), workflows.InspectIDPrefix+id+"/") {
			out = append(out, e)
		}
	}
	return out
}

// Two deploys and a failed one between them, to a real nginx through the
// real host worker: history lists the three newest first with their
// outcomes, paged; status, by file and by ID, shows the last deploy, the
// leaf served (= the one deployed) and the leaf on disk, read by the
// host's worker; a cert written by hand is told apart, on disk and then
// served.
func TestIntegrationStatusAndHistory(t *testing.T) {
	n, _ := startNginx(t)
	id := uniqueID("status")
	tg := n.Target(id, testHost)
	first, second := issue(t), issue(t)
	r1 := deploy(t, tg, first)
	if r1.code != 0 || r1.lastLine() != "outcome: Deployed" {
		t.Fatalf("first deploy: exit %d, %q", r1.code, r1.lastLine())
	}
	broken := tg
	broken.Config.ValidateCommand = target.Command{"false"}
	r2 := deploy(t, broken, issue(t))
	if r2.code != 1 || r2.lastLine() != "outcome: ValidateFailed" {
		t.Fatalf("failed deploy: exit %d, %q", r2.code, r2.lastLine())
	}
	r3 := deploy(t, tg, second)
	if r3.code != 0 || r3.lastLine() != "outcome: Deployed" {
		t.Fatalf("second deploy: exit %d, %q", r3.code, r3.lastLine())
	}
	wantServed(t, n, second.LeafSHA256)
	settled(t, n, second.LeafSHA256)
	waitListed(t, id, 3)

	// history: newest first, each with its outcome and status.
	row := func(r deployRun, outcome, status string) string {
		return regexp.QuoteMeta(r.workflowID()) + ` +` + reTime + ` +\d+ ms +` + outcome + ` +` + status
	}
	h := certctlCLI(t, nil, "history", "--target", id)
	if h.code != 0 {
		t.Fatalf("history: exit %d: %s", h.code, h.stderr)
	}
	wantLines(t, h.stdout,
		`WORKFLOW +STARTED +TOOK +OUTCOME +STATUS`,
		row(r3, "Deployed", "completed"),
		row(r2, "ValidateFailed", "failed"),
		row(r1, "Deployed", "completed"))
	// Paged: two, then the word that there are more.
	h = certctlCLI(t, nil, "history", "--target", id, "--limit", "2")
	wantLines(t, h.stdout,
		`WORKFLOW +STARTED +TOOK +OUTCOME +STATUS`,
		row(r3, "Deployed", "completed"),
		row(r2, "ValidateFailed", "failed"),
		`more deploys than these 2: --limit N for more`)
	var hj struct {
		Deploys []struct {
			WorkflowID string `json:"workflow_id"`
			Outcome    string `json:"outcome"`
			Status     string `json:"status"`
		} `json:"deploys"`
		More bool `json:"more"`
	}
	h = certctlCLI(t, nil, "history", "--target", id, "--output", "json")
	if err := json.Unmarshal([]byte(h.stdout), &hj); err != nil {
		t.Fatalf("history --output json: %v\n%s", err, h.stdout)
	}
	if len(hj.Deploys) != 3 || hj.More || hj.Deploys[0].WorkflowID != r3.workflowID() || hj.Deploys[1].Outcome != contract.ValidateFailed || hj.Deploys[2].Status != "completed" {
		t.Fatalf("history --output json: %+v", hj)
	}

	// status by file, then by ID: the same facts.
	file := targetFile(t, tg)
	uiEnv := []string{"CERTCTL_WEB_UI=http://ui.example:8233/"}
	head := []string{
		regexp.QuoteMeta(fmt.Sprintf("target:      %s (nginx on host %s)", id, testHost)),
		regexp.QuoteMeta(fmt.Sprintf("last deploy: %s (completed)", r3.workflowID())),
		`web ui:      http://ui\.example:8233/namespaces/default/workflows/` + regexp.QuoteMeta(strings.ReplaceAll(r3.workflowID(), "/", "%2F")) + `/[0-9a-f-]+/history`,
		`started:     ` + reTime,
		`ended:       ` + reTime + ` \(took \d+ ms\)`,
	}
	steps := []string{"lock", "plan", "backup", "stage", "validate", "commit", "reload", "verify", "cleanup"}
	for _, s := range steps {
		head = append(head, `  `+s+` +ok +\d+ ms(  .*)?`)
	}
	head = append(head,
		`outcome:     Deployed`,
		`deployed:    `+second.LeafSHA256)
	byFile := certctlCLI(t, uiEnv, "status", "--target", file)
	if byFile.code != 0 {
		t.Fatalf("status: exit %d: %s", byFile.code, byFile.stderr)
	}
	wantLines(t, byFile.stdout, append(head,
		regexp.QuoteMeta(fmt.Sprintf("served:      %s (at %s)", leafLine(t, second), n.Endpoint)),
		regexp.QuoteMeta(fmt.Sprintf("disk:        %s, not after %s (%s)", second.LeafSHA256, notAfter(t, second), n.CertPath)),
		`note:        serving the leaf the last deploy deployed`)...)
	byID := certctlCLI(t, uiEnv, "status", "--target", id)
	if byID.code != 0 || byID.stdout != byFile.stdout {
		t.Fatalf("status by ID (exit %d) differs from status by file:\n%s\nvs\n%s", byID.code, byID.stdout, byFile.stdout)
	}
	var sj struct {
		LastDeploy struct {
			WorkflowID string `json:"workflow_id"`
			Outcome    string `json:"outcome"`
			Steps      []workflows.Step
		} `json:"last_deploy"`
		Served struct{ SHA256 string }
		Disk   struct {
			LeafSHA256 string `json:"leaf_sha256"`
		}
		ServedIsDeployed *bool `json:"served_is_deployed"`
	}
	js := certctlCLI(t, nil, "status", "--target", id, "--output", "json")
	if err := json.Unmarshal([]byte(js.stdout), &sj); err != nil {
		t.Fatalf("status --output json: %v\n%s", err, js.stdout)
	}
	if sj.LastDeploy.WorkflowID != r3.workflowID() || sj.LastDeploy.Outcome != contract.Deployed || len(sj.LastDeploy.Steps) != len(steps) ||
		sj.Served.SHA256 != second.LeafSHA256 || sj.Disk.LeafSHA256 != second.LeafSHA256 || sj.ServedIsDeployed == nil || !*sj.ServedIsDeployed {
		t.Fatalf("status --output json: %+v", sj)
	}
	// The inspection status ran is a workflow of its own: keep one for the
	// replay test.
	runs := inspectRuns(t, id)
	if len(runs) != 3 {
		t.Fatalf("%d InspectWorkflow runs for %s, want 3 (one per status)", len(runs), id)
	}
	recordRun(t, runs[0].GetExecution().GetWorkflowId(), "", "inspect-read")

	// Someone writes another cert by hand: on disk first, then served.
	hand := issue(t)
	for p, s := range map[string]string{n.CertPath: hand.CertPEM, n.ChainPath: hand.ChainPEM, n.KeyPath: hand.KeyPEM} {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	onDisk := certctlCLI(t, nil, "status", "--target", id)
	wantLines(t, onDisk.stdout, append(append([]string{}, head[:2]...), append(head[3:],
		regexp.QuoteMeta(fmt.Sprintf("served:      %s (at %s)", leafLine(t, second), n.Endpoint)),
		regexp.QuoteMeta(fmt.Sprintf("disk:        %s, not after %s (%s)", hand.LeafSHA256, notAfter(t, hand), n.CertPath)),
		`note:        serving the leaf the last deploy deployed`,
		regexp.QuoteMeta(fmt.Sprintf("note:        the file on disk holds another leaf than the one served: the server has not loaded %s (reload it), or serves another file", n.CertPath)))...)...)
	reload := n.ReloadCommand()
	if out, err := exec.Command(reload[0], reload[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", reload, err, out)
	}
	wantServed(t, n, hand.LeafSHA256)
	settled(t, n, hand.LeafSHA256)
	swapped := certctlCLI(t, nil, "status", "--target", id)
	if swapped.code != 0 {
		t.Fatalf("status: exit %d: %s", swapped.code, swapped.stderr)
	}
	wantLines(t, swapped.stdout, append(append([]string{}, head[:2]...), append(head[3:],
		regexp.QuoteMeta(fmt.Sprintf("served:      %s (at %s)", leafLine(t, hand), n.Endpoint)),
		regexp.QuoteMeta(fmt.Sprintf("disk:        %s, not after %s (%s)", hand.LeafSHA256, notAfter(t, hand), n.CertPath)),
		regexp.QuoteMeta(fmt.Sprintf("note:        serving another leaf than the last deploy deployed (%s): it changed since %s; deploy again to put it back", second.LeafSHA256[:16], r3.workflowID())))...)...)
}

// settled waits until nginx's old workers are gone: a reload's old
// workers may still take a connection for a moment after the first one
// served the new leaf, so ten probes in a row must see it.
func settled(t *testing.T, n *testsuite.Nginx, leaf string) {
	t.Helper()
	row := 0
	testsuite.WaitFor(t, 15*time.Second, func() (bool, string) {
		got, err := n.Served(context.Background())
		if err != nil || got != leaf {
			row = 0
			return false, fmt.Sprintf("served %s (%v), want %s", got, err, leaf)
		}
		row++
		return row >= 10, fmt.Sprintf("%d probes in a row served %s", row, leaf)
	})
}

// A host without a worker: status says so in seconds under a short
// CERTCTL_HOST_WAIT, naming the worker to start, still shows what it could
// read, exits 1, and leaves no inspection behind.
func TestIntegrationStatusHostWithoutWorker(t *testing.T) {
	n, _ := startNginx(t)
	id, host := uniqueID("nobody"), uniqueID("gone")
	tg := n.Target(id, host)
	start := time.Now()
	r := certctlCLI(t, []string{"CERTCTL_HOST_WAIT=2s"}, "status", "--target", targetFile(t, tg))
	took := time.Since(start)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	if took > 15*time.Second {
		t.Fatalf("took %s under CERTCTL_HOST_WAIT=2s", took)
	}
	servedNow, err := n.Served(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, r.stdout,
		regexp.QuoteMeta(fmt.Sprintf("target:      %s (nginx on host %s)", id, host)),
		`last deploy: none`,
		`served:      `+servedNow+` .*, not after `+reTime+` \(at `+regexp.QuoteMeta(n.Endpoint)+`\)`,
		regexp.QuoteMeta(fmt.Sprintf("disk:        HostUnavailable: no worker polled certctl-host-%s for 2s; start one on %s with: certctl-worker --host %s; the leaf on disk was not read", host, host, host)),
		`note:        no deploy of this target in visibility`)
	runs := inspectRuns(t, id)
	if len(runs) != 1 {
		t.Fatalf("%d InspectWorkflow runs, want 1", len(runs))
	}
	if st := runs[0].GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
		t.Fatalf("the inspection no worker picked up is %s, want terminated", st)
	}
}

// The read on disk is the host worker's, under its policy: a target file
// naming a path outside it reads nothing, and status says why (exit 1).
func TestIntegrationStatusDiskReadUnderThePolicy(t *testing.T) {
	n, _ := startNginx(t)
	tg := n.Target(uniqueID("outside"), testHost)
	tg.Config.CertPath = "/etc/ssl/private/certctl-status-test.pem"
	r := certctlCLI(t, nil, "status", "--target", targetFile(t, tg))
	if r.code != 1 {
		t.Fatalf("exit %d, want 1", r.code)
	}
	disk := ""
	for _, l := range strings.Split(r.stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "disk:        "); ok {
			disk = v
		}
	}
	want := regexp.MustCompile(`^not read: InspectDeployed: refused by the host policy \S+worker\.yaml: target_config\.cert_path "/etc/ssl/private/certctl-status-test\.pem" lies under none of allow_paths \[/tmp\]; add it to allow_paths on this host if it is meant to be allowed \(PolicyRefused, InspectWorkflow inspect/\S+\)$`)
	if !want.MatchString(disk) {
		t.Fatalf("disk line %q, want %s", disk, want)
	}
}

// Bad input is refused before anything starts, exit 2, naming the flag.
func TestIntegrationStatusHistoryBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("target_id: x\ntarget_type: nginx\nnot_a_field: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := uniqueID("never-deployed")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"history", "--target", "it's"}, `certctl: invalid input: --target "it's": a target ID with a quote, backslash or control character cannot be looked up; give the target file instead`},
		{[]string{"history", "--target", "web-1", "--limit", "0"}, `certctl: invalid input: --limit 0: want a positive number of deploys`},
		{[]string{"history", "--target", "web-1", "--output", "yaml"}, `certctl: invalid input: --output: want text or json`},
		{[]string{"status", "--target", filepath.Join(dir, "missing.yaml")}, `certctl: invalid input: --target: open ` + filepath.Join(dir, "missing.yaml") + `: no such file or directory`},
		{[]string{"status", "--target", unknown}, fmt.Sprintf(`certctl: invalid input: --target %s: no deploy of this target in namespace default (visibility: CertctlTarget = '%s' AND WorkflowType = 'DeployWorkflow'); give the target file (--target TARGET.yaml) to read what it serves`, unknown, unknown)},
	} {
		r := certctlCLI(t, nil, c.args...)
		if r.code != 2 || strings.TrimSpace(r.stderr) != c.want || r.stdout != "" {
			t.Errorf("certctl %v: exit %d\nstderr %q\nwant   %q\nstdout %q", c.args, r.code, strings.TrimSpace(r.stderr), c.want, r.stdout)
		}
	}
	r := certctlCLI(t, nil, "status", "--target", bad)
	if r.code != 2 || !strings.HasPrefix(r.stderr, "certctl: invalid input: --target "+bad+": ") || !strings.Contains(r.stderr, "not_a_field") {
		t.Errorf("status with a bad target file: exit %d, %q", r.code, r.stderr)
	}
}

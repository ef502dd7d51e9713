package testsuite_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/certctl/certctl/clientenv"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// A cluster of one's own, as a new user has it: a dev server started
// without certctl's search attributes, and one worker for one host
// (`certctl-worker --host NAME --workflows`, the only worker of that
// server). The worker says at start, at ERROR, what is missing and to run
// `certctl setup`; so does it when a workflow task fails with
// BadSearchAttributes. `certctl deploy` refuses within seconds (exit 1),
// naming CertctlTarget and `certctl setup`; `certctl setup` registers them,
// a second run changes nothing, and the deploy then runs to Deployed on
// that one worker process.
func TestIntegrationSetupOnABareCluster(t *testing.T) {
	cfgPath, err := testsuite.RepoFile("temporal-dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := testsuite.LoadDevConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	serverLog, err := os.Create(filepath.Join(dir, "temporal.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer serverLog.Close()
	srv, err := testsuite.StartDevServer(context.Background(), testsuite.DevServerOptions{Config: cfg, NoSearchAttributes: true, Output: serverLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	address := srv.FrontendHostPort()
	copts := client.Options{HostPort: address, Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	clientenv.WithCodec(&copts, env.codec)
	c, err := client.Dial(copts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The one worker: it starts, says what is missing, and runs on.
	const host = "bare"
	workerLog := filepath.Join(dir, "worker.log")
	w, err := testsuite.StartProcess("worker-bare", workerLog, []string{"TEMPORAL_ADDRESS=" + address}, env.worker, "--host", host, "--workflows")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	missing := `namespace \"default\" lacks certctl's search attributes CertctlTarget, CertctlOutcome, ApprovalState, ApprovalProfile, ApprovalDecidedBy: ` +
		"register them once with `certctl setup` (with the same TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE or profile)"
	wantLog(t, workerLog, `level=ERROR msg="`+missing+`" namespace=default missing="[CertctlTarget CertctlOutcome ApprovalState ApprovalProfile ApprovalDecidedBy]"`)
	me := strconv.Itoa(w.Pid()) + "@"
	waitPollerOn(t, c, workflows.HostQueue(host), me)

	// certctl deploy refuses before it starts anything, within seconds.
	n, initial := startNginx(t)
	tg := n.Target("bare-nginx", host)
	text, err := yamlOf(tg)
	if err != nil {
		t.Fatal(err)
	}
	fresh := issue(t)
	start := time.Now()
	r := deployTextEnv(t, text, fresh, []string{"TEMPORAL_ADDRESS=" + address})
	took := time.Since(start)
	if r.code != 1 || r.stdout != "" || r.stderr != "certctl: start DeployWorkflow: "+strings.ReplaceAll(missing, `\"`, `"`)+"\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if took > 5*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	t.Logf("certctl deploy refused in %d ms", took.Milliseconds())
	wantServed(t, n, initial.LeafSHA256)

	// So do the other commands that need them.
	for _, args := range [][]string{{"approvals", "list"}, {"renew", "--profile", "web", "--cert-id", "web", "--as", "alice"}} {
		cmd := exec.Command(env.certctl, args...)
		cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+address)
		out, err := cmd.CombinedOutput()
		ee, _ := err.(*exec.ExitError)
		if ee == nil || ee.ExitCode() != 1 || string(out) != "certctl: "+strings.ReplaceAll(missing, `\"`, `"`)+"\n" {
			t.Fatalf("certctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// A deploy started by hand (the temporal CLI's way, no search
	// attribute in the start request) fails its first workflow task with
	// BadSearchAttributes: the worker says so at ERROR.
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("deploy/bare-by-hand/%d", time.Now().UnixNano()), TaskQueue: contract.TaskQueue,
	}, contract.DeployWorkflow, workflows.DeployRequest{Target: tg, Material: fresh.Material})
	if err != nil {
		t.Fatal(err)
	}
	wantLog(t, workerLog, `level=ERROR msg="Task processing failed with error: a workflow task failed with BadSearchAttributes: namespace \"default\" lacks one of certctl's search attributes (the error names it): register them once with `+
		"`certctl setup`"+`; the task is retried until then"`)
	if err := c.TerminateWorkflow(context.Background(), run.GetID(), run.GetRunID(), "test: BadSearchAttributes seen"); err != nil {
		t.Fatal(err)
	}

	// certctl setup registers them, then has nothing to do; it carries no
	// payload, so it runs without the payload key.
	setup := func() (int, string) {
		cmd := exec.Command(env.certctl, "setup")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CERTCTL_CODEC_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "TEMPORAL_ADDRESS="+address)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("certctl setup (%d ms):\n%s", time.Since(start).Milliseconds(), out)
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	lines := func(last string, state string) string {
		s := "namespace default: certctl's search attributes\n"
		for _, k := range contract.SearchAttributes {
			s += fmt.Sprintf("  %-18s Keyword  %s\n", k.GetName(), state)
		}
		return s + last + "\n"
	}
	if code, out := setup(); code != 0 || out != lines("registered 5, 0 already there", "registered") {
		t.Fatalf("first certctl setup: exit %d\n%s", code, out)
	}
	if code, out := setup(); code != 0 || out != lines("nothing to do: every one was already registered", "already registered") {
		t.Fatalf("second certctl setup: exit %d\n%s", code, out)
	}

	// One ListSearchAttributes call: what each command's check costs.
	var ms []float64
	for i := 0; i < 20; i++ {
		s := time.Now()
		check, err := clientenv.CheckSearchAttributes(context.Background(), c.OperatorService(), "default")
		if err != nil || !check.OK() {
			t.Fatalf("after setup: %v %s", err, check.Problem())
		}
		ms = append(ms, float64(time.Since(s).Microseconds())/1000)
	}
	sort.Float64s(ms)
	t.Logf("ListSearchAttributes on the dev server: median %.2f ms, max %.2f ms (20 calls)", ms[len(ms)/2], ms[len(ms)-1])

	// The deploy now runs, on the one worker process.
	r = deployTextEnv(t, text, fresh, []string{"TEMPORAL_ADDRESS=" + address})
	if r.code != 0 || r.lastLine() != "outcome: Deployed" {
		t.Fatalf("after setup: exit %d, last line %q\n%s%s", r.code, r.lastLine(), r.stdout, r.stderr)
	}
	wantServed(t, n, fresh.LeafSHA256)
	d, err := c.DescribeWorkflowExecution(context.Background(), r.workflowID(), "")
	if err != nil {
		t.Fatal(err)
	}
	if q := d.GetWorkflowExecutionInfo().GetTaskQueue(); q != workflows.HostQueue(host) {
		t.Fatalf("the deploy ran on %s, want the host run on %s", q, workflows.HostQueue(host))
	}
	resp, err := c.ListWorkflow(context.Background(), listByTarget("bare-nginx"))
	if err != nil || len(resp.GetExecutions()) != 1 {
		t.Fatalf("CertctlTarget = bare-nginx lists %d deploys (%v), want the one", len(resp.GetExecutions()), err)
	}
}

// wantLog waits until the log file holds a line containing s.
func wantLog(t *testing.T, path, s string) {
	t.Helper()
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), s), fmt.Sprintf("%s lacks %s:\n%s", path, s, b)
	})
}

// waitPollerOn waits until a poller whose identity starts with prefix
// polls queue for workflow tasks on c's server.
func waitPollerOn(t *testing.T, c client.Client, queue, prefix string) {
	t.Helper()
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		resp, err := c.DescribeTaskQueue(context.Background(), queue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range resp.GetPollers() {
			if strings.HasPrefix(p.GetIdentity(), prefix) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no poller %s* on %s", prefix, queue)
	})
}

package testsuite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// waitPolled waits until a worker has polled the host's queue for workflow
// tasks (what certctl deploy looks at before it starts a host run).
func waitPolled(t testing.TB, host string) {
	t.Helper()
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		resp, err := env.client.DescribeTaskQueue(context.Background(), workflows.HostQueue(host), enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		return err == nil && len(resp.GetPollers()) > 0, "no worker polled " + workflows.HostQueue(host)
	})
}

// Promise 8 on certctl's own path: the host's worker was polling a moment
// ago, so certctl starts the deploy on the host's queue, but it died
// (SIGKILL) and nothing picks the run up. Within CERTCTL_HOST_WAIT certctl
// gives it up: HostUnavailable, exit 1, the run terminated, nothing
// touched.
func TestIntegrationHostRunGivenUpWhenTheWorkerVanished(t *testing.T) {
	n, initial := startNginx(t)
	host := "vanishing"
	tg := n.Target("vanishing", host)
	w := hostWorker(t, host)
	waitPolled(t, host)
	w.Kill() // SIGKILL: no goodbye to the server, its poll stays listed a while
	<-w.Exited()
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	text, err := yamlOf(tg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := deployTextEnv(t, text, issue(t), []string{"CERTCTL_HOST_WAIT=4s"})
	if r.code != 1 || r.lastLine() != "outcome: HostUnavailable" {
		t.Fatalf("exit %d, last line %q\n%s", r.code, r.lastLine(), r.stdout)
	}
	wantLine(t, r.stdout, "error: HostUnavailable: no worker polled certctl-host-vanishing for 4s; start one on vanishing with: certctl-worker --host vanishing; nothing was touched")
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("HostUnavailable after %s, with a host wait of 4s", took)
	}
	id := r.workflowID()
	d, err := env.client.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	info := d.GetWorkflowExecutionInfo()
	if info.GetTaskQueue() != workflows.HostQueue(host) || info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
		t.Fatalf("%s: queue %s, status %v: want the host run, terminated", id, info.GetTaskQueue(), info.GetStatus())
	}
	wantUnchanged(t, before)
	wantServed(t, n, initial.LeafSHA256)
}

// A host run whose starter gave up on it (certctl killed as well as the
// worker: nobody terminated it) is picked up after its host_wait by a
// worker that comes back: it ends HostUnavailable on its first workflow
// task and touches nothing.
func TestIntegrationLateHostRunTouchesNothing(t *testing.T) {
	n, initial := startNginx(t)
	host := "late"
	tg := n.Target("late", host)
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("deploy/late/%d", time.Now().UnixNano()), TaskQueue: workflows.HostQueue(host),
	}, contract.DeployWorkflow, workflows.DeployRequest{Target: tg, Material: issue(t).Material, HostWait: target.Duration(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	hostWorker(t, host)
	res := resultOf(t, run)
	if res.Outcome != contract.HostUnavailable || len(res.Steps) != 0 {
		t.Fatalf("outcome %s (%s), steps %+v", res.Outcome, res.Error, res.Steps)
	}
	const head = "HostUnavailable: no worker polled certctl-host-late for 2s; start one on late with: certctl-worker --host late; this worker picked the deploy up only "
	const end = " after it started, when it was given up: deploy again; nothing was touched"
	if !strings.HasPrefix(res.Error, head) || !strings.HasSuffix(res.Error, end) {
		t.Fatalf("error %q, want %q…%q", res.Error, head, end)
	}
	wantUnchanged(t, before)
	wantServed(t, n, initial.LeafSHA256)
}

// wantLine fails unless out has line, whole.
func wantLine(t *testing.T, out, line string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return
		}
	}
	t.Fatalf("no line %q in:\n%s", line, out)
}

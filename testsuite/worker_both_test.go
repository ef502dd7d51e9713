package testsuite_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// DESIGN's interface: `certctl-worker --host NAME --workflows` polls both
// queues in one process. The shared workflow worker is stopped for the
// test, so the deploy's workflow and its host steps can only run in that
// one process; the workflow worker is started again afterwards.
func TestIntegrationOneWorkerPollsBothQueues(t *testing.T) {
	const host = "itest-both"
	n, _ := startNginx(t)
	fresh := issue(t)
	workerEnv := []string{"TEMPORAL_ADDRESS=" + env.address}
	env.workflowWorker.Stop()
	t.Cleanup(func() {
		p, err := testsuite.StartProcess("worker", filepath.Join(env.workDir, "worker-after-both.log"), workerEnv, env.worker)
		if err != nil {
			t.Fatalf("restart the workflow worker: %v", err)
		}
		env.workflowWorker = p
	})
	both, err := testsuite.StartProcess("worker-both", filepath.Join(t.TempDir(), "worker.log"), workerEnv, env.worker, "--host", host, "--workflows")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(both.Stop)

	// One process (its identity starts with its pid) polls both queues.
	me := strconv.Itoa(both.Pid()) + "@"
	for _, q := range []struct {
		name string
		kind enumspb.TaskQueueType
	}{
		{contract.TaskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW},
		{contract.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY},
		{workflows.HostQueue(host), enumspb.TASK_QUEUE_TYPE_ACTIVITY},
	} {
		waitPoller(t, q.name, q.kind, me)
	}

	r := deploy(t, n.Target("both-queues", host), fresh)
	if r.code != 0 || r.lastLine() != "outcome: Deployed" {
		t.Fatalf("exit %d, last line %q\n%s%s", r.code, r.lastLine(), r.stdout, r.stderr)
	}
	wantServed(t, n, fresh.LeafSHA256)
}

// waitPoller waits until a poller whose identity starts with prefix polls
// queue (kind).
func waitPoller(t *testing.T, queue string, kind enumspb.TaskQueueType, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var seen []string
	for {
		resp, err := env.client.DescribeTaskQueue(ctx, queue, kind)
		if err == nil {
			seen = seen[:0]
			for _, p := range resp.GetPollers() {
				if strings.HasPrefix(p.GetIdentity(), prefix) {
					return
				}
				seen = append(seen, p.GetIdentity())
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no poller %s* on %s (%s); pollers %v, last error %v", prefix, queue, kind, seen, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

package testsuite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// history is a workflow's events; none when there is no such workflow.
func history(t *testing.T, id, runID string) []*historypb.HistoryEvent {
	t.Helper()
	it := env.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func startDeploy(t *testing.T, tg target.Target, set testsuite.Set) client.WorkflowRun {
	t.Helper()
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("deploy/%s/%d", tg.TargetID, time.Now().UnixNano()), TaskQueue: contract.TaskQueue,
	}, "DeployWorkflow", workflows.DeployRequest{Target: tg, Material: set.Material})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// Promise 6: ten deploys of different certs to one target, started at once
// on the "certctl" queue (each delegating to a host run), run one after
// another in the order they reached the host's lease table (their tickets):
// each finds the files the one before it left, and the last one's leaf is
// served. The order is read from the deploys' own results, not from
// timestamps: a deploy that slipped in beside another would find files
// that are not its predecessor's.
func TestIntegrationOneDeployPerTargetAtATime(t *testing.T) {
	n, _ := startNginx(t)
	tg := n.Target("serial", testHost)
	const count = 10
	sets := make([]testsuite.Set, count)
	for i := range sets {
		sets[i] = issue(t)
	}
	runs := make([]client.WorkflowRun, count)
	var wg sync.WaitGroup
	for i := range sets {
		wg.Add(1)
		go func() { defer wg.Done(); runs[i] = startDeploy(t, tg, sets[i]) }()
	}
	wg.Wait()

	var spans []leaseSpan
	for i, run := range runs {
		res := resultOf(t, run)
		if res.Outcome != "Deployed" {
			t.Fatalf("%s: %s (%s)", run.GetID(), res.Outcome, res.Error)
		}
		spans = append(spans, spanOf(t, run.GetID(), res, sets[i].LeafSHA256))
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].ticket < spans[j].ticket })
	for i, s := range spans[1:] {
		for f := range s.res.Files {
			if got, want := s.res.Files[f].CurrentSHA256, spans[i].res.Files[f].SHA256; got != want {
				t.Fatalf("%s (ticket %d) found %s = %s, not what %s (ticket %d) left: interleaved", s.id, s.ticket, s.res.Files[f].Path, got, spans[i].id, spans[i].ticket)
			}
		}
	}
	wantServed(t, n, spans[len(spans)-1].leaf)
	record(t, spans[len(spans)-1].id, "deploy-delegated-deployed")
}

// leaseSpan is one deploy as the host's lease table ordered it.
type leaseSpan struct {
	id     string
	ticket uint64
	keys   string
	res    workflows.DeployResult
	leaf   string
}

// spanOf reads a deploy's ticket and keys from its lock step ("ticket N,
// holds K1, K2 …").
func spanOf(t *testing.T, id string, res workflows.DeployResult, leaf string) leaseSpan {
	t.Helper()
	for _, st := range res.Steps {
		if st.Name != string(contract.StepLock) {
			continue
		}
		var s leaseSpan
		if _, err := fmt.Sscanf(st.Detail, "ticket %d, holds ", &s.ticket); err != nil {
			t.Fatalf("%s: lock step %q: %v", id, st.Detail, err)
		}
		s.id, s.res, s.leaf = id, res, leaf
		s.keys, _, _ = strings.Cut(st.Detail[strings.Index(st.Detail, "holds ")+len("holds "):], "; ")
		return s
	}
	t.Fatalf("%s has no lock step: %+v", id, res.Steps)
	return leaseSpan{}
}

// Two targets on the same host do not wait for each other.
func TestIntegrationTwoTargetsOnOneHostRunInParallel(t *testing.T) {
	var runs []client.WorkflowRun
	for _, name := range []string{"parallel-a", "parallel-b"} {
		n, _ := startNginx(t)
		tg := n.Target(name, testHost)
		slow := filepath.Join(n.Dir, "slow-reload")
		body := "#!/bin/sh\nsleep 2\nexec " + strings.Join(n.ReloadCommand(), " ") + "\n"
		if err := os.WriteFile(slow, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		tg.Config.ReloadCommand = target.Command{slow}
		runs = append(runs, startDeploy(t, tg, issue(t)))
	}
	var starts, ends []time.Time
	for _, run := range runs {
		if res := resultOf(t, run); res.Outcome != "Deployed" {
			t.Fatalf("%s: %s", run.GetID(), res.Outcome)
		}
		evs := history(t, run.GetID(), run.GetRunID())
		starts = append(starts, evs[0].GetEventTime().AsTime())
		ends = append(ends, evs[len(evs)-1].GetEventTime().AsTime())
	}
	if !starts[1].Before(ends[0]) || !starts[0].Before(ends[1]) {
		t.Fatalf("deploys to two targets did not overlap: %v–%v and %v–%v", starts[0], ends[0], starts[1], ends[1])
	}
}

// Promise 8: a deploy to a host whose worker is not polling waits, visibly
// pending, up to CERTCTL_HOST_WAIT, then ends HostUnavailable having touched
// nothing.
func TestIntegrationHostDown(t *testing.T) {
	n, initial := startNginx(t)
	tg := n.Target("hostdown", "no-such-host")
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	done := make(chan deployRun, 1)
	go func() {
		b, _ := yamlOf(tg)
		done <- deployTextEnv(t, b, issue(t), []string{"CERTCTL_HOST_WAIT=4s"})
	}()
	// While it waits, the Web UI (and DescribeWorkflowExecution) shows the
	// host run pending, on the host's queue.
	var hostRun string
	seen, _ := testsuite.Poll(3*time.Second, func() (bool, string) {
		resp, err := env.client.ListWorkflow(context.Background(), listByTarget("hostdown"))
		if err != nil || len(resp.Executions) == 0 {
			return false, ""
		}
		ex := resp.Executions[0].GetExecution()
		d, err := env.client.DescribeWorkflowExecution(context.Background(), ex.GetWorkflowId(), ex.GetRunId())
		if err != nil || len(d.GetPendingChildren()) == 0 {
			return false, ""
		}
		hostRun = d.GetPendingChildren()[0].GetWorkflowId()
		return hostRun == ex.GetWorkflowId()+contract.HostRunSuffix, ""
	})
	r := <-done
	if !seen {
		t.Error("the waiting host run was never visible as a pending child")
	}
	// The run given up never runs later: it is closed with the deploy.
	if d, err := env.client.DescribeWorkflowExecution(context.Background(), hostRun, ""); err != nil ||
		d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("host run %s after HostUnavailable: %v %v", hostRun, d.GetWorkflowExecutionInfo().GetStatus(), err)
	}
	if r.code != 1 || r.lastLine() != "outcome: HostUnavailable" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	wantLine(t, r.stdout, "error: HostUnavailable: no worker polled certctl-host-no-such-host for 4s; start one on no-such-host with: certctl-worker --host no-such-host; nothing was touched")
	wantUnchanged(t, before)
	wantNoLeftovers(t, n.CertDir, 0)
	wantServed(t, n, initial.LeafSHA256)
}

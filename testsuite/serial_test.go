package testsuite_test

import (
	"context"
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
	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/lock"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

func history(t *testing.T, id, runID string) []*historypb.HistoryEvent {
	t.Helper()
	it := env.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var evs []*historypb.HistoryEvent
	for it.HasNext() {
		ev, err := it.Next()
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

// Promise 6: ten deploys of different certs to one target, started at once,
// run one after another in the order their requests reached the target's
// lock; each sees the previous one's files; the last one's leaf is served.
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

	type span struct {
		id           string
		granted, end time.Time
		res          workflows.DeployResult
		leaf         string
	}
	var spans []span
	for i, run := range runs {
		res := resultOf(t, run)
		if res.Outcome != "Deployed" {
			t.Fatalf("%s: %s (%s)", run.GetID(), res.Outcome, res.Error)
		}
		s := span{id: run.GetID(), res: res, leaf: sets[i].LeafSHA256}
		for _, ev := range history(t, run.GetID(), run.GetRunID()) {
			if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == contract.LockGrantedSignal {
				s.granted = ev.GetEventTime().AsTime()
			}
			// The deploy's last step is over when it sends its release.
			if a := ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes(); a != nil && a.GetSignalName() == contract.LockReleaseSignal {
				s.end = ev.GetEventTime().AsTime()
			}
		}
		if s.granted.IsZero() || s.end.IsZero() {
			t.Fatalf("%s was never granted the lock, or never released it", s.id)
		}
		spans = append(spans, s)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].granted.Before(spans[j].granted) })

	// The order requests reached the lock, from its own history.
	var requested []string
	for _, ev := range lockHistory(t, lock.FileLockID(tg)) {
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		if a == nil || a.GetSignalName() != contract.LockAcquireSignal {
			continue
		}
		var r lock.Request
		if err := env.codec.DataConverter().FromPayloads(a.GetInput(), &r); err != nil {
			t.Fatal(err)
		}
		if r.TargetID != tg.TargetID {
			continue // the host's lock serves its other targets too
		}
		requested = append(requested, r.WorkflowID)
	}
	var granted []string
	for i, s := range spans {
		granted = append(granted, s.id)
		if i == 0 {
			continue
		}
		prev := spans[i-1]
		if !s.granted.After(prev.end) && !s.granted.Equal(prev.end) {
			t.Fatalf("%s was granted at %v, before %s ended at %v: interleaved", s.id, s.granted, prev.id, prev.end)
		}
		for f := range s.res.Files {
			if s.res.Files[f].CurrentSHA256 != prev.res.Files[f].SHA256 {
				t.Fatalf("%s did not find %s's %s", s.id, prev.id, s.res.Files[f].Path)
			}
		}
	}
	if strings.Join(requested, ",") != strings.Join(granted, ",") {
		t.Fatalf("granted out of request order:\n requested %v\n granted   %v", requested, granted)
	}
	wantServed(t, n, spans[len(spans)-1].leaf)
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
	// pending step.
	seen, _ := testsuite.Poll(3*time.Second, func() (bool, string) {
		resp, err := env.client.ListWorkflow(context.Background(), listByTarget("hostdown"))
		if err != nil || len(resp.Executions) == 0 {
			return false, ""
		}
		ex := resp.Executions[0].GetExecution()
		d, err := env.client.DescribeWorkflowExecution(context.Background(), ex.GetWorkflowId(), ex.GetRunId())
		return err == nil && len(d.GetPendingActivities()) > 0 && d.GetPendingActivities()[0].GetActivityType().GetName() == "Plan", ""
	})
	r := <-done
	if !seen {
		t.Error("the waiting step was never visible as a pending activity")
	}
	if r.code != 1 || r.lastLine() != "outcome: HostUnavailable" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	wantUnchanged(t, before)
	wantNoLeftovers(t, n.CertDir, 0)
	wantServed(t, n, initial.LeafSHA256)
}

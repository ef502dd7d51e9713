package testsuite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/workflows"
)

// A rollout over two hosts, each with its own worker, where one host's
// worker is killed (SIGKILL, from a failpoint) after it picked its deploy
// up, and does not come back while the rollout runs: right after pickup
// (plan:done, a local activity: the deploy's workflow task times out and
// waits for a worker), and past its first rename (commit, an activity: its
// heartbeat stops and its retry waits for a worker). The rollout does not
// wait for it for ever: once that task has waited stall_after (the
// default: the host wait, at least 30s), the target counts as HostLost,
// naming its host and what to do, and the rollout completes within
// --max-failures with the other target deployed. The lost deploy was not
// terminated: the host's worker, started again, picks it up where it
// stopped and deploys, and `certctl rollout status` and `certctl status
// --target` say both.
func TestIntegrationRolloutHostLostAfterPickup(t *testing.T) {
	for i, c := range []struct{ point, task, history string }{
		{"plan:done", "workflow task", "rollout-host-lost"},
		{"commit:after-rename-1", "activity commit", "rollout-host-lost-activity"},
	} {
		t.Run(strings.ReplaceAll(c.point, ":", "_"), func(t *testing.T) {
			hostLostAfterPickup(t, fmt.Sprintf("hl%d", i), c.point, c.task, c.history)
		})
	}
}

func hostLostAfterPickup(t *testing.T, prefix, point, task, history string) {
	alive, dead := "ro-"+prefix+"-a", "ro-"+prefix+"-b"
	hostWorker(t, alive)
	doomed := hostWorker(t, dead, failpoint.Env+"="+point+"=kill")
	waitPolled(t, alive)
	waitPolled(t, dead)
	f := newRolloutFleet(t, prefix, 2, alive, dead)
	set := issue(t)
	id := uniqueID("hostlost")
	r := rollout(t, f.dir, set, []string{"CERTCTL_HOST_WAIT=3s"}, "--canary", "0", "--batch", "2", "--max-failures", "1", "--id", id)
	if r.code != 0 || r.lastLine() != "outcome: "+contract.RolloutCompleted {
		t.Fatalf("exit %d, last line %q\n%s%s", r.code, r.lastLine(), r.stdout, r.stderr)
	}
	select {
	case <-doomed.Exited():
	default:
		t.Fatal("the rollout completed, yet the doomed worker is alive: the failpoint never fired")
	}
	recordRun(t, workflows.RolloutID(id), "", history)
	lost := f.targets[1].TargetID
	lostID := workflows.RolloutDeployID(id, lost)
	for _, want := range []string{
		"failed:    " + lost + " HostLost (" + lostID + ")",
		"HostLost: the worker on " + dead + " picked the deploy up, then stopped: its " + task + " has waited on certctl-host-" + dead + " since ",
		" (stall_after 30s); the deploy resumes when the worker on " + dead + " returns; check it with certctl status --target " + lost + "\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q\n%s", want, r.stdout)
		}
	}
	wantServed(t, f.nginx[0], set.LeafSHA256)

	// The rollout's own count, by the server's clock: the target was counted
	// lost once it had waited stall_after, not before.
	p := rolloutStatus(t, id)
	if p.State != contract.RolloutFinished || p.Succeeded != 1 || p.Outcomes[contract.HostLost] != 1 || p.Outcomes[contract.Deployed] != 1 ||
		len(p.Failed) != 1 || p.Failed[0].TargetID != lost || p.Failed[0].Outcome != contract.HostLost || p.Failed[0].WorkflowID != lostID {
		t.Fatalf("rollout status %+v", p)
	}
	for _, d := range p.Recent {
		if d.TargetID == lost && time.Duration(d.Ms)*time.Millisecond < workflows.MinStallAfter {
			t.Fatalf("%s counted lost %dms after it started, before stall_after %s", lost, d.Ms, workflows.MinStallAfter)
		}
	}

	// Left running, not terminated: still running now.
	d, err := env.client.DescribeWorkflowExecution(context.Background(), lostID, "")
	if err != nil {
		t.Fatal(err)
	}
	if st := d.GetWorkflowExecutionInfo().GetStatus().String(); st != "Running" {
		t.Fatalf("the lost deploy is %s, want Running", st)
	}

	// The worker returns: the deploy resumes and ends on its own.
	hostWorker(t, dead)
	res := resultOf(t, env.client.GetWorkflow(context.Background(), lostID, ""))
	if res.Outcome != contract.Deployed {
		t.Fatalf("the lost deploy ended %s (%s)", res.Outcome, res.Error)
	}
	recordRun(t, lostID, "", history+"-deploy")
	wantServed(t, f.nginx[1], set.LeafSHA256)
	if err := intact(f.nginx[1]); err != nil {
		t.Fatal(err)
	}

	// The rollout keeps its record (HostLost: it stopped waiting); the
	// target's status says how the deploy ended.
	if p := rolloutStatus(t, id); len(p.Failed) != 1 || p.Failed[0].Outcome != contract.HostLost {
		t.Fatalf("rollout status after the worker returned %+v", p)
	}
	text := certctlCLI(t, nil, "rollout", "status", workflows.RolloutID(id))
	if text.code != 0 || !strings.Contains(text.stdout, lost+" HostLost") {
		t.Fatalf("rollout status: exit %d\n%s%s", text.code, text.stdout, text.stderr)
	}
	js := certctlCLI(t, nil, "status", "--target", lost, "--output", "json")
	var sj struct {
		LastDeploy struct {
			WorkflowID string `json:"workflow_id"`
			Outcome    string `json:"outcome"`
		} `json:"last_deploy"`
		Served struct{ SHA256 string }
	}
	if err := json.Unmarshal([]byte(js.stdout), &sj); err != nil {
		t.Fatalf("status --output json: exit %d, %v\n%s%s", js.code, err, js.stdout, js.stderr)
	}
	if sj.LastDeploy.WorkflowID != lostID || sj.LastDeploy.Outcome != contract.Deployed || sj.Served.SHA256 != set.LeafSHA256 {
		t.Fatalf("status --target %s: %+v\n%s", lost, sj, js.stdout)
	}
}

// rolloutStatus is `certctl rollout status ID --output json`.
func rolloutStatus(t *testing.T, id string) workflows.RolloutProgress {
	t.Helper()
	st := certctlCLI(t, nil, "rollout", "status", workflows.RolloutID(id), "--output", "json")
	var p workflows.RolloutProgress
	if err := json.Unmarshal([]byte(st.stdout), &p); err != nil || st.code != 0 {
		t.Fatalf("rollout status: exit %d, %v\n%s%s", st.code, err, st.stdout, st.stderr)
	}
	return p
}

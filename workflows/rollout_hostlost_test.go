package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/notify"
	"github.com/certctl/certctl/target"
)

// goneAfterPickup is a deploy fake: a "gone-" target's host worker picks
// it up (GiveUp says so) and dies (Stall then says a workflow task waits
// since), and the deploy ends only when that worker returns, after
// `back` (30 days unless set); any other runs as fleet.deploy does.
func goneAfterPickup(back time.Duration) func(*fleet, workflow.Context, DeployRequest) (DeployResult, error) {
	if back == 0 {
		back = 30 * 24 * time.Hour
	}
	return func(f *fleet, ctx workflow.Context, req DeployRequest) (DeployResult, error) {
		id := req.Target.TargetID
		if strings.HasPrefix(id, "gone-") {
			f.mu.Lock()
			f.started = append(f.started, id)
			if f.at == nil {
				f.at = map[string]time.Time{}
			}
			f.at[id] = workflow.Now(ctx)
			f.mu.Unlock()
			f.dies(ctx, id)
			_ = workflow.Sleep(ctx, back)
			f.mu.Lock()
			delete(f.lostAt, id)
			f.back = append(f.back, id)
			f.mu.Unlock()
			return DeployResult{TargetID: id, Outcome: contract.Deployed}, nil
		}
		return f.deploy(ctx, req)
	}
}

// A host whose worker picked its deploy up and then died for good no
// longer holds the rollout: once the deploy has waited stall_after
// (default host_wait) for its worker, the target counts as failed,
// HostLost, naming its host and what to do, and within max_failures the
// rollout completes. (Before hostLostChange the rollout waited for ever:
// the review's defect.)
func TestRolloutHostThatDiesAfterPickup(t *testing.T) {
	f := newFleetDeploying(t, goneAfterPickup(0))
	f.took = time.Second
	wait := time.Minute
	res, err := f.run(RolloutRequest{Targets: targets("web-01", "gone-02", "web-03"), Canary: intp(0), Batch: 3,
		MaxFailures: 1, HostWait: target.Duration(wait)})
	// Asked once host_wait (and its margin) is over: picked up; asked
	// again stall_after later: waiting all that time.
	if took, bound := lostAfter(t, f, "gone-02"), wait+hostWaitMargin(wait)+wait+2*time.Second; took > bound {
		t.Fatalf("the rollout counted gone-02 lost after %s, more than host_wait + stall_after (%s) (result %+v, %v)", took, bound, res, err)
	}
	// Left running, not terminated: it ended when its worker returned.
	if len(f.back) != 1 {
		t.Fatalf("the lost deploy did not run on: %v", f.back)
	}
	if err != nil || res.Outcome != contract.RolloutCompleted {
		t.Fatalf("result %+v, %v", res, err)
	}
	if len(res.Failed) != 1 || res.Failed[0].TargetID != "gone-02" || res.Failed[0].Outcome != contract.HostLost {
		t.Fatalf("failed %+v", res.Failed)
	}
	want := "the deploy resumes when the worker on h-gone-02 returns; check it with certctl status --target gone-02"
	if e := res.Failed[0].Error; !strings.HasPrefix(e, "HostLost: the worker on h-gone-02 picked the deploy up, then stopped: its workflow task has waited on certctl-host-h-gone-02 since ") ||
		!strings.Contains(e, " (stall_after 1m0s); ") || !strings.HasSuffix(e, want) || len(e) > 300 {
		t.Fatalf("error %q", e)
	}
	if res.Succeeded != 2 || res.Outcomes[contract.HostLost] != 1 || res.Outcomes[contract.Deployed] != 2 {
		t.Fatalf("result %+v", res)
	}
	if next := strings.ReplaceAll(strings.ReplaceAll(contract.NextAction(contract.HostLost), "<host>", "h-gone-02"), "ID", "gone-02"); next != want {
		t.Fatalf("NextAction %q is not what the message says (%q)", next, want)
	}
}

// lostAfter is how long after its start the rollout counted target id's
// deploy lost (its RolloutDone's Ms).
func lostAfter(t *testing.T, f *fleet, id string) time.Duration {
	t.Helper()
	for _, d := range f.progress().Recent {
		if d.TargetID == id {
			if d.Outcome != contract.HostLost {
				t.Fatalf("%s ended %s", id, d.Outcome)
			}
			return time.Duration(d.Ms) * time.Millisecond
		}
	}
	t.Fatalf("%s never ended", id)
	return 0
}

// stall_after is the rollout's own when given: a lost host is counted
// that long after it stopped, not host_wait.
func TestRolloutStallAfterIsItsOwn(t *testing.T) {
	f := newFleetDeploying(t, goneAfterPickup(0))
	wait, stall := time.Minute, 10*time.Minute
	res, _ := f.run(RolloutRequest{Targets: targets("gone-01"), Canary: intp(0), MaxFailures: 1,
		HostWait: target.Duration(wait), StallAfter: target.Duration(stall)})
	took := lostAfter(t, f, "gone-01")
	if took < stall || took > wait+hostWaitMargin(wait)+stall+2*time.Second {
		t.Fatalf("counted lost after %s with stall_after %s", took, stall)
	}
	if len(res.Failed) != 1 || res.Failed[0].Outcome != contract.HostLost || !strings.Contains(res.Failed[0].Error, "(stall_after 10m0s)") {
		t.Fatalf("failed %+v", res.Failed)
	}
}

// A lost host frees its slot: with a batch of one, the next target starts
// once the first is counted HostLost, long before that deploy ends.
func TestRolloutHostLostFreesItsSlot(t *testing.T) {
	f := newFleetDeploying(t, goneAfterPickup(0))
	f.took = time.Second
	res, err := f.run(RolloutRequest{Targets: targets("gone-01", "web-02"), Canary: intp(0), Batch: 1, MaxFailures: 1,
		HostWait: target.Duration(time.Minute)})
	if err != nil || res.Outcome != contract.RolloutCompleted || res.Succeeded != 1 {
		t.Fatalf("result %+v, %v", res, err)
	}
	f.inOrder([]string{"gone-01", "web-02"})
	if d := f.at["web-02"].Sub(f.at["gone-01"]); d > 3*time.Minute {
		t.Fatalf("web-02 started %s after gone-01", d)
	}
}

// HostLost is a failure like any other: past max_failures the rollout
// halts, starts nothing more, and its RolloutHalted notification lists
// the lost target.
func TestRolloutHostLostHaltsAndIsNotified(t *testing.T) {
	f := newFleetDeploying(t, goneAfterPickup(0))
	var n notified
	n.mock(f.env)
	res, err := f.run(RolloutRequest{Targets: targets("gone-01", "web-02", "web-03"), Canary: intp(0), Batch: 1,
		HostWait: target.Duration(time.Minute)})
	if contract.Of(err) != contract.RolloutHalted || res.NotStarted != 2 {
		t.Fatalf("result %+v, %v", res, err)
	}
	if !strings.Contains(res.Error, "1 failed (max_failures 0): gone-01 HostLost; 2 targets not started") {
		t.Fatalf("error %q", res.Error)
	}
	f.inOrder([]string{"gone-01"})
	var halted []notify.Event
	for _, ev := range n.events {
		if ev.Event == contract.RolloutHalted {
			halted = append(halted, ev)
		}
	}
	if len(halted) != 1 || len(halted[0].Failed) != 1 || halted[0].Failed[0].TargetID != "gone-01" || halted[0].Failed[0].Outcome != contract.HostLost ||
		!strings.HasPrefix(halted[0].Failed[0].WorkflowID, "deploy/gone-01/rollout-") {
		t.Fatalf("notified %+v", n.events)
	}
}

// A deploy counted HostLost whose worker returns while the rollout still
// runs ends on its own; the rollout counts it once, as HostLost.
func TestRolloutLostDeployThatEndsLaterCountsOnce(t *testing.T) {
	f := newFleetDeploying(t, goneAfterPickup(20*time.Minute))
	f.took = time.Hour
	res, err := f.run(RolloutRequest{Targets: targets("gone-01", "web-02"), Canary: intp(0), Batch: 2, MaxFailures: 1,
		HostWait: target.Duration(time.Minute)})
	if err != nil || res.Outcome != contract.RolloutCompleted {
		t.Fatalf("result %+v, %v", res, err)
	}
	if res.Succeeded != 1 || len(res.Failed) != 1 || res.Outcomes[contract.HostLost] != 1 || res.Outcomes[contract.Deployed] != 1 {
		t.Fatalf("result %+v", res)
	}
}

// A deploy that runs long and makes progress (Stall finds nothing
// waiting) is never lost: the rollout asks every stall_after and waits
// for its end.
func TestRolloutSlowDeployIsNotLost(t *testing.T) {
	f := newFleet(t)
	f.took = 3 * time.Hour
	res, err := f.run(RolloutRequest{Targets: targets("slow-01"), Canary: intp(0), HostWait: target.Duration(time.Minute)})
	if err != nil || res.Outcome != contract.RolloutCompleted || res.Succeeded != 1 {
		t.Fatalf("result %+v, %v", res, err)
	}
	if n := len(f.stalls); n < 100 || n > 200 {
		t.Fatalf("Stall asked %d times in 3h with stall_after 1m", n)
	}
}

// A rollout recorded before hostLostChange keeps what it did: it waits for
// a lost host's deploy as long as that runs, and never asks Stall.
func TestRolloutBeforeHostLostChangeWaits(t *testing.T) {
	f := newFleetDeploying(t, goneAfterPickup(2*time.Hour))
	f.env.OnGetVersion(hostLostChange, workflow.DefaultVersion, hostLostVersion).Return(workflow.DefaultVersion)
	res, err := f.run(RolloutRequest{Targets: targets("gone-01"), Canary: intp(0), HostWait: target.Duration(time.Minute)})
	if err != nil || res.Outcome != contract.RolloutCompleted || res.Outcomes[contract.Deployed] != 1 {
		t.Fatalf("result %+v, %v", res, err)
	}
	if len(f.stalls) != 0 {
		t.Fatalf("Stall asked %v", f.stalls)
	}
}

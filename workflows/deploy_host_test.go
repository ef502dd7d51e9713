package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

func stepNames(res DeployResult) string {
	var names []string
	for _, s := range res.Steps {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}

// The host run's steps are local activities on the host's worker, except
// the two that change live files: Commit and Rollback stay activities, so
// everything before them is in the history first.
func TestHostRunStepsAreLocalButTheIrreversible(t *testing.T) {
	for _, from := range []string{contract.TaskQueue, HostQueue("web-1")} {
		t.Run(from, func(t *testing.T) {
			h := newHarness(t, activities.ActionDeploy)
			h.reload = []error{temporal.NewNonRetryableApplicationError("nginx -s reload: exit status 1", contract.ReloadFailed, nil)}
			h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: from})
			res, err := h.run(testRequest())
			wantOutcome(t, res, err, contract.ReloadFailed)
			for name, local := range h.local {
				if want := name != "Commit" && name != "Rollback"; local != want {
					t.Errorf("%s ran as a local activity: %t, want %t", name, local, want)
				}
			}
			if !h.ran("Commit") || !h.ran("Rollback") || !h.ran("Lock") || !h.ran("Release") {
				t.Fatalf("steps run %v", h.called)
			}
		})
	}
}

func (h *harness) ran(name string) bool {
	for _, c := range h.called {
		if c == name {
			return true
		}
	}
	return false
}

// Started by certctl on the host's queue, a deploy is one workflow: no
// child, the same steps, the lease released by Cleanup.
func TestHostRunStartedOnTheHostQueue(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: HostQueue("web-1")})
	children := 0
	h.env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) { children++ })
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.Deployed)
	if children != 0 {
		t.Fatalf("the host run started %d child workflows", children)
	}
	if got := stepNames(res); got != "lock,plan,backup,stage,validate,commit,reload,verify,cleanup" {
		t.Fatalf("steps %s", got)
	}
	h.wantCalls("Plan", "Backup", "Stage", "Validate", "Commit", "Reload", "Verify", "Cleanup")
}

// Promise 6 in the host run: a deploy whose keys another deploy holds asks
// again until it has them; the wait is one step that names who it waited
// for. A skip, which runs no Cleanup, releases the lease itself.
func TestHostRunWaitsItsTurn(t *testing.T) {
	h := newHarness(t, activities.ActionSkip)
	h.busy = 3
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.SkippedIdempotent)
	if got := stepNames(res); !strings.HasPrefix(got, "lock,plan,") || !strings.HasSuffix(got, ",unlock") || strings.Count(got, "lock,") != 1 {
		t.Fatalf("steps %s", got)
	}
	if d := res.Steps[0].Detail; !strings.Contains(d, "waited for deploy/web-1/earlier") || !strings.Contains(d, "file:/etc/nginx/certs/key.pem") {
		t.Fatalf("lock detail %q", d)
	}
	h.wantCalls("Plan")
}

// A dry run touches nothing live: no lease.
func TestHostRunDryRunTakesNoLease(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.busy = -1 // a lease would never be granted
	req := testRequest()
	req.DryRun = true
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.DryRunPassed)
	if h.ran("Lock") || h.ran("Release") {
		t.Fatalf("a dry run used the lease: %v", h.called)
	}
}

// Promise 8: a deploy on the "certctl" queue whose host run no worker
// picked up within host_wait ends HostUnavailable; one that was picked up
// waits on for its result.
func TestHostUnavailableWhenNoWorkerPicksTheRunUp(t *testing.T) {
	cases := []struct {
		name     string
		pickedUp bool
		busy     int
		want     string
	}{
		{"never picked up", false, -1, contract.HostUnavailable},
		{"picked up, slow", true, 4, contract.Deployed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, activities.ActionDeploy)
			h.pickedUp, h.busy = c.pickedUp, c.busy
			req := testRequest()
			req.HostWait = target.Duration(2 * time.Second)
			res, err := h.run(req)
			wantOutcome(t, res, err, c.want)
			if !h.ran("PickedUp") {
				t.Fatalf("PickedUp not asked: %v", h.called)
			}
			const msg = "HostUnavailable: no worker polled certctl-host-web-1 for 2s; start one on web-1 with: certctl-worker --host web-1; nothing was touched"
			if c.want == contract.HostUnavailable && (h.ran("Plan") || res.Error != msg) {
				t.Fatalf("steps %v, error %q", h.called, res.Error)
			}
		})
	}
}

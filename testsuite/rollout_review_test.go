package testsuite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/workflows"
)

// A rollout ID given twice while the first rollout runs: the second
// `certctl rollout --id` must refuse, naming the ID, not report (and
// follow) the running rollout as if it had started one with its own
// certificate and targets.
func TestIntegrationRolloutIDInUse(t *testing.T) {
	f := newRolloutFleet(t, "inuse", 1, "ro-inuse-nobody")
	id := uniqueID("inuse")
	set := issue(t)
	first := rollout(t, f.dir, set, nil, "--canary", "0", "--id", id, "--detach")
	if first.code != 0 {
		t.Fatalf("first rollout: exit %d", first.code)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = env.client.TerminateWorkflow(ctx, contract.RolloutIDPrefix+id, "", "test over")
		_ = env.client.TerminateWorkflow(ctx, "deploy/inuse-01/rollout-"+id, "", "test over")
	}()
	second := rollout(t, f.dir, issue(t), nil, "--canary", "0", "--id", id, "--detach")
	if second.code != 2 {
		t.Fatalf("a second rollout with the running rollout's ID %q exited %d, want 2 (refused):\n%s", id, second.code, second.stdout)
	}
	if msg := second.stdout + second.stderr; !strings.Contains(msg, id) || !strings.Contains(msg, "already") {
		t.Fatalf("the refusal does not name the ID and say it is in use: %q", msg)
	}
}

// A rollout cancelled (temporal workflow cancel) while its deploys wait
// for their host's worker ends, cancelled, once host_wait is over, each
// deploy given up HostUnavailable: it neither spins on its host-wait timer
// (on main: TMPRL1101 "Potential deadlock", the workflow task failing for
// ever) nor waits for a host that never comes to read the cancel.
func TestIntegrationRolloutCancelledEnds(t *testing.T) {
	f := newRolloutFleet(t, "cancel", 2, "ro-cancel-nobody")
	id := uniqueID("cancel")
	r := rollout(t, f.dir, issue(t), []string{"CERTCTL_HOST_WAIT=3s"}, "--canary", "0", "--id", id, "--detach")
	if r.code != 0 {
		t.Fatalf("rollout: exit %d", r.code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	defer func() {
		c, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		_ = env.client.TerminateWorkflow(c, contract.RolloutIDPrefix+id, "", "test over")
		for _, tg := range f.targets {
			_ = env.client.TerminateWorkflow(c, "deploy/"+tg.TargetID+"/rollout-"+id, "", "test over")
		}
	}()
	time.Sleep(time.Second)
	if err := env.client.CancelWorkflow(ctx, contract.RolloutIDPrefix+id, ""); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	err := env.client.GetWorkflow(wctx, contract.RolloutIDPrefix+id, "").Get(wctx, nil)
	var ce *temporal.CanceledError
	if !errors.As(err, &ce) {
		t.Fatalf("the cancelled rollout did not end cancelled within 20s: %v", err)
	}
	var res workflows.RolloutResult
	if err := ce.Details(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) != 2 || res.Failed[0].Outcome != contract.HostUnavailable || res.Failed[1].Outcome != contract.HostUnavailable {
		t.Fatalf("result %+v, want both targets HostUnavailable", res)
	}
}

// What a host's command printed reaches the operator's terminal in
// certctl rollout's progress and result (a failed validate_command's
// output is in its error): an escape sequence in it (written, say, by
// whoever can put text in a config the validator echoes) must not reach
// the terminal as one.
func TestIntegrationRolloutPrintsNoTerminalEscapes(t *testing.T) {
	hostWorker(t, "ro-esc")
	waitPolled(t, "ro-esc")
	f := newRolloutFleet(t, "esc", 2, "ro-esc")
	f.targets[0].Config.ValidateCommand = target.Command{"sh", "-c", `printf 'bad config \033]2;pwned\007\033[2J\r\n'; exit 1`}
	f.write(t)
	r := rollout(t, f.dir, issue(t), nil, "--id", uniqueID("esc"))
	if r.code != 1 || !strings.Contains(r.stdout, "esc-01 ValidateFailed") {
		t.Fatalf("exit %d, want 1 and esc-01 ValidateFailed", r.code)
	}
	if !strings.Contains(r.stdout, "bad config") {
		t.Fatal("the command's output is not in the error printed")
	}
	if i := strings.IndexAny(r.stdout, "\x1b\x07\r"); i >= 0 {
		t.Fatalf("certctl rollout printed a control character %q: %q", r.stdout[i], r.stdout[max(0, i-20):min(len(r.stdout), i+20)])
	}
}

// GiveUp terminates a host run no worker picked up only once the run's
// own host_wait, from its own start on the server, is over: asked sooner
// (the rollout's clock ran ahead of the run's start, say) it refuses, so
// that a run picked up between its check and the termination always gives
// itself up rather than being killed half way through a deploy.
func TestIntegrationGiveUpWaitsForTheRunsOwnHostWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := "deploy/giveup-01/rollout-" + uniqueID("giveup")
	run, err := env.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: workflows.HostQueue("ro-giveup-nobody")},
		contract.DeployWorkflow, workflows.DeployRequest{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.client.TerminateWorkflow(context.Background(), id, "", "test over") }()
	a := &activities.Activities{Client: env.client}
	in := activities.GiveUpInput{WorkflowID: id, RunID: run.GetRunID(), Reason: "test", HostWait: time.Minute}
	picked, err := a.GiveUp(ctx, in)
	if contract.Of(err) != activities.GiveUpTooEarly || picked {
		t.Fatalf("GiveUp of a run started an instant ago with a host_wait of 1m: picked %v, err %v; want GiveUpTooEarly", picked, err)
	}
	desc, err := env.client.DescribeWorkflowExecution(ctx, id, run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("the run is %s after a GiveUp too early", st)
	}
	in.HostWait = time.Millisecond
	time.Sleep(1100 * time.Millisecond)
	if picked, err := a.GiveUp(ctx, in); err != nil || picked {
		t.Fatalf("GiveUp past the run's host_wait: picked %v, err %v; want it terminated", picked, err)
	}
	var te *temporal.TerminatedError
	if err := run.Get(ctx, nil); !errors.As(err, &te) {
		t.Fatalf("the run given up ended %v, want terminated", err)
	}
}

// A target ID that makes its deploy's workflow ID longer than the server
// takes (1,000 characters) is refused before anything starts, exit 2,
// naming the file and the field: not a rollout whose workflow task the
// server refuses for ever (the child's start attributes are bad).
func TestIntegrationRolloutTargetIDTooLongForItsWorkflowID(t *testing.T) {
	f := newRolloutFleet(t, "long", 2, "ro-long-nobody")
	f.targets[1].TargetID = strings.Repeat("l", 990)
	text, err := yamlOf(f.targets[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(f.dir, "02-long-02.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "02-long.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	id := uniqueID("long")
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = env.client.TerminateWorkflow(ctx, contract.RolloutIDPrefix+id, "", "test over")
	}()
	r := rollout(t, f.dir, issue(t), nil, "--canary", "0", "--id", id, "--detach")
	if r.code != 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err := env.client.GetWorkflow(ctx, contract.RolloutIDPrefix+id, "").Get(ctx, nil)
		var evs []string
		it := env.client.GetWorkflowHistory(context.Background(), contract.RolloutIDPrefix+id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, herr := it.Next()
			if herr != nil {
				break
			}
			s := ev.GetEventType().String()
			if f := ev.GetWorkflowTaskFailedEventAttributes(); f != nil {
				s += " " + f.GetCause().String()
			}
			evs = append(evs, s)
		}
		t.Fatalf("exit %d, want 2 (refused); the rollout then ended: %v; its history: %s", r.code, err, strings.Join(evs, ", "))
	}
	if msg := r.stderr; !strings.Contains(msg, "02-long.yaml") || !strings.Contains(msg, "target_id") {
		t.Fatalf("the refusal does not name the file and target_id: %q", msg)
	}
}

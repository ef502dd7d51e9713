package workflows

import (
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/clientenv"
	"github.com/certctl/certctl/codec"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/testsuite/histories"
)

// TestReplayRecordedHistories replays every history recorded from the real
// dev server (testsuite/histories, re-recorded only on purpose with `make
// record-histories`). A change to workflow code that would break a running
// deploy fails here; see README "Changing a workflow".
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("../testsuite/histories/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("want at least two recorded histories in testsuite/histories, found %d", len(files))
	}
	c, err := testsuite.UseTestCodec()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter:    c.DataConverter(),
				FailureConverter: failureConverter(c),
			})
			if err != nil {
				t.Fatal(err)
			}
			Register(r)
			if err := replayFile(t, r, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}

func failureConverter(c *codec.Codec) converter.FailureConverter {
	var o client.Options
	clientenv.WithCodec(&o, c)
	return o.FailureConverter
}

// Rotation: histories written under the old key still replay once a new key
// encrypts (the old key stays loaded for decoding).
func TestReplayAfterKeyRotation(t *testing.T) {
	old, err := testsuite.TestCodecKeys()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := codec.ParseKeys(old)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := codec.GenerateKey("rotated-in")
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(append(keys, fresh)...)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyID() != "rotated-in" {
		t.Fatalf("the newest key must encrypt, got %s", c.KeyID())
	}
	files, _ := filepath.Glob("../testsuite/histories/*.json")
	for _, f := range files {
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: c.DataConverter(), FailureConverter: failureConverter(c)})
		if err != nil {
			t.Fatal(err)
		}
		Register(r)
		if err := replayFile(t, r, f); err != nil {
			t.Fatalf("replay %s after rotation: %v", f, err)
		}
	}
	// Without the old key the same histories cannot be read: the rotation
	// test above is not passing by accident.
	only, _ := codec.New(fresh)
	r, _ := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{DataConverter: only.DataConverter(), FailureConverter: failureConverter(only)})
	Register(r)
	if err := r.ReplayWorkflowHistoryFromJSONFile(nil, files[0]); err == nil {
		t.Fatal("a history replayed without the key that encrypted it")
	}
}

// The recorded histories cover the three shapes of version 3 a running
// deploy may have, so TestReplayRecordedHistories proves each: the host run
// certctl starts on the host's queue, the DeployWorkflow on "certctl" that
// delegates to a child, and that child.
func TestReplayHistoriesCoverTheHostRun(t *testing.T) {
	seen := map[string][]string{}
	for _, hf := range histories.Load(t, "../testsuite/histories/deploy-*.json") {
		f, h := hf.Path, hf.History
		start := h.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
		onHost := strings.HasPrefix(start.GetTaskQueue().GetName(), contract.HostQueuePrefix)
		delegates := false
		for _, ev := range h.GetEvents() {
			delegates = delegates || ev.GetStartChildWorkflowExecutionInitiatedEventAttributes() != nil
		}
		switch {
		case onHost && start.GetParentWorkflowExecution() == nil:
			seen["host run started by certctl"] = append(seen["host run started by certctl"], filepath.Base(f))
		case onHost:
			seen["delegated host run"] = append(seen["delegated host run"], filepath.Base(f))
		case delegates:
			seen["deploy that delegates"] = append(seen["deploy that delegates"], filepath.Base(f))
		}
	}
	for _, kind := range []string{"host run started by certctl", "delegated host run", "deploy that delegates"} {
		if len(seen[kind]) == 0 {
			t.Errorf("no recorded history is a %s: %v", kind, seen)
		}
	}
}

// The recorded histories cover a rollout's shapes: completed, halted by
// its canary, with a host that never answered, and both runs of one that
// continued as new.
func TestReplayHistoriesCoverTheRollout(t *testing.T) {
	for _, name := range []string{"rollout-completed", "rollout-halted", "rollout-host-unavailable", "rollout-continued-first", "rollout-continued-last"} {
		hs := histories.Load(t, "../testsuite/histories/"+name+".json")
		if len(hs) != 1 {
			t.Errorf("no recorded history %s.json (make record-histories)", name)
			continue
		}
		if typ := hs[0].History.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName(); typ != contract.RolloutWorkflow {
			t.Errorf("%s is a %s", name, typ)
		}
	}
}

// replayFile replays a recorded history under its workflow's own ID, as a
// worker does: a DeployWorkflow that delegates names its child after
// itself ("<id>/host"), and the replayer's stand-in ID would name another.
// The ID is read back from the child the history started.
func replayFile(t *testing.T, r worker.WorkflowReplayer, f string) error {
	t.Helper()
	h := histories.Load(t, f)[0].History
	var opts worker.ReplayWorkflowHistoryOptions
	for _, ev := range h.GetEvents() {
		child := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes().GetWorkflowId()
		// A notification is named after the workflow that started it
		// (NotifyID): "<id>/notify".
		if id, ok := strings.CutSuffix(child, contract.NotifySuffix); ok {
			opts.OriginalExecution = workflow.Execution{ID: id, RunID: "replay"}
			break
		}
		if id, ok := strings.CutSuffix(child, contract.HostRunSuffix); ok {
			opts.OriginalExecution = workflow.Execution{ID: id, RunID: "replay"}
		}
		// A rollout names its deploys "deploy/<target>/rollout-<id>".
		if _, id, ok := strings.Cut(child, "/rollout-"); ok && strings.HasPrefix(child, "deploy/") {
			opts.OriginalExecution = workflow.Execution{ID: RolloutID(id), RunID: "replay"}
		}
	}
	return r.ReplayWorkflowHistoryWithOptions(nil, h, opts)
}

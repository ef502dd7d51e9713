package testsuite_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
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

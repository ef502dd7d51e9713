package testsuite_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/lock"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// lockHistory is a lock workflow's history across its continue-as-new runs,
// oldest first (the latest run's start names the run it continues, and so
// on back).
func lockHistory(t *testing.T, lockID string) []*historypb.HistoryEvent {
	t.Helper()
	var runs [][]*historypb.HistoryEvent
	for runID := ""; ; {
		evs := history(t, lockID, runID)
		runs = append([][]*historypb.HistoryEvent{evs}, runs...)
		if len(evs) == 0 {
			break
		}
		runID = evs[0].GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		if runID == "" {
			break
		}
	}
	var all []*historypb.HistoryEvent
	for _, r := range runs {
		all = append(all, r...)
	}
	return all
}

// The attack of issue 10: two targets with different target_ids name the
// same cert, chain and key files. Deploys to both, started at once, some of
// them failing at verify so they roll back, must never interleave: each
// deploy finds the files the one before it left, a rollback never restores
// its old files over another deploy's committed ones, and at the end the
// files and the served leaf are those of the last deploy that reported
// Deployed.
func TestIntegrationSharedFilesNeverInterleave(t *testing.T) {
	n, _ := startNginx(t)
	// A slow reload widens the window a second deploy could slip into.
	slow := filepath.Join(n.Dir, "slow-reload")
	body := "#!/bin/sh\nsleep 1\nexec " + strings.Join(n.ReloadCommand(), " ") + "\n"
	if err := os.WriteFile(slow, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	good := n.Target("shared-good", testHost)
	good.Config.ReloadCommand = target.Command{slow}
	// bad verifies against an endpoint that serves another leaf: every one
	// of its deploys commits, reloads, fails verify and rolls back.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wrong, err := testsuite.FakeServer(ctx, issue(t), "")
	if err != nil {
		t.Fatal(err)
	}
	bad := n.Target("shared-bad", testHost)
	bad.Config.ReloadCommand = target.Command{slow}
	bad.Config.PostDeployVerify.Endpoint = wrong
	bad.Config.PostDeployVerifyAttempts = 1

	const rounds = 4
	type job struct {
		tg   target.Target
		set  testsuite.Set
		want string
		run  deployRun
	}
	var jobs []*job
	for i := 0; i < rounds; i++ {
		jobs = append(jobs, &job{tg: good, set: issue(t), want: "Deployed"}, &job{tg: bad, set: issue(t), want: "VerifyFailed"})
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() { defer wg.Done(); j.run = deploy(t, j.tg, j.set, "--output", "json") }()
	}
	wg.Wait()

	type span struct {
		id           string
		granted, end time.Time
		res          struct{ outcome, leaf string }
		files        map[string][2]string // path -> found, planned
	}
	byID := map[string]*span{}
	var spans []*span
	for _, j := range jobs {
		res := j.run.result(t)
		if res.Outcome != j.want {
			t.Fatalf("%s: %s (%s), want %s", j.tg.TargetID, res.Outcome, res.Error, j.want)
		}
		s := &span{id: j.run.workflowID(), files: map[string][2]string{}}
		s.res.outcome, s.res.leaf = res.Outcome, res.LeafSHA256
		for _, f := range res.Files {
			s.files[f.Path] = [2]string{f.CurrentSHA256, f.SHA256}
		}
		for _, ev := range history(t, s.id, "") {
			if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == contract.LockGrantedSignal {
				s.granted = ev.GetEventTime().AsTime()
			}
			if a := ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes(); a != nil && a.GetSignalName() == contract.LockReleaseSignal {
				s.end = ev.GetEventTime().AsTime()
			}
		}
		if s.granted.IsZero() || s.end.IsZero() {
			t.Fatalf("%s was never granted the lock, or never released it", s.id)
		}
		if len(s.files) != 3 {
			t.Fatalf("%s planned %d files, want cert, chain and key", s.id, len(s.files))
		}
		byID[s.id] = s
		spans = append(spans, s)
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].granted.Before(spans[j].granted) })

	// Never interleaved, and each found what the one before it left: the
	// new files if it deployed, the files it found if it rolled back.
	var last *span
	for i, s := range spans {
		if i > 0 {
			prev := spans[i-1]
			if s.granted.Before(prev.end) {
				t.Fatalf("%s was granted at %v, before %s ended at %v: interleaved", s.id, s.granted, prev.id, prev.end)
			}
			for p, f := range s.files {
				left := prev.files[p][0]
				if prev.res.outcome == "Deployed" {
					left = prev.files[p][1]
				}
				if f[0] != left {
					t.Fatalf("%s found %s = %s, but %s (%s) left %s", s.id, p, f[0], prev.id, prev.res.outcome, left)
				}
			}
		}
		if s.res.outcome == "Deployed" {
			last = s
		}
	}
	for p, f := range last.files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f[1] {
			t.Fatalf("%s is not what %s, the last deploy that reported Deployed, wrote", p, last.id)
		}
	}
	wantServed(t, n, last.res.leaf)
	wantNoLeftovers(t, n.CertDir, -1)
	// The lock's own history: every request went to the host's lock with
	// the three files among its keys, and it granted them in the order seen.
	var grantOrder []string
	for _, ev := range lockHistory(t, lock.FileLockID(good)) {
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == contract.LockAcquireSignal {
			var r lock.Request
			if err := env.codec.DataConverter().FromPayloads(a.GetInput(), &r); err != nil {
				t.Fatal(err)
			}
			if byID[r.WorkflowID] == nil {
				continue
			}
			for _, p := range []string{n.CertPath, n.ChainPath, n.KeyPath} {
				if !strings.Contains(strings.Join(r.Keys, "\n")+"\n", "file:"+p+"\n") {
					t.Fatalf("%s asked for keys %v: %s missing", r.WorkflowID, r.Keys, p)
				}
			}
		}
		if a := ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes(); a != nil && a.GetSignalName() == contract.LockGrantedSignal {
			if id := a.GetWorkflowExecution().GetWorkflowId(); byID[id] != nil {
				grantOrder = append(grantOrder, id)
			}
		}
	}
	var spanOrder []string
	for _, s := range spans {
		spanOrder = append(spanOrder, s.id)
	}
	if strings.Join(grantOrder, ",") != strings.Join(spanOrder, ",") {
		t.Fatalf("the lock granted\n %v\nthe deploys saw their grants in the order\n %v", grantOrder, spanOrder)
	}

	record(t, last.id, "deploy-file-lock-deployed")
	for _, s := range spans {
		if s.res.outcome == "VerifyFailed" {
			record(t, s.id, "deploy-file-lock-verify-failed")
			break
		}
	}
}

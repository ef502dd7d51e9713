package testsuite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// rolloutFleet is n real nginx, target i on host hosts[i%len(hosts)],
// their target files in one directory, named in deploy order.
type rolloutFleet struct {
	dir     string
	nginx   []*testsuite.Nginx
	initial []testsuite.Set
	targets []target.Target
}

func newRolloutFleet(t *testing.T, prefix string, n int, hosts ...string) *rolloutFleet {
	t.Helper()
	f := &rolloutFleet{dir: t.TempDir()}
	for i := 0; i < n; i++ {
		ng, initial := startNginx(t)
		tg := ng.Target(fmt.Sprintf("%s-%02d", prefix, i+1), hosts[i%len(hosts)])
		f.nginx, f.initial, f.targets = append(f.nginx, ng), append(f.initial, initial), append(f.targets, tg)
	}
	f.write(t)
	return f
}

// write (re)writes the target files: "NN-<target>.yaml".
func (f *rolloutFleet) write(t *testing.T) {
	t.Helper()
	for i, tg := range f.targets {
		text, err := yamlOf(tg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.dir, fmt.Sprintf("%02d-%s.yaml", i+1, tg.TargetID)), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// rolloutIDOf is the rollout's workflow ID, from `certctl rollout`'s
// first line.
func rolloutIDOf(r cliRun) string {
	for _, l := range strings.Split(r.stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, "rollout: "); ok {
			return strings.Fields(rest)[0]
		}
	}
	return ""
}

// certctlCLI runs certctl with args, the test server's address and
// extraEnv.
func certctlCLI(t *testing.T, extraEnv []string, args ...string) cliRun {
	t.Helper()
	cmd := certctlExec(args...)
	cmd.Env = append(cmd.Env, extraEnv...)
	return runLogged(t, "certctl", cmd)
}

func rollout(t *testing.T, dir string, set testsuite.Set, extraEnv []string, args ...string) cliRun {
	t.Helper()
	mdir := t.TempDir()
	cert, chain, key, err := set.Write(mdir)
	if err != nil {
		t.Fatal(err)
	}
	return certctlCLI(t, extraEnv, append([]string{"rollout", "--targets", dir, "--cert", cert, "--chain", chain, "--key", key}, args...)...)
}

// A rollout to six real nginx on two hosts, each with its own worker: the
// canary, then batches of three; every nginx serves the new leaf, every
// deploy is a DeployWorkflow of its own, found by its target.
func TestIntegrationRolloutLandsEverywhere(t *testing.T) {
	hostWorker(t, "ro-a")
	hostWorker(t, "ro-b")
	waitPolled(t, "ro-a")
	waitPolled(t, "ro-b")
	f := newRolloutFleet(t, "ro", 6, "ro-a", "ro-b")
	set := issue(t)
	r := rollout(t, f.dir, set, nil, "--batch", "3", "--id", uniqueID("lands"))
	if r.code != 0 || r.lastLine() != "outcome: "+contract.RolloutCompleted {
		t.Fatalf("exit %d, last line %q\n%s%s", r.code, r.lastLine(), r.stdout, r.stderr)
	}
	record(t, rolloutIDOf(r), "rollout-completed")
	if !strings.Contains(r.stdout, "succeeded: 6 of 6") {
		t.Fatalf("no count in\n%s", r.stdout)
	}
	for i, n := range f.nginx {
		wantServed(t, n, set.LeafSHA256)
		id := workflows.RolloutDeployID(strings.TrimPrefix(rolloutIDOf(r), contract.RolloutIDPrefix), f.targets[i].TargetID)
		if !strings.Contains(r.stdout, f.targets[i].TargetID) || !strings.Contains(r.stdout, id) {
			t.Errorf("%s not followed in the output", id)
		}
		resp, err := env.client.ListWorkflow(context.Background(), listByTarget(f.targets[i].TargetID))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range resp.GetExecutions() {
			found = found || e.GetExecution().GetWorkflowId() == id
		}
		if !found {
			t.Errorf("%s not found by CertctlTarget=%s", id, f.targets[i].TargetID)
		}
	}
	// The canary went first, alone: every other deploy started after it
	// ended.
	canary := resultOfID(t, workflows.RolloutDeployID(strings.TrimPrefix(rolloutIDOf(r), contract.RolloutIDPrefix), f.targets[0].TargetID))
	for _, tg := range f.targets[1:] {
		other := resultOfID(t, workflows.RolloutDeployID(strings.TrimPrefix(rolloutIDOf(r), contract.RolloutIDPrefix), tg.TargetID))
		if other.start.Before(canary.end) {
			t.Errorf("%s started %s, before the canary ended %s", tg.TargetID, other.start, canary.end)
		}
	}
	st := certctlCLI(t, nil, "rollout", "status", rolloutIDOf(r), "--output", "json")
	var p workflows.RolloutProgress
	if err := json.Unmarshal([]byte(st.stdout), &p); err != nil || st.code != 0 {
		t.Fatalf("status: exit %d, %v\n%s", st.code, err, st.stdout)
	}
	if p.State != contract.RolloutFinished || p.Succeeded != 6 || p.Total != 6 || p.Outcomes[contract.Deployed] != 6 {
		t.Fatalf("status %+v", p)
	}
}

type span struct{ start, end time.Time }

// resultOfID is when a closed workflow started and ended.
func resultOfID(t *testing.T, id string) span {
	t.Helper()
	d, err := env.client.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	info := d.GetWorkflowExecutionInfo()
	return span{info.GetStartTime().AsTime(), info.GetCloseTime().AsTime()}
}

// A canary that fails halts the rollout with nothing else touched: the
// other targets' files are byte for byte as they were, they serve the old
// leaf, and no deploy of them was ever started.
func TestIntegrationRolloutHaltsOnBadCanary(t *testing.T) {
	hostWorker(t, "ro-c")
	waitPolled(t, "ro-c")
	f := newRolloutFleet(t, "halt", 4, "ro-c")
	// The canary's server check fails on the staged files.
	f.targets[0].Config.ValidateCommand = target.Command{"sh", "-c", "echo the canary refuses >&2; exit 1"}
	f.write(t)
	var before []map[string]string
	for _, n := range f.nginx {
		before = append(before, snapshot(t, n.CertPath, n.ChainPath, n.KeyPath))
	}
	id := uniqueID("halt")
	r := rollout(t, f.dir, issue(t), nil, "--batch", "4", "--max-failures", "3", "--id", id)
	if r.code != 1 || r.lastLine() != "outcome: "+contract.RolloutHalted {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	record(t, workflows.RolloutID(id), "rollout-halted")
	for _, want := range []string{"failed:    halt-01 ValidateFailed", "not started: 3 (untouched)", "the canary failed: halt-01 ValidateFailed; 3 targets not started"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for i, n := range f.nginx {
		wantUnchanged(t, before[i])
		wantServed(t, n, f.initial[i].LeafSHA256)
		if i == 0 {
			continue
		}
		if _, err := env.client.DescribeWorkflowExecution(context.Background(), workflows.RolloutDeployID(id, f.targets[i].TargetID), ""); err == nil {
			t.Errorf("%s: a deploy was started after the canary failed", f.targets[i].TargetID)
		}
	}
}

// A target whose host has no worker counts as HostUnavailable once the
// host wait is over, without holding up the others, and within
// --max-failures the rollout completes.
func TestIntegrationRolloutHostWithoutWorker(t *testing.T) {
	hostWorker(t, "ro-d")
	waitPolled(t, "ro-d")
	f := newRolloutFleet(t, "nohost", 3, "ro-d")
	f.targets[1].Host = "ro-nobody"
	f.write(t)
	before := snapshot(t, f.nginx[1].CertPath, f.nginx[1].ChainPath, f.nginx[1].KeyPath)
	set := issue(t)
	start := time.Now()
	r := rollout(t, f.dir, set, []string{"CERTCTL_HOST_WAIT=3s"}, "--canary", "0", "--batch", "3", "--max-failures", "1", "--id", uniqueID("nohost"))
	if r.code != 0 || r.lastLine() != "outcome: "+contract.RolloutCompleted {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	record(t, rolloutIDOf(r), "rollout-host-unavailable")
	want := "HostUnavailable: no worker polled certctl-host-ro-nobody for 3s; start one on ro-nobody with: certctl-worker --host ro-nobody; nothing was touched"
	if !strings.Contains(r.stdout, "failed:    nohost-02 HostUnavailable") || !strings.Contains(r.stdout, want) {
		t.Fatalf("output lacks the HostUnavailable target and %q", want)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("the rollout took %s with a host wait of 3s", took)
	}
	wantServed(t, f.nginx[0], set.LeafSHA256)
	wantServed(t, f.nginx[2], set.LeafSHA256)
	wantUnchanged(t, before)
}

// Paused, a rollout starts nothing new; resumed, it goes on; status says
// which.
func TestIntegrationRolloutPauseResume(t *testing.T) {
	hostWorker(t, "ro-e")
	waitPolled(t, "ro-e")
	f := newRolloutFleet(t, "pause", 3, "ro-e")
	// Each deploy's check takes two seconds: the pause lands while the
	// first ones run.
	for i := range f.targets {
		f.targets[i].Config.ValidateCommand = append(target.Command{"sh", "-c", `sleep 2; exec "$@"`, "sh"}, f.nginx[i].ValidateCommand()...)
	}
	f.write(t)
	id := uniqueID("pause")
	set := issue(t)
	r := rollout(t, f.dir, set, nil, "--batch", "1", "--id", id, "--detach")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	p := certctlCLI(t, nil, "rollout", "pause", id)
	if p.code != 0 || !strings.Contains(p.stdout, "sent pause") {
		t.Fatalf("pause: exit %d\n%s", p.code, p.stdout)
	}
	var pr workflows.RolloutProgress
	testsuite.WaitFor(t, 60*time.Second, func() (bool, string) {
		st := certctlCLI(t, nil, "rollout", "status", id, "--output", "json")
		pr = workflows.RolloutProgress{}
		_ = json.Unmarshal([]byte(st.stdout), &pr)
		return pr.State == contract.RolloutPaused && len(pr.InFlight) == 0, fmt.Sprintf("status %+v", pr)
	})
	done := pr.Done
	time.Sleep(2 * time.Second)
	st := certctlCLI(t, nil, "rollout", "status", id)
	if !strings.Contains(st.stdout, "[paused,") || !strings.Contains(st.stdout, fmt.Sprintf("%d/3 done", done)) {
		t.Fatalf("a paused rollout went on:\n%s", st.stdout)
	}
	if done == 3 {
		t.Fatal("the rollout ended before the pause arrived")
	}
	if res := certctlCLI(t, nil, "rollout", "resume", id); res.code != 0 {
		t.Fatalf("resume: exit %d", res.code)
	}
	// Followed again from another certctl: it prints what it has not
	// seen and ends with the outcome.
	fl := certctlCLI(t, nil, "rollout", "status", id, "--follow")
	if fl.code != 0 || fl.lastLine() != "outcome: "+contract.RolloutCompleted || !strings.Contains(fl.stdout, "succeeded: 3 of 3") {
		t.Fatalf("status --follow: exit %d, last line %q", fl.code, fl.lastLine())
	}
	for _, n := range f.nginx {
		wantServed(t, n, set.LeafSHA256)
	}
}

func queryRollout(id string) (workflows.RolloutProgress, error) {
	var p workflows.RolloutProgress
	v, err := env.client.QueryWorkflow(context.Background(), workflows.RolloutID(id), "", contract.QueryProgress)
	if err != nil {
		return p, err
	}
	return p, v.Get(&p)
}

// A rollout continues as new after continue_after deploys, once those in
// flight have ended: the next run carries the counts on, and every target
// is deployed once.
func TestIntegrationRolloutContinuesAsNew(t *testing.T) {
	hostWorker(t, "ro-f")
	waitPolled(t, "ro-f")
	f := newRolloutFleet(t, "can", 3, "ro-f")
	set := issue(t)
	id := workflows.RolloutID(uniqueID("can"))
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue},
		contract.RolloutWorkflow, workflows.RolloutRequest{Targets: f.targets, Material: set.Material, Batch: 2, ContinueAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	firstRun := run.GetRunID() // Get follows the next runs, and GetRunID with it
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var res workflows.RolloutResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if res.Outcome != contract.RolloutCompleted || res.Succeeded != 3 || res.Total != 3 {
		t.Fatalf("result %+v", res)
	}
	first := history(t, id, firstRun)
	last := first[len(first)-1]
	if last.GetWorkflowExecutionContinuedAsNewEventAttributes() == nil {
		t.Fatalf("the first run ended %v, not continued as new", last.GetEventType())
	}
	recordRun(t, id, firstRun, "rollout-continued-first")
	recordRun(t, id, "", "rollout-continued-last")
	for _, n := range f.nginx {
		wantServed(t, n, set.LeafSHA256)
	}
}

// A rollout of 10,000 targets fits the server's 2 MiB payload limit (the
// codec compresses a payload that large before encrypting it) and starts:
// its progress counts them all. It is terminated at once; its canary's host
// has no worker, so nothing is touched.
func TestIntegrationRolloutOfTenThousandTargetsStarts(t *testing.T) {
	var ts []target.Target
	dir := t.TempDir()
	for i := 0; i < 10000; i++ {
		ts = append(ts, target.Target{TargetID: fmt.Sprintf("fleet-%05d", i), TargetType: "files", Host: "ro-none",
			Config: target.Config{CertPath: filepath.Join(dir, fmt.Sprintf("%05d.crt", i)), KeyPath: filepath.Join(dir, fmt.Sprintf("%05d.key", i))}})
	}
	id := workflows.RolloutID(uniqueID("tenk"))
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: contract.TaskQueue},
		contract.RolloutWorkflow, workflows.RolloutRequest{Targets: ts, Material: issue(t).Material})
	if err != nil {
		t.Fatalf("a rollout of 10,000 targets was refused: %v", err)
	}
	defer func() { _ = env.client.TerminateWorkflow(context.Background(), id, run.GetRunID(), "test over") }()
	var p workflows.RolloutProgress
	testsuite.WaitFor(t, 60*time.Second, func() (bool, string) {
		var err error
		p, err = queryRollout(strings.TrimPrefix(id, contract.RolloutIDPrefix))
		return err == nil && p.Total == 10000, fmt.Sprintf("progress %+v, %v", p.Total, err)
	})
	if p.Pending != 9999 || len(p.InFlight) != 1 || p.Phase != "canary" {
		t.Fatalf("progress: pending %d, in flight %v, phase %s", p.Pending, p.InFlight, p.Phase)
	}
}

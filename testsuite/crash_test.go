package testsuite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// crashDeploy starts a deploy with short timeouts, so a step whose worker
// died is retried within seconds.
func crashDeploy(t *testing.T, tg target.Target, set testsuite.Set, heartbeat time.Duration) client.WorkflowRun {
	t.Helper()
	tg.Config.PostDeployVerify.Timeout = target.Duration(2 * time.Second)
	req := workflows.DeployRequest{Target: tg, Material: set.Material,
		HeartbeatTimeout: target.Duration(heartbeat), HostWait: target.Duration(2 * time.Minute)}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("deploy/%s/%d", tg.TargetID, time.Now().UnixNano()), TaskQueue: contract.TaskQueue,
	}, "DeployWorkflow", req)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func resultOf(t *testing.T, run client.WorkflowRun) workflows.DeployResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var res workflows.DeployResult
	err := run.Get(ctx, &res)
	var ae *temporal.ApplicationError
	if err != nil && (!errors.As(err, &ae) || ae.Details(&res) != nil) {
		t.Fatalf("deploy %s: %v", run.GetID(), err)
	}
	return res
}

func hostWorker(t *testing.T, host string, extraEnv ...string) *testsuite.Process {
	t.Helper()
	env := append([]string{"TEMPORAL_ADDRESS=" + envAddress()}, extraEnv...)
	p, err := testsuite.StartProcess("worker-"+host, filepath.Join(t.TempDir(), "worker.log"), env, envWorker(), "--host", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func envAddress() string { return env.address }
func envWorker() string  { return env.worker }

// intact says whether the target's files are whole and belong together: the
// cert, chain and key parse and the key matches the leaf.
func intact(n *testsuite.Nginx) error {
	var all []byte
	for _, p := range []string{n.CertPath, n.ChainPath, n.KeyPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		all = append(append(all, b...), '\n')
	}
	b, err := material.ParseConcatenated("files", all)
	if err != nil {
		return err
	}
	return b.Check(time.Now(), "")
}

// TestIntegrationCrashMatrix kills the host worker (SIGKILL, from a
// failpoint) at every step boundary of a deploy, starts a fresh worker, and
// checks the deploy ends as it would have without the crash: nginx serves the
// old or the new leaf and never a cert with the other's key, every file is
// whole, no temp file is left, backups are as promised.
func TestIntegrationCrashMatrix(t *testing.T) {
	// The steps that run as local activities of the host run (all but
	// commit and rollback) have no heartbeat: a worker's death is noticed
	// when its workflow task times out (10 s, the production default), so
	// their rows run with production settings. Commit and rollback are
	// activities: their rows run with a 2 s heartbeat, and once more with
	// the production 30 s (production: true).
	cases := []struct {
		point      string
		want       string
		failReload bool // the deploy's own reload fails: the crash is in its rollback
		production bool // the default heartbeat timeout (30 s)
	}{
		{"plan:done", "Deployed", false, false},
		{"backup:after-file-1", "Deployed", false, false},
		{"backup:done", "Deployed", false, false},
		{"stage:after-file-1", "Deployed", false, false},
		{"stage:after-file-2", "Deployed", false, false},
		{"stage:done", "Deployed", false, false},
		{"validate:done", "Deployed", false, false},
		{"commit:after-rename-1", "Deployed", false, false},
		{"commit:after-rename-2", "Deployed", false, false},
		{"commit:done", "Deployed", false, false},
		{"reload:done", "Deployed", false, false},
		{"verify:probe", "Deployed", false, false},
		{"rollback:after-file-1", "ReloadFailed", true, false},
		{"commit:after-rename-1", "Deployed", false, true},
		{"rollback:after-file-1", "ReloadFailed", true, true},
	}
	var table []string
	for i, c := range cases {
		name := strings.ReplaceAll(c.point, ":", "_")
		heartbeat := 2 * time.Second
		if c.production {
			name, heartbeat = name+"_production", 0
		}
		t.Run(name, func(t *testing.T) {
			n, initial := startNginx(t)
			host := fmt.Sprintf("crash-%d", i)
			tg := n.Target("crash-"+strings.ReplaceAll(c.point, ":", "-"), host)
			if c.failReload {
				tg.Config.ReloadCommand = reloadFailsOnce(t, n)
			}
			fresh := issue(t)
			doomed := hostWorker(t, host, failpoint.Env+"="+c.point+"=kill")
			run := crashDeploy(t, tg, fresh, heartbeat)
			select {
			case <-doomed.Exited():
			case <-time.After(30 * time.Second):
				t.Fatalf("the worker was not killed at %s", c.point)
			}
			// While no worker runs: the old or the new leaf, nothing else.
			served, err := n.Served(context.Background())
			if err != nil || (served != initial.LeafSHA256 && served != fresh.LeafSHA256) {
				t.Fatalf("after the crash nginx serves %q (err %v)", served, err)
			}
			hostWorker(t, host)
			res := resultOf(t, run)
			want := fresh.LeafSHA256
			if c.failReload {
				want = initial.LeafSHA256
			}
			if res.Outcome != c.want {
				t.Fatalf("outcome %s (%s), want %s", res.Outcome, res.Error, c.want)
			}
			wantServed(t, n, want)
			whole := "yes"
			if err := intact(n); err != nil {
				whole = "no"
				t.Errorf("files not intact: %v", err)
			}
			wantNoLeftovers(t, n.CertDir, 3)
			servedName := "new"
			if want == initial.LeafSHA256 {
				servedName = "old"
			}
			table = append(table, fmt.Sprintf("| %s | %s | %s | %s leaf | %s |", c.point, heartbeatOf(heartbeat), res.Outcome, servedName, whole))
		})
	}
	t.Logf("crash point | heartbeat | outcome | nginx serves | files intact\n%s", strings.Join(table, "\n"))
}

// The workflow worker dies while a step runs on the host: a fresh one
// replays the history and finishes the deploy.
func TestIntegrationWorkflowWorkerCrash(t *testing.T) {
	n, _ := startNginx(t)
	host := "crash-wf"
	pause := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(pause, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	hostWorker(t, host, failpoint.Env+"=commit:done=pause", failpoint.PauseEnv+"="+pause)
	fresh := issue(t)
	run := crashDeploy(t, n.Target("crash-workflow-worker", host), fresh, 30*time.Second)
	// Commit renames, then waits at the failpoint.
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(n.CertPath)
		return string(b) == fresh.CertPEM+fresh.ChainPEM, "commit never wrote the new certificate"
	})
	env.workflowWorker.Kill()
	port, _ := testsuite.FreePort()
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := testsuite.StartProcess("worker-restarted", filepath.Join(t.TempDir(), "worker.log"),
		[]string{"TEMPORAL_ADDRESS=" + env.address}, env.worker, "--metrics-addr", metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	env.workflowWorker = p
	_ = os.Remove(pause)
	res := resultOf(t, run)
	if res.Outcome != "Deployed" {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Error)
	}
	// The restarted worker replayed the deploy's history and finished it: it
	// counts the deploy once, not once per replayed step.
	if want := `certctl_deploy_total{outcome="Deployed",target_type="nginx"} 1`; !strings.Contains(scrapeText(t, metricsAddr), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
	wantServed(t, n, fresh.LeafSHA256)
	if err := intact(n); err != nil {
		t.Fatal(err)
	}
}

// A host worker starting after a crash removes the temp files a dead worker
// left, and only those older than any running deploy.
func TestIntegrationWorkerSweepsLeftovers(t *testing.T) {
	n, _ := startNginx(t)
	state := t.TempDir()
	w := hostWorker(t, "sweep", "CERTCTL_STATE_DIR="+state)
	run := crashDeploy(t, n.Target("sweep", "sweep"), issue(t), 30*time.Second)
	if res := resultOf(t, run); res.Outcome != "Deployed" {
		t.Fatalf("outcome %s", res.Outcome)
	}
	w.Stop()
	stale := n.CertPath + ".certctl-tmp." + fmt.Sprint(time.Now().Add(-time.Hour).UnixNano())
	future := n.KeyPath + ".certctl-tmp." + fmt.Sprint(time.Now().Add(time.Hour).UnixNano())
	for _, p := range []string{stale, future} {
		if err := os.WriteFile(p, []byte("leftover"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w2 := hostWorker(t, "sweep", "CERTCTL_STATE_DIR="+state)
	var log []byte
	testsuite.WaitFor(t, 20*time.Second, func() (bool, string) {
		log, _ = os.ReadFile(w2.Log)
		return strings.Contains(string(log), "leftover sweep done"), "the restarted worker never logged its sweep:\n" + string(log)
	})
	if !strings.Contains(string(log), "removed a leftover temp file") || !strings.Contains(string(log), stale) {
		t.Fatalf("the worker did not report removing %s:\n%s", stale, log)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("the stale temp file is still there")
	}
	if _, err := os.Stat(future); err != nil {
		t.Fatal("a temp file newer than every running deploy was removed")
	}
	_ = os.Remove(future)
}

func heartbeatOf(d time.Duration) string {
	if d == 0 {
		return "30s (production)"
	}
	return d.String()
}

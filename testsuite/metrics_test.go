package testsuite_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/certctl/certctl/testsuite"
)

// metricsWorker starts a host worker for host serving /metrics on a free
// loopback port, waits until it polls, and returns the port's URL.
func metricsWorker(t *testing.T, host string, extraEnv ...string) (*testsuite.Process, string) {
	t.Helper()
	port, err := testsuite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := testsuite.StartProcess("worker-"+host, filepath.Join(t.TempDir(), "worker.log"),
		append([]string{"TEMPORAL_ADDRESS=" + env.address}, extraEnv...), env.worker, "--host", host, "--metrics-addr", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	waitPolled(t, host)
	return p, "http://" + addr + "/metrics"
}

// scrapeText is the /metrics page of the worker serving addr, as text.
func scrapeText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// scrape reads /metrics as Prometheus does and parses the exposition format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s is not the Prometheus text format: %v", url, err)
	}
	return fams
}

// series flattens the certctl_* families to one value per series, named
// as in PromQL (labels sorted): a counter's value, a histogram's count
// (as name_count).
func series(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "certctl_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[strings.Replace(key, "{", "_count{", 1)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

const verifyAttempts = "certctl_deploy_verify_attempts_total{}"

// wantMoved checks that between two scrapes each series in want moved by
// exactly its value, every other certctl series stayed put, and the verify
// probes moved by at least minProbes.
func wantMoved(t *testing.T, what string, before, after map[string]float64, want map[string]float64, minProbes float64) {
	t.Helper()
	for k, v := range after {
		d := v - before[k]
		switch {
		case k == verifyAttempts:
			t.Logf("%s: %v TLS probes", what, d)
			if d < minProbes {
				t.Errorf("%s: %s moved by %v, want at least %v", what, k, d, minProbes)
			}
		case d != want[k]:
			t.Errorf("%s: %s moved by %v, want %v", what, k, d, want[k])
		}
	}
	for k := range want {
		if _, ok := after[k]; !ok {
			t.Errorf("%s: no series %s on /metrics", what, k)
		}
	}
}

// TestIntegrationMetricsMoveOncePerEvent scrapes a real host worker's
// --metrics-addr around each kind of deploy end on a real nginx: every
// certctl counter moves by exactly one for its event (the duration
// histogram's count too), nothing else moves, and the Temporal SDK's own
// series are in the same scrape.
func TestIntegrationMetricsMoveOncePerEvent(t *testing.T) {
	host := "metrics"
	_, url := metricsWorker(t, host)
	n, _ := startNginx(t)
	tg := n.Target("metrics", host)
	fresh := issue(t)

	step := func(what string, run func() deployRun, outcome string, want map[string]float64, minProbes float64) {
		t.Helper()
		before := series(scrape(t, url))
		r := run()
		if r.lastLine() != "outcome: "+outcome {
			t.Fatalf("%s: exit %d, last line %q, want outcome %s", what, r.code, r.lastLine(), outcome)
		}
		if strings.HasSuffix(r.workflowID(), "/host") {
			t.Fatalf("%s: the deploy was delegated, not a host run on %s's worker", what, host)
		}
		wantMoved(t, what, before, series(scrape(t, url)), want, minProbes)
	}
	deployed := `certctl_deploy_total{outcome="Deployed",target_type="nginx"}`
	duration := `certctl_deploy_duration_seconds_count{target_type="nginx"}`
	step("a deploy", func() deployRun { return deploy(t, tg, fresh) }, "Deployed", map[string]float64{
		deployed: 1, duration: 1,
	}, 1)
	step("the same deploy again", func() deployRun { return deploy(t, tg, fresh) }, "SkippedIdempotent", map[string]float64{
		`certctl_deploy_total{outcome="SkippedIdempotent",target_type="nginx"}`: 1,
		`certctl_deploy_idempotent_skip_total{target_type="nginx"}`:             1,
		duration: 1,
	}, 0)
	failsOnce := tg
	failsOnce.Config.ReloadCommand = reloadFailsOnce(t, n)
	step("a reload that fails", func() deployRun { return deploy(t, failsOnce, issue(t)) }, "ReloadFailed", map[string]float64{
		`certctl_deploy_total{outcome="ReloadFailed",target_type="nginx"}`: 1,
		`certctl_deploy_rollback_total{outcome="restored"}`:                1,
		duration: 1,
	}, 1) // the rollback's verify
	wantServed(t, n, fresh.LeafSHA256)
	alwaysFails := tg
	alwaysFails.Config.ReloadCommand = script(t, "echo 'reload refused (test)' >&2\nexit 1\n")
	step("a rollback that fails", func() deployRun { return deploy(t, alwaysFails, issue(t)) }, "RollbackFailed", map[string]float64{
		`certctl_deploy_total{outcome="RollbackFailed",target_type="nginx"}`: 1,
		`certctl_deploy_rollback_total{outcome="also_failed"}`:               1,
		duration: 1,
	}, 0)

	// The SDK's series, reported into the same registry every second.
	sdk := []string{
		"temporal_request_total", "temporal_long_request_total", "temporal_worker_start_total",
		"temporal_poller_start_total", "temporal_num_pollers", "temporal_sticky_cache_size",
		"temporal_workflow_task_execution_latency_seconds", "temporal_workflow_failed_total",
		"temporal_local_activity_total", "temporal_activity_execution_latency_seconds",
	}
	testsuite.WaitFor(t, 10*time.Second, func() (bool, string) {
		fams := scrape(t, url)
		var missing []string
		for _, name := range sdk {
			if _, ok := fams[name]; !ok {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0, fmt.Sprintf("no %v on /metrics", missing)
	})
	fams := scrape(t, url)
	var names []string
	for name, f := range fams {
		if strings.HasPrefix(name, "temporal_") {
			names = append(names, fmt.Sprintf("%s (%s)", name, strings.ToLower(f.GetType().String())))
		}
	}
	slices.Sort(names)
	count := map[string]int{}
	for name, f := range fams {
		prefix, _, _ := strings.Cut(name, "_")
		count[prefix] += len(f.GetMetric())
	}
	t.Logf("series on /metrics by prefix: %v", count)
	t.Logf("the Temporal SDK's series on /metrics:\n%s", strings.Join(names, "\n"))
	if h := fams["temporal_workflow_task_execution_latency_seconds"]; h.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("temporal_workflow_task_execution_latency_seconds is a %v, want a histogram", h.GetType())
	}
	if count["tally"] > 0 {
		t.Errorf("tally's internal series are on /metrics")
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Errorf("the Go runtime's metrics are gone from /metrics")
	}
}

// A workflow task that fails after the deploy's end was counted (the
// workflow stalls past the SDK's deadlock detector at a failpoint) is
// retried by the server, on the same host worker: the retry ends the deploy
// again, live, and counts nothing.
func TestIntegrationMetricsRetriedWorkflowTaskCountsOnce(t *testing.T) {
	host := "metrics-retry"
	pause := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(pause, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, url := metricsWorker(t, host, "CERTCTL_FAILPOINTS=deploy:counted=pause", "CERTCTL_FAILPOINT_PAUSE="+pause)
	n, _ := startNginx(t)
	tg := n.Target("metrics-retry", host)
	fresh := issue(t)
	deployed := `certctl_deploy_total{outcome="Deployed",target_type="nginx"}`
	before := series(scrape(t, url))
	done := make(chan deployRun, 1)
	go func() { done <- deploy(t, tg, fresh) }()
	// The first attempt counted, then stalls; past a second the SDK fails
	// the workflow task and the server schedules another.
	testsuite.WaitFor(t, time.Minute, func() (bool, string) {
		return series(scrape(t, url))[deployed]-before[deployed] == 1, "the deploy was never counted"
	})
	time.Sleep(3 * time.Second)
	if err := os.Remove(pause); err != nil {
		t.Fatal(err)
	}
	var r deployRun
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the deploy did not end")
	}
	if r.lastLine() != "outcome: Deployed" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	failed := wftFailures(t, r.workflowID())
	if failed == 0 {
		t.Fatalf("no workflow task failed in %s: the test proved nothing", r.workflowID())
	}
	wantMoved(t, "a deploy whose last workflow task was retried", before, series(scrape(t, url)), map[string]float64{
		deployed: 1, `certctl_deploy_duration_seconds_count{target_type="nginx"}`: 1,
	}, 1)
	t.Logf("%d workflow task(s) failed after the count and were retried", failed)
	// A failed workflow task is what docs/alerts.yml's SDK rule counts:
	// every Temporal SDK series the rules name is on this scrape.
	testsuite.WaitFor(t, 10*time.Second, func() (bool, string) {
		missing := missingAlertSeries(t, scrape(t, url))
		return len(missing) == 0, fmt.Sprintf("docs/alerts.yml names %v, not on /metrics", missing)
	})
}

// missingAlertSeries are the temporal_* series docs/alerts.yml names that
// are not in fams (a histogram's _bucket, _count and _sum are its family's).
func missingAlertSeries(t *testing.T, fams map[string]*dto.MetricFamily) []string {
	t.Helper()
	path, err := testsuite.RepoFile("docs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := testsuite.LoadAlertRules(path)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, n := range testsuite.MetricNames(r.Expr, "temporal_") {
				if _, ok := fams[n]; ok {
					continue
				}
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
				if f, ok := fams[base]; !ok || f.GetType() != dto.MetricType_HISTOGRAM {
					missing = append(missing, n)
				}
			}
		}
	}
	return missing
}

// wftFailures counts the workflow tasks of a deploy that failed or timed out.
func wftFailures(t *testing.T, workflowID string) int {
	t.Helper()
	_, types := historyJSON(t, workflowID)
	return types[enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED] + types[enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]
}

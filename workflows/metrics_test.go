package workflows

import (
	"fmt"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/metrics"
	certsuite "github.com/certctl/certctl/testsuite"
)

// sums gathers metrics.Registry: each certctl series (name and labels) to
// its value, a histogram's to its count.
func sums(t *testing.T) map[string]float64 {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName() + labelsOf(m)
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func labelsOf(m *dto.Metric) string {
	s := ""
	for _, l := range m.GetLabel() {
		s += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
	}
	return s
}

// moved is after minus before, for the series that changed.
func moved(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 && (len(k) < 7 || k[:7] == "certctl") {
			out[k] = d
		}
	}
	return out
}

// The end of a deploy reached twice in one run, as a retried workflow task
// reaches it again on the same worker, counts once.
func TestRecordDeployCountsARunOnce(t *testing.T) {
	for _, c := range []struct {
		res  DeployResult
		want map[string]float64
	}{
		{DeployResult{Outcome: contract.Deployed, Steps: []Step{{Name: "plan", Ms: 1500}, {Name: "verify", Ms: 500}}}, map[string]float64{
			`certctl_deploy_total{outcome="Deployed"}{target_type="nginx"}`: 1,
			`certctl_deploy_duration_seconds{target_type="nginx"}`:          1,
		}},
		{DeployResult{Outcome: contract.ReloadFailed, Steps: []Step{{Name: "reload", Failed: true}, {Name: "rollback"}}}, map[string]float64{
			`certctl_deploy_total{outcome="ReloadFailed"}{target_type="nginx"}`: 1,
			`certctl_deploy_duration_seconds{target_type="nginx"}`:              1,
			`certctl_deploy_rollback_total{outcome="restored"}`:                 1,
		}},
		{DeployResult{Outcome: contract.RollbackFailed, Steps: []Step{{Name: "reload", Failed: true}, {Name: "rollback"}, {Name: "rollback-reload", Failed: true}}}, map[string]float64{
			`certctl_deploy_total{outcome="RollbackFailed"}{target_type="nginx"}`: 1,
			`certctl_deploy_duration_seconds{target_type="nginx"}`:                1,
			`certctl_deploy_rollback_total{outcome="also_failed"}`:                1,
		}},
		{DeployResult{Outcome: contract.SkippedIdempotent, Steps: []Step{{Name: "plan"}}}, map[string]float64{
			`certctl_deploy_total{outcome="SkippedIdempotent"}{target_type="nginx"}`: 1,
			`certctl_deploy_duration_seconds{target_type="nginx"}`:                   1,
			`certctl_deploy_idempotent_skip_total{target_type="nginx"}`:              1,
		}},
	} {
		t.Run(c.res.Outcome, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
				recordDeploy(ctx, "nginx", c.res)
				recordDeploy(ctx, "nginx", c.res) // the retried task's end
				return nil
			}, workflow.RegisterOptions{Name: "endsTwice"})
			// The test environment gives every run the same ID.
			counted = &runSet{seen: map[string]bool{}, ring: make([]string, 4)}
			before := sums(t)
			env.ExecuteWorkflow("endsTwice")
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			got := moved(before, sums(t))
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("moved %v, want %v", got, c.want)
			}
		})
	}
}

// Replaying every recorded history (as a restarted worker, or a query on a
// closed deploy, does) counts nothing.
func TestReplayCountsNothing(t *testing.T) {
	files, err := filepath.Glob("../testsuite/histories/deploy-*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy histories (%v)", err)
	}
	c, err := certsuite.UseTestCodec()
	if err != nil {
		t.Fatal(err)
	}
	before := sums(t)
	for _, f := range files {
		r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
			DataConverter: c.DataConverter(), FailureConverter: failureConverter(c),
		})
		if err != nil {
			t.Fatal(err)
		}
		Register(r)
		if err := replayFile(t, r, f); err != nil {
			t.Fatalf("replay %s: %v", f, err)
		}
	}
	if got := moved(before, sums(t)); len(got) > 0 {
		t.Fatalf("replaying %d histories moved %v", len(files), got)
	}
}

func TestRunSetForgetsTheOldest(t *testing.T) {
	s := &runSet{seen: map[string]bool{}, ring: make([]string, 2)}
	for i, c := range []struct {
		id   string
		want bool
	}{{"a", true}, {"a", false}, {"b", true}, {"c", true}, {"b", false}, {"a", true}} {
		if got := s.add(c.id); got != c.want {
			t.Fatalf("step %d: add(%q) = %v, want %v", i, c.id, got, c.want)
		}
	}
}

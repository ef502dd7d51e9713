package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/testsuite"
)

// certctlNames are the series names certctl's metrics expose (a
// histogram's _bucket, _count and _sum).
func certctlNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, c := range []struct {
		c         prometheus.Collector
		histogram bool
	}{
		{metrics.DeployTotal, false}, {metrics.DeployDuration, true}, {metrics.IdempotentSkipTotal, false},
		{metrics.RollbackTotal, false}, {metrics.VerifyAttemptsTotal, false},
		{metrics.ApprovalDecisionsTotal, false}, {metrics.ApprovalPendingAge, true},
	} {
		ch := make(chan *prometheus.Desc, 1)
		c.c.Describe(ch)
		// A Desc says its name only in its String: Desc{fqName: "…", …}.
		_, rest, _ := strings.Cut((<-ch).String(), `fqName: "`)
		name, _, _ := strings.Cut(rest, `"`)
		if !strings.HasPrefix(name, "certctl_") {
			t.Fatalf("a certctl metric named %q", name)
		}
		names[name] = true
		if c.histogram {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				names[name+s] = true
			}
		}
	}
	return names
}

// docs/alerts.yml is a rule file promtool would accept, and its
// expressions name only certctl metrics that exist. (The Temporal SDK's
// names are checked against a real worker's scrape, in
// testsuite/metrics_test.go.)
func TestAlertRules(t *testing.T) {
	path, err := testsuite.RepoFile("docs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := testsuite.LoadAlertRules(path)
	if err != nil {
		t.Fatal(err)
	}
	known := certctlNames(t)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("a group without a name or rules: %+v", g)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || alerts[r.Alert]:
				t.Errorf("group %s: a rule without an alert name, or a second %q", g.Name, r.Alert)
			case strings.TrimSpace(r.Expr) == "":
				t.Errorf("%s: no expr", r.Alert)
			case r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "":
				t.Errorf("%s: wants labels.severity, annotations.summary and annotations.description", r.Alert)
			}
			alerts[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced brackets in %q", r.Alert, r.Expr)
			}
			names := testsuite.MetricNames(r.Expr, "certctl_", "temporal_")
			if len(names) == 0 {
				t.Errorf("%s: names no certctl or Temporal SDK metric", r.Alert)
			}
			for _, n := range names {
				if strings.HasPrefix(n, "certctl_") && !known[n] {
					t.Errorf("%s: no metric %s", r.Alert, n)
				}
			}
		}
	}
	for _, want := range []string{"CertctlRollbackFailed", "CertctlVerifyRetrying"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

func TestMetricNamesSkipsLabelValues(t *testing.T) {
	got := testsuite.MetricNames(`sum by (le) (rate(certctl_a_bucket{outcome="certctl_not_a_metric"}[5m])) / temporal_b_total`, "certctl_", "temporal_")
	if strings.Join(got, " ") != "certctl_a_bucket temporal_b_total" {
		t.Fatalf("got %v", got)
	}
}

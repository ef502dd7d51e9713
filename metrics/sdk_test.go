package metrics_test

import (
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/certctl/certctl/metrics"
)

// What the SDK records through SDKHandler is served by Handler beside
// certctl's own metrics, named as Prometheus names them.
func TestSDKMetricsBesideCertctls(t *testing.T) {
	h, closer := metrics.SDKHandler(func(err error) { t.Errorf("registering: %v", err) })
	tagged := h.WithTags(map[string]string{"operation": "StartWorkflowExecution", "namespace": "default"})
	tagged.Counter("temporal_request").Inc(1)
	h.Timer("temporal_workflow_task_execution_latency").Record(42 * time.Millisecond)
	h.Gauge("temporal_num_pollers").Update(2)
	metrics.VerifyAttemptsTotal.Inc()
	if err := closer.Close(); err != nil { // reports what is cached
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]dto.MetricType{
		"temporal_request_total":                           dto.MetricType_COUNTER,
		"temporal_workflow_task_execution_latency_seconds": dto.MetricType_HISTOGRAM,
		"temporal_num_pollers":                             dto.MetricType_GAUGE,
		"certctl_deploy_verify_attempts_total":             dto.MetricType_COUNTER,
		"go_goroutines":                                    dto.MetricType_GAUGE,
	} {
		f, ok := fams[name]
		if !ok || f.GetType() != typ {
			t.Errorf("%s: %v (present %v), want a %v", name, f.GetType(), ok, typ)
		}
	}
	req := fams["temporal_request_total"].GetMetric()
	if len(req) != 1 || req[0].GetCounter().GetValue() != 1 {
		t.Fatalf("temporal_request_total: %v", req)
	}
	labels := map[string]string{}
	for _, l := range req[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["operation"] != "StartWorkflowExecution" || labels["namespace"] != "default" {
		t.Errorf("temporal_request_total's labels: %v", labels)
	}
	if s := fams["temporal_workflow_task_execution_latency_seconds"].GetMetric()[0].GetHistogram().GetSampleSum(); s < 0.041 || s > 0.043 {
		t.Errorf("a 42 ms timer recorded as %v s", s)
	}
}

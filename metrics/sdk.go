package metrics

import (
	"io"
	"time"

	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// SDKReportEvery is how often the SDK's metrics reach Registry (tally
// reports its cached values on this interval).
const SDKReportEvery = time.Second

// SDKHandler is the Temporal SDK's metrics handler for client.Options: the
// SDK's own metrics (temporal_request_total,
// temporal_workflow_task_execution_latency_seconds, …) reported into
// Registry by tally's Prometheus reporter, the SDK's Prometheus-compatible
// route (temporalio/samples-go metrics/). Timers become histograms; counters
// end in _total and timers in _seconds (sdktally's naming scope). onError
// hears a metric the reporter could not register. Close the closer when
// the client is closed: it reports the last values and stops the loop.
func SDKHandler(onError func(error)) (client.MetricsHandler, io.Closer) {
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       Registry,
		DefaultTimerType: tallyprom.HistogramTimerType,
		OnRegisterError:  onError,
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		// tally's own tally_internal_* series say nothing to an operator.
		OmitCardinalityMetrics: true,
	}, SDKReportEvery)
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)), closer
}

// Package metrics holds certctl's own Prometheus metrics and the registry
// that the worker's --metrics-addr serves: certctl's metrics, the Go
// runtime's and, through SDKHandler, the Temporal SDK's, in one scrape.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every metric a worker serves: certctl's below, the Go
// runtime's and the process's (go_*, process_*), and the Temporal SDK's
// (temporal_*) once a client is dialed with SDKHandler.
var Registry = newRegistry()

func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

var factory = promauto.With(Registry)

// Handler serves Registry in the Prometheus exposition format, counting its
// own scrapes (promhttp_metric_handler_*) as promhttp.Handler does.
func Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(Registry, promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry}))
}

// Deploy metrics, as DESIGN.md names them. The workflow counts them when a
// deploy ends (workflows/metrics.go: once per deploy, not again on a replay
// or a retried workflow task); the verify step counts its probes.
var (
	DeployTotal = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_deploy_total", Help: "Deploys finished, by connector and outcome.",
	}, []string{"target_type", "outcome"})
	DeployDuration = factory.NewHistogramVec(prometheus.HistogramOpts{
		Name: "certctl_deploy_duration_seconds", Help: "Wall time of a deploy, first step to outcome, by connector.",
		Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
	}, []string{"target_type"})
	IdempotentSkipTotal = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_deploy_idempotent_skip_total", Help: "Deploys that found nothing to do.",
	}, []string{"target_type"})
	RollbackTotal = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_deploy_rollback_total", Help: "Compensating rollbacks; outcome=\"also_failed\" needs a person.",
	}, []string{"outcome"})
	VerifyAttemptsTotal = factory.NewCounter(prometheus.CounterOpts{
		Name: "certctl_deploy_verify_attempts_total", Help: "TLS probes made by verify steps.",
	})
)

// Approval metrics, recorded by the Audit activity when it writes the line
// that closes a request (once per request, whatever the retries or replays).
var (
	ApprovalDecisionsTotal = factory.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_approval_decisions_total",
		Help: "Approval requests closed, by outcome (approved, rejected, expired, bypassed) and profile.",
	}, []string{"outcome", "profile_id"})
	ApprovalPendingAge = factory.NewHistogram(prometheus.HistogramOpts{
		Name:    "certctl_approval_pending_age_seconds",
		Help:    "Seconds from an approval request to the event that closed it.",
		Buckets: []float64{60, 300, 1800, 3600, 21600, 86400},
	})
)

// Rollback outcomes (certctl_deploy_rollback_total's label).
const (
	RollbackRestored   = "restored"
	RollbackAlsoFailed = "also_failed"
)

// NotificationsTotal counts notifications by channel (its name in the
// notify config) and outcome ("sent", or "failed" once its retries are
// over), once per event and channel: NotifyWorkflow counts it when the
// delivery ends, not on a replay.
var NotificationsTotal = factory.NewCounterVec(prometheus.CounterOpts{
	Name: "certctl_notifications_total", Help: "Notifications delivered (sent) or given up (failed), by channel.",
}, []string{"channel", "outcome"})

// Notification outcomes (certctl_notifications_total's label).
const (
	NotificationSent   = "sent"
	NotificationFailed = "failed"
)

// Package metrics holds certctl's own Prometheus metrics, served by the
// worker's --metrics-addr beside the Temporal SDK's.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Deploy metrics, as DESIGN.md names them.
var (
	DeployTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_deploy_total", Help: "Deploys finished, by connector and outcome.",
	}, []string{"target_type", "outcome"})
	DeployDuration = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "certctl_deploy_duration_seconds", Help: "Wall time of a deploy, first step to outcome.",
		Buckets: []float64{0.25, 0.5, 1, 2, 5, 10, 30, 60, 300},
	})
	IdempotentSkipTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_deploy_idempotent_skip_total", Help: "Deploys that found nothing to do.",
	}, []string{"target_type"})
	RollbackTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_deploy_rollback_total", Help: "Compensating rollbacks; outcome=\"also_failed\" needs a person.",
	}, []string{"outcome"})
	VerifyAttemptsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "certctl_deploy_verify_attempts_total", Help: "TLS probes made by verify steps.",
	})
)

// Approval metrics, recorded by the Audit activity when it writes the line
// that closes a request (once per request, whatever the retries or replays).
var (
	ApprovalDecisionsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "certctl_approval_decisions_total",
		Help: "Approval requests closed, by outcome (approved, rejected, expired, bypassed) and profile.",
	}, []string{"outcome", "profile_id"})
	ApprovalPendingAge = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "certctl_approval_pending_age_seconds",
		Help:    "Seconds from an approval request to the event that closed it.",
		Buckets: []float64{60, 300, 1800, 3600, 21600, 86400},
	})
)

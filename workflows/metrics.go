package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/metrics"
)

// recordDeploy counts a finished deploy once: a replay of the same history
// (after a worker restart) must not count it again.
func recordDeploy(ctx workflow.Context, targetType string, res DeployResult) {
	if workflow.IsReplaying(ctx) {
		return
	}
	metrics.DeployTotal.WithLabelValues(targetType, res.Outcome).Inc()
	var ms int64
	rolledBack := false
	for _, s := range res.Steps {
		ms += s.Ms
		if s.Name == "rollback" {
			rolledBack = true
		}
	}
	metrics.DeployDuration.Observe(float64(ms) / 1000)
	switch {
	case res.Outcome == contract.SkippedIdempotent:
		metrics.IdempotentSkipTotal.WithLabelValues(targetType).Inc()
	case res.Outcome == contract.RollbackFailed:
		metrics.RollbackTotal.WithLabelValues("also_failed").Inc()
	case rolledBack:
		metrics.RollbackTotal.WithLabelValues("restored").Inc()
	}
}

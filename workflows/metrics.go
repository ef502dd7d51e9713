package workflows

import (
	"sync"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/metrics"
)

// recordDeploy counts a finished deploy once, in the process whose workflow
// task ends it. Two things would count it again, and neither does:
//   - a replay of the same history (after a worker restart or a cache
//     eviction, or to answer a query on a closed deploy): IsReplaying;
//   - a retried workflow task: the task that ended the deploy failed or
//     timed out after counting (a deadlock, its completion refused or
//     lost), so the next attempt runs the end of the workflow again, live.
//     The run is remembered (counted): the attempt that lands on the same
//     worker, as a host run's does when its host has one worker, counts
//     nothing.
//
// What is left: an attempt that another worker of the same queue picks up
// (several workflow workers on "certctl") counts there too; a worker killed
// after counting loses its counts with it (Prometheus sees the reset).
//
// Counting adds no command: the history is the same as without metrics.
func recordDeploy(ctx workflow.Context, targetType string, res DeployResult) {
	if workflow.IsReplaying(ctx) || !counted.add(workflow.GetInfo(ctx).WorkflowExecution.RunID) {
		return
	}
	countDeploy(targetType, res)
	// testsuite/metrics_test.go fails the workflow task here (a "pause"
	// longer than the SDK's deadlock detector's second) to prove the retry
	// counts nothing.
	failpoint.Hit("deploy:counted")
}

// countDeploy moves the deploy metrics for one finished deploy.
func countDeploy(targetType string, res DeployResult) {
	metrics.DeployTotal.WithLabelValues(targetType, res.Outcome).Inc()
	var ms int64
	rolledBack := false
	for _, s := range res.Steps {
		ms += s.Ms
		if s.Name == string(contract.StepRollback) {
			rolledBack = true
		}
	}
	metrics.DeployDuration.WithLabelValues(targetType).Observe(float64(ms) / 1000)
	switch {
	case res.Outcome == contract.SkippedIdempotent:
		metrics.IdempotentSkipTotal.WithLabelValues(targetType).Inc()
	case res.Outcome == contract.RollbackFailed:
		metrics.RollbackTotal.WithLabelValues(metrics.RollbackAlsoFailed).Inc()
	case rolledBack:
		metrics.RollbackTotal.WithLabelValues(metrics.RollbackRestored).Inc()
	}
}

// counted holds the runs whose end this process has counted: the last
// countedRuns of them, far more than the deploys that end within a
// workflow task's retry.
var counted = &runSet{seen: map[string]bool{}, ring: make([]string, countedRuns)}

const countedRuns = 1 << 14

// runSet is a bounded set of run IDs, the oldest forgotten first.
type runSet struct {
	mu   sync.Mutex
	seen map[string]bool
	ring []string
	next int
}

// add says whether id is new, and remembers it.
func (s *runSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[id] {
		return false
	}
	if old := s.ring[s.next]; old != "" {
		delete(s.seen, old)
	}
	s.ring[s.next] = id
	s.next = (s.next + 1) % len(s.ring)
	s.seen[id] = true
	return true
}

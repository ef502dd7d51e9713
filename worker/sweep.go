package main

import (
	"context"
	"log/slog"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
)

// sweepLeftovers removes temp files a crashed worker left on this host:
// those older than the oldest deploy still running anywhere (a running
// deploy's temp files are never older than its start), in the directories
// this host has staged into. It reports what it removed.
func sweepLeftovers(ctx context.Context, c client.Client, logger *slog.Logger) {
	before := time.Now().UnixNano()
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         `WorkflowType = "` + contract.DeployWorkflow + `" AND ExecutionStatus = "Running"`,
			NextPageToken: token,
		})
		if err != nil {
			// Without knowing what runs, removing anything could break a
			// deploy in flight.
			logger.Warn("leftover sweep skipped: cannot list running deploys", "error", err)
			return
		}
		for _, ex := range resp.GetExecutions() {
			if st := ex.GetStartTime().AsTime().UnixNano(); st < before {
				before = st
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	removed, err := activities.SweepTemps(activities.StateDir(), before)
	for _, p := range removed {
		logger.Info("removed a leftover temp file", "path", p)
	}
	if err != nil {
		logger.Warn("leftover sweep incomplete", "error", err)
	}
	logger.Info("leftover sweep done", "removed", len(removed), "state_dir", activities.StateDir())
}

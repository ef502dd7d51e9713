package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
)

// EarlierRunsInput names a run and the Keyword search attribute that holds
// its state.
type EarlierRunsInput struct {
	WorkflowID     string `json:"workflow_id"`
	RunID          string `json:"run_id"`
	StateAttribute string `json:"state_attribute"`
}

// EarlierRun is another run of the same workflow ID, as visibility has it.
type EarlierRun struct {
	RunID string `json:"run_id"`
	// Status is the execution status, lower case: completed, failed,
	// terminated, running…
	Status string `json:"status"`
	// State is the state search attribute, "" if the run never set it.
	State     string    `json:"state,omitempty"`
	StartTime time.Time `json:"start_time"`
}

// EarlierRuns lists every run of in.WorkflowID but in.RunID, newest first,
// from visibility. It runs as a local activity on the workflow worker, so
// that a request ID, once used, stays used whoever starts it again and with
// whatever reuse policy.
func (a *Activities) EarlierRuns(ctx context.Context, in EarlierRunsInput) ([]EarlierRun, error) {
	if a == nil || a.Client == nil {
		return nil, errors.New("EarlierRuns needs a Temporal client (the certctl worker's own)")
	}
	query := "WorkflowId = " + quoteVisibility(in.WorkflowID)
	var out []EarlierRun
	var token []byte
	for {
		resp, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list the runs of %s (%s): %w", in.WorkflowID, query, err)
		}
		for _, e := range resp.GetExecutions() {
			if e.GetExecution().GetRunId() == in.RunID || e.GetExecution().GetWorkflowId() != in.WorkflowID {
				continue
			}
			r := EarlierRun{
				RunID:     e.GetExecution().GetRunId(),
				Status:    strings.ToLower(e.GetStatus().String()),
				StartTime: e.GetStartTime().AsTime(),
			}
			if p := e.GetSearchAttributes().GetIndexedFields()[in.StateAttribute]; p != nil {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &r.State)
			}
			out = append(out, r)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

// quoteVisibility quotes s as a string literal of Temporal's visibility
// query language.
func quoteVisibility(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

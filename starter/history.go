package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/workflows"
	"github.com/spf13/cobra"
)

func historyCmd() *cobra.Command {
	var id, output string
	var limit int
	cmd := &cobra.Command{
		Use:   "history --target TARGET_ID [--limit N] [--output json]",
		Short: "Past deploys of a target, newest first, from visibility",
		Long: `Lists the target's deploys from visibility (CertctlTarget = 'TARGET_ID'),
newest first: each one's workflow ID, when it started, how long it took, its
outcome (CertctlOutcome) and its execution status. A deploy that delegated to
its host's worker is listed once (its host run "<id>/host" is not).

Exit codes: 0 listed (none is a list too); 1 the cluster could not be reached;
2 bad input (the message names the flag).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if id == "" {
				return invalid("--target: give a target ID")
			}
			if err := lookupID(id); err != nil {
				return err
			}
			if limit <= 0 {
				return invalid(fmt.Sprintf("--limit %d: want a positive number of deploys", limit))
			}
			return following(cmd, func(ctx context.Context, c client.Client) error {
				if err := requireSearchAttributes(ctx, c); err != nil {
					return err
				}
				rows, more, err := listDeploys(ctx, c, id, limit)
				if err != nil {
					return &exitError{code: 1, msg: err.Error()}
				}
				return printHistory(cmd.OutOrStdout(), id, rows, more, limit, output)
			})
		},
	}
	cmd.Flags().StringVar(&id, "target", "", "target ID")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many deploys")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

// historyRow is one past deploy.
type historyRow struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	Started    time.Time  `json:"started"`
	Ended      *time.Time `json:"ended,omitempty"`
	TookMs     *int64     `json:"took_ms,omitempty"`
	Outcome    string     `json:"outcome,omitempty"`
	Status     string     `json:"status"`
}

// listDeploys reads up to limit deploys of the target, page by page, in
// visibility's order (newest first); more says there are others.
func listDeploys(ctx context.Context, c client.Client, id string, limit int) ([]historyRow, bool, error) {
	q := deployQuery(id)
	var rows []historyRow
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token, PageSize: int32(min(limit, 100))})
		if err != nil {
			return nil, false, fmt.Errorf("list the deploys of %s (%s): %w", id, q, err)
		}
		for _, e := range resp.GetExecutions() {
			if hostRunOf(e) {
				continue
			}
			if len(rows) == limit {
				return rows, true, nil
			}
			r := historyRow{
				WorkflowID: e.GetExecution().GetWorkflowId(),
				RunID:      e.GetExecution().GetRunId(),
				Started:    e.GetStartTime().AsTime().UTC(),
				Outcome:    keyword(e.GetSearchAttributes().GetIndexedFields()[workflows.OutcomeKey.GetName()]),
				Status:     executionStatus(e.GetStatus()),
			}
			if ct := e.GetCloseTime(); ct != nil && e.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				end := ct.AsTime().UTC()
				took := end.Sub(r.Started).Milliseconds()
				r.Ended, r.TookMs = &end, &took
			}
			rows = append(rows, r)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return rows, false, nil
		}
	}
}

func printHistory(w io.Writer, id string, rows []historyRow, more bool, limit int, output string) error {
	if output == "json" {
		if rows == nil {
			rows = []historyRow{}
		}
		return json.NewEncoder(w).Encode(struct {
			TargetID string       `json:"target_id"`
			Deploys  []historyRow `json:"deploys"`
			More     bool         `json:"more"`
		}{id, rows, more})
	}
	if len(rows) == 0 {
		fmt.Fprintf(w, "no deploys of target %s\n", id)
		return nil
	}
	idWidth := len("WORKFLOW")
	for _, r := range rows {
		idWidth = max(idWidth, len(r.WorkflowID))
	}
	fmt.Fprintf(w, "%-*s  %-20s  %9s  %-18s  %s\n", idWidth, "WORKFLOW", "STARTED", "TOOK", "OUTCOME", "STATUS")
	for _, r := range rows {
		took, outcome := "-", r.Outcome
		if r.TookMs != nil {
			took = fmt.Sprintf("%d ms", *r.TookMs)
		}
		if outcome == "" {
			outcome = "-"
		}
		fmt.Fprintf(w, "%-*s  %-20s  %9s  %-18s  %s\n", idWidth, r.WorkflowID, r.Started.Format(time.RFC3339), took, outcome, r.Status)
	}
	if more {
		fmt.Fprintf(w, "more deploys than these %d: --limit N for more\n", limit)
	}
	return nil
}

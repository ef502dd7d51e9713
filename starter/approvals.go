package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/identity"
	"github.com/certctl/certctl/workflows"
)

func approvalsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List, inspect, approve and reject approval requests",
		Long: `Every renewal of a profile with requires_approval: true waits in an
ApprovalWorkflow (workflow ID approval/<request-id>) until required_approvals
distinct approvers approve it, one rejects it, or it expires. The requester can
never decide their own request (two-person integrity).`,
	}
	cmd.AddCommand(approvalsListCmd(), approvalsShowCmd(),
		approvalsDecideCmd(contract.DecisionApprove), approvalsDecideCmd(contract.DecisionReject))
	return cmd
}

// approvalWorkflowID accepts a request id or the workflow ID itself.
func approvalWorkflowID(arg string) string {
	if strings.HasPrefix(arg, "approval/") {
		return arg
	}
	return workflows.ApprovalID(arg)
}

func checkOutput(output string) error {
	if output != "text" && output != "json" {
		return invalid("--output: want text or json")
	}
	return nil
}

// approvalRow is one line of `approvals list`.
type approvalRow struct {
	WorkflowID string                    `json:"workflow_id"`
	Status     string                    `json:"execution_status"`
	State      string                    `json:"state"`
	ProfileID  string                    `json:"profile_id"`
	DecidedBy  string                    `json:"decided_by,omitempty"`
	Request    *workflows.ApprovalStatus `json:"request,omitempty"`
}

func approvalsListCmd() *cobra.Command {
	var state, output string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--state pending|approved|rejected|expired|bypassed]",
		Short: "List approval requests, newest first (the inbox: --state pending)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			q := fmt.Sprintf("WorkflowType = %q", contract.ApprovalWorkflow)
			if state != "" {
				known := false
				for _, s := range workflows.ApprovalStates {
					known = known || s == state
				}
				if !known {
					return invalid(fmt.Sprintf("--state %q: want one of %s", state, strings.Join(workflows.ApprovalStates, ", ")))
				}
				q += fmt.Sprintf(" AND ApprovalState = %q", state)
				if state == workflows.StatePending {
					// A request whose renewal was terminated stays "pending"
					// but can take no decision.
					q += ` AND ExecutionStatus = "Running"`
				}
			}
			return following(cmd, func(ctx context.Context, c client.Client) error {
				if err := requireSearchAttributes(ctx, c); err != nil {
					return err
				}
				rows, err := listApprovals(ctx, c, q, limit)
				if err != nil {
					return &exitError{code: 1, msg: err.Error()}
				}
				return printApprovals(cmd.OutOrStdout(), rows, output)
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only requests in this state: "+strings.Join(workflows.ApprovalStates, ", "))
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many requests")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	return cmd
}

func listApprovals(ctx context.Context, c client.Client, query string, limit int) ([]approvalRow, error) {
	var rows []approvalRow
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: int32(min(limit, 100))})
		if err != nil {
			return nil, fmt.Errorf("list approvals (%s): %w", query, err)
		}
		for _, e := range resp.Executions {
			if len(rows) >= limit {
				return rows, nil
			}
			sa := e.GetSearchAttributes().GetIndexedFields()
			r := approvalRow{
				WorkflowID: e.GetExecution().GetWorkflowId(),
				Status:     executionStatus(e.GetStatus()),
				State:      keyword(sa["ApprovalState"]),
				ProfileID:  keyword(sa["ApprovalProfile"]),
				DecidedBy:  keyword(sa["ApprovalDecidedBy"]),
			}
			// The requester, subject and deadline live in the workflow: ask it
			// (a closed one answers by replay).
			if v, err := c.QueryWorkflow(ctx, r.WorkflowID, e.GetExecution().GetRunId(), contract.QueryState); err == nil {
				var st workflows.ApprovalStatus
				if v.Get(&st) == nil {
					r.Request = &st
				}
			}
			rows = append(rows, r)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			return rows, nil
		}
	}
}

func executionStatus(s enumspb.WorkflowExecutionStatus) string {
	return strings.ToLower(strings.TrimPrefix(enumspb.WorkflowExecutionStatus_name[int32(s)], "WORKFLOW_EXECUTION_STATUS_"))
}

// keyword decodes a Keyword search attribute (never encrypted).
func keyword(p *commonpb.Payload) string {
	var s string
	if p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	return s
}

func printApprovals(w io.Writer, rows []approvalRow, output string) error {
	if output == "json" {
		if rows == nil {
			rows = []approvalRow{}
		}
		return json.NewEncoder(w).Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "no approval requests")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REQUEST\tSTATE\tPROFILE\tREQUESTED BY\tSUBJECT\tAPPROVALS\tDEADLINE / DECIDED BY")
	for _, r := range rows {
		req, by, subject, approvals, when := strings.TrimPrefix(r.WorkflowID, "approval/"), "-", "-", "-", "-"
		if st := r.Request; st != nil {
			by, subject = st.RequestedBy, st.Subject
			approvals = fmt.Sprintf("%d of %d", st.Approvals(), st.RequiredApprovals)
			if st.State == workflows.StatePending {
				when = st.Deadline.UTC().Format(time.RFC3339) + " (in " + time.Until(st.Deadline).Round(time.Minute).String() + ")"
			} else if st.ClosedAt != nil {
				when = st.ClosedAt.UTC().Format(time.RFC3339)
				if r.DecidedBy != "" {
					when = r.DecidedBy + " at " + when
				}
			}
		}
		state := r.State
		if r.Status != "running" && r.Status != "completed" {
			// A request whose workflow was terminated or failed decides nothing.
			state += " (" + r.Status + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", req, state, r.ProfileID, by, subject, approvals, when)
	}
	return tw.Flush()
}

func approvalsShowCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show REQUEST_ID",
		Short: "Show one request: requester, subject, approvers, decisions, refusals, deadline",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return withClient(cmd.Context(), func(ctx context.Context, c client.Client) error {
				id := approvalWorkflowID(args[0])
				v, err := c.QueryWorkflow(ctx, id, "", contract.QueryState)
				if err != nil {
					var nf *serviceerror.NotFound
					if errors.As(err, &nf) {
						return &exitError{code: 1, msg: fmt.Sprintf("no approval request %s (%s not found)", args[0], id)}
					}
					return &exitError{code: 1, msg: fmt.Sprintf("query %s: %v", id, err)}
				}
				var st workflows.ApprovalStatus
				if err := v.Get(&st); err != nil {
					return &exitError{code: 1, msg: fmt.Sprintf("query %s: %v", id, err)}
				}
				w := cmd.OutOrStdout()
				if output == "json" {
					return json.NewEncoder(w).Encode(st)
				}
				printStatus(w, id, st)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	return cmd
}

func printStatus(w io.Writer, id string, st workflows.ApprovalStatus) {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(w, "request:      %s (%s)\n", st.RequestID, id)
	fmt.Fprintf(w, "state:        %s\n", st.State)
	fmt.Fprintf(w, "profile:      %s\n", st.ProfileID)
	if st.CertID != "" {
		fmt.Fprintf(w, "certificate:  %s\n", st.CertID)
	}
	fmt.Fprintf(w, "subject:      %s\n", st.Subject)
	fmt.Fprintf(w, "sans:         %s\n", strings.Join(st.SANs, ", "))
	fmt.Fprintf(w, "requested by: %s at %s\n", st.RequestedBy, at(st.RequestedAt))
	pool := "anyone but " + st.RequestedBy
	if len(st.Approvers) > 0 {
		pool = strings.Join(st.Approvers, ", ")
	}
	fmt.Fprintf(w, "approvers:    %s (%d of %d approvals)\n", pool, st.Approvals(), st.RequiredApprovals)
	if st.State == workflows.StatePending {
		fmt.Fprintf(w, "deadline:     %s (in %s)\n", at(st.Deadline), time.Until(st.Deadline).Round(time.Minute))
	} else {
		fmt.Fprintf(w, "deadline:     %s\n", at(st.Deadline))
		if st.ClosedAt != nil {
			fmt.Fprintf(w, "closed:       %s\n", at(*st.ClosedAt))
		}
	}
	fmt.Fprintln(w, "decisions:")
	if len(st.Decisions) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, d := range st.Decisions {
		fmt.Fprintf(w, "  %s  %-8s %s%s\n", at(d.At), d.Decision, d.Actor, quoted(d.Note))
	}
	if len(st.Refused) > 0 {
		fmt.Fprintln(w, "refused:")
		for _, r := range st.Refused {
			fmt.Fprintf(w, "  %s  %-8s %s (%s): %s\n", at(r.At), r.Decision, r.Actor, r.Via, r.Reason)
		}
	}
}

func quoted(note string) string {
	if note == "" {
		return ""
	}
	return fmt.Sprintf("  %q", oneLine(note))
}

func approvalsDecideCmd(decision string) *cobra.Command {
	var as, note, output string
	past := map[string]string{contract.DecisionApprove: "approved", contract.DecisionReject: "rejected"}[decision]
	cmd := &cobra.Command{
		Use:   decision + " REQUEST_ID --as ACTOR [--note TEXT]",
		Short: strings.ToUpper(decision[:1]) + decision[1:] + " a request (the update `decide`); a refusal prints why and exits 1",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if strings.TrimSpace(as) == "" {
				return invalid("--as: say who decides")
			}
			// The workflow compares identities as mapped; sending the mapped
			// name says here, before anything is sent, what it would refuse.
			who, err := identity.Canonical(as)
			if err != nil {
				return &exitError{code: 2, msg: "invalid input: --as: " + err.Error()}
			}
			return withClient(cmd.Context(), func(ctx context.Context, c client.Client) error {
				st, err := decide(ctx, c, approvalWorkflowID(args[0]), workflows.DecideInput{Actor: who, Decision: decision, Note: note})
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if output == "json" {
					return json.NewEncoder(w).Encode(st)
				}
				fmt.Fprintf(w, "%s %s %s: request %s (%d of %d approvals)\n", who, past, st.RequestID, st.State, st.Approvals(), st.RequiredApprovals)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "who decides (mapped as a PRECIS user name: trimmed, case-folded, width-folded; one script, no invisible characters; never the requester)")
	cmd.Flags().StringVar(&note, "note", "", "why (a ticket, a reason); recorded in the history and the audit log")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	_ = cmd.MarkFlagRequired("as")
	return cmd
}

// auditWait bounds the wait for an accepted decision to reach the audit log.
const auditWait = 2 * time.Minute

// decide sends the update and waits for its result: the state after the
// decision, once the decision is in the audit log.
func decide(ctx context.Context, c client.Client, id string, in workflows.DecideInput) (workflows.ApprovalStatus, error) {
	var st workflows.ApprovalStatus
	// Accepted means the validator passed and the decision is in the
	// history; completed means it is in the audit log too.
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: id, UpdateName: contract.UpdateDecide, Args: []any{in}, WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, auditWait)
		defer cancel()
		err = h.Get(wctx, &st)
		if wctx.Err() != nil && ctx.Err() == nil {
			return st, &exitError{code: 1, msg: fmt.Sprintf("the decision on %s is recorded in its history but not yet in the audit log after %s: "+
				"check the certctl worker (its Audit activity is retrying; see the workflow in the Web UI)", id, auditWait)}
		}
	}
	if err == nil {
		return st, nil
	}
	var ae *temporal.ApplicationError
	var nf *serviceerror.NotFound
	req := strings.TrimPrefix(id, "approval/")
	switch {
	case errors.As(err, &ae) && ae.Type() == contract.ApprovalRefused:
		return st, &exitError{code: 1, msg: "refused: " + ae.Message()}
	case errors.As(err, &nf):
		// A closed request's workflow has completed: say how it ended.
		if v, qerr := c.QueryWorkflow(ctx, id, "", contract.QueryState); qerr == nil && v.Get(&st) == nil {
			return st, &exitError{code: 1, msg: fmt.Sprintf("refused: request %s is already %s: a closed request takes no decisions", req, st.State)}
		}
		return st, &exitError{code: 1, msg: fmt.Sprintf("no approval request %s (%s: %v)", req, id, err)}
	}
	return st, &exitError{code: 1, msg: fmt.Sprintf("decide %s: %v", id, err)}
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/identity"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/workflows"
)

type renewFlags struct {
	profile, certID, as, requestID string
	schedule                       string
	detach                         bool
	output                         string
}

func renewCmd() *cobra.Command {
	var f renewFlags
	cmd := &cobra.Command{
		Use:   "renew --profile PROFILE_ID --cert-id ID --as ACTOR",
		Short: "Renew a certificate of a profile: ask approval where required, issue, deploy to every target",
		Long: `Starts RenewWorkflow (workflow ID renew/<request-id>). Where the profile says
requires_approval: true it first waits in ApprovalWorkflow approval/<request-id>
for required_approvals distinct approvers other than --as (approve with
` + "`certctl approvals approve <request-id> --as NAME`" + `); then it issues through
the profile's issuer and deploys to every target, printing the outcome on its
own last line.

With --schedule EVERY (e.g. 24h) it creates a Temporal Schedule renew/<cert-id>
instead: each run reads the deployed certificates, renews only when one is
inside the profile's renewal window (renew_before), and asks approval exactly
as a manual renewal does, as requested by --as.

The profile is named by ID: the workflow worker reads it from its own
CERTCTL_PROFILES_DIR (default /etc/certctl/profiles) as <profile_id>.yaml;
whether it asks approval, and of whom, is never in the request. Likewise
CERTCTL_APPROVAL_BYPASS is read only from the workflow worker's environment.

Environment (read here, never by the workflows):
  CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT  how long a request waits (default 168h)
  CERTCTL_HOST_WAIT                      how long a deploy waits for its host's worker

Exit codes: 0 Deployed, SkippedIdempotent or RenewalNotDue (and a schedule
created); 1 any other outcome (ApprovalRejected, ApprovalExpired, a deploy's);
2 input refused before anything started (the message names the field).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, every, err := f.request()
			if err != nil {
				return invalid(err.Error())
			}
			return following(cmd, func(ctx context.Context, c client.Client) error {
				if err := requireSearchAttributes(ctx, c); err != nil {
					return err
				}
				if every > 0 {
					return createRenewSchedule(ctx, c, req, every, f.output, cmd.OutOrStdout())
				}
				return runRenew(ctx, c, req, f.detach, f.output, cmd.OutOrStdout())
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", "", "the `PROFILE_ID` of a profile installed on the workflow worker (CERTCTL_PROFILES_DIR)")
	fl.StringVar(&f.certID, "cert-id", "", "the certificate's id (letters, digits, . _ -)")
	fl.StringVar(&f.as, "as", "", "who asks: the requester, who can never approve this renewal")
	fl.StringVar(&f.requestID, "request-id", "", "the approval request's id (default <cert-id>-<UTC time>-<random>)")
	fl.StringVar(&f.schedule, "schedule", "", "create a schedule renewing every `EVERY` (e.g. 24h) instead of renewing now")
	fl.BoolVar(&f.detach, "detach", false, "print the workflow and request IDs and return without waiting")
	fl.StringVar(&f.output, "output", "text", "text or json")
	for _, n := range []string{"profile", "cert-id", "as"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

// request checks everything the starter can before anything starts. The
// profile is named by ID only: the workflow worker reads it from its own
// profiles directory, and the bypass from its own environment.
func (f *renewFlags) request() (workflows.RenewRequest, time.Duration, error) {
	var req workflows.RenewRequest
	if f.output != "text" && f.output != "json" {
		return req, 0, errors.New("--output: want text or json")
	}
	if err := checkProfileID(f.profile); err != nil {
		return req, 0, err
	}
	if err := profile.CheckID("--cert-id", f.certID); err != nil {
		return req, 0, err
	}
	if strings.TrimSpace(f.as) == "" {
		return req, 0, errors.New("--as: say who asks (two-person integrity needs a requester)")
	}
	as, err := identity.Canonical(f.as)
	if err != nil {
		return req, 0, fmt.Errorf("--as: %w", err)
	}
	timeout, err := renewal.ApprovalTimeoutFromEnv()
	if err != nil {
		return req, 0, err
	}
	req = workflows.RenewRequest{CertID: f.certID, RequestedBy: as, ProfileID: f.profile,
		ApprovalTimeout: target.Duration(timeout)}
	if v := os.Getenv("CERTCTL_HOST_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return req, 0, fmt.Errorf("CERTCTL_HOST_WAIT: %w", err)
		}
		req.HostWait = target.Duration(d)
	}
	var every time.Duration
	if f.schedule != "" {
		if f.requestID != "" || f.detach {
			return req, 0, errors.New("--schedule: every scheduled run asks with a request id of its own; drop --request-id and --detach")
		}
		if every, err = time.ParseDuration(f.schedule); err != nil || every < time.Minute {
			return req, 0, fmt.Errorf("--schedule %q: want a duration of at least 1m, such as 24h", f.schedule)
		}
		req.OnlyIfDue = true
		return req, every, nil
	}
	req.RequestID = f.requestID
	if req.RequestID == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		req.RequestID = fmt.Sprintf("%s-%s-%s", f.certID, time.Now().UTC().Format("20060102T150405Z"), hex.EncodeToString(b))
	}
	if err := profile.CheckID("--request-id", req.RequestID); err != nil {
		return req, 0, err
	}
	return req, 0, nil
}

// checkProfileID refuses a path or a file given to --profile: a profile is
// installed on the workflow worker, where the request cannot change it.
func checkProfileID(v string) error {
	_, statErr := os.Stat(v)
	if strings.ContainsAny(v, `/\`) || strings.HasSuffix(v, ".yaml") || strings.HasSuffix(v, ".yml") || statErr == nil {
		return fmt.Errorf("--profile %q: give a profile ID, not a file: profiles live with the workflow worker; install the file there as %s/<profile_id>.yaml (%s) and pass its profile_id",
			v, profile.DefaultDir, profile.EnvDir)
	}
	if err := profile.CheckID("--profile", v); err != nil {
		return fmt.Errorf("%w (a profile ID, installed on the workflow worker as %s/<profile_id>.yaml)", err, profile.DefaultDir)
	}
	return nil
}

// renewOutput is what --output json prints.
type renewOutput struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	workflows.RenewResult
}

func runRenew(ctx context.Context, c client.Client, req workflows.RenewRequest, detach bool, output string, w io.Writer) error {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.RenewID(req.RequestID), TaskQueue: contract.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, contract.RenewWorkflow, req)
	if err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			return invalid(fmt.Sprintf("--request-id %s was already used: a request is never reopened", req.RequestID))
		}
		return &exitError{code: 1, msg: "start RenewWorkflow: " + err.Error()}
	}
	text := output != "json"
	if text {
		fmt.Fprintf(w, "workflow: %s\n", run.GetID())
		fmt.Fprintf(w, "approval: as profile %s on the workflow worker requires; where it does, %s waits for approvers other than %s\n",
			req.ProfileID, workflows.ApprovalID(req.RequestID), req.RequestedBy)
		fmt.Fprintf(w, "          certctl approvals approve %s --as NAME   (or reject)\n", req.RequestID)
	}
	if detach {
		if !text {
			return json.NewEncoder(w).Encode(map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "request_id": req.RequestID})
		}
		return nil
	}
	var res workflows.RenewResult
	if err := run.Get(ctx, &res); err != nil {
		if ctx.Err() != nil {
			return &exitError{code: 1, msg: fmt.Sprintf("stopped waiting; %s keeps running (temporal workflow result --workflow-id %s)", run.GetID(), run.GetID())}
		}
		if !detailsOf(err, &res) || res.Outcome == "" {
			return &exitError{code: 1, msg: fmt.Sprintf("renew %s: %v", run.GetID(), err)}
		}
	}
	return report(w, text, renewOutput{WorkflowID: run.GetID(), RunID: run.GetRunID(), RenewResult: res},
		func() { printRenew(w, res) }, res.Outcome, contract.Deployed, contract.SkippedIdempotent, contract.RenewalNotDue)
}

func printRenew(w io.Writer, res workflows.RenewResult) {
	for _, d := range res.Checked {
		state := "not after " + d.NotAfter.UTC().Format(time.RFC3339)
		if d.Problem != "" {
			state = d.Problem
		}
		fmt.Fprintf(w, "  %-10s %s: %s\n", "checked", d.TargetID, state)
	}
	if a := res.Approval; a != nil {
		var who []string
		for _, d := range a.Decisions {
			who = append(who, d.Actor+quoted(d.Note))
		}
		line := a.State
		if len(who) > 0 {
			line += " by " + strings.Join(who, ", ")
		}
		fmt.Fprintf(w, "  %-10s %s\n", "approval", line)
	}
	if res.LeafSHA256 != "" {
		na := ""
		if res.NotAfter != nil {
			na = ", not after " + res.NotAfter.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  %-10s leaf %s, serial %s%s\n", "issued", res.LeafSHA256, res.Serial, na)
	}
	for _, d := range res.Deploys {
		fmt.Fprintf(w, "  %-10s %s %s (%s)\n", "deploy", d.TargetID, d.Outcome, d.WorkflowID)
	}
	if res.Error != "" {
		fmt.Fprintf(w, "error: %s\n", oneLine(res.Error))
	}
	fmt.Fprintf(w, "outcome: %s\n", res.Outcome)
}

// renewScheduleID is the schedule `certctl renew --schedule` creates.
func renewScheduleID(certID string) string { return "renew/" + certID }

func createRenewSchedule(ctx context.Context, c client.Client, req workflows.RenewRequest, every time.Duration, output string, w io.Writer) error {
	id := renewScheduleID(req.CertID)
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}},
		Action: &client.ScheduleWorkflowAction{
			ID: "renew/" + req.CertID + "/scheduled", Workflow: contract.RenewWorkflow, Args: []any{req}, TaskQueue: contract.TaskQueue,
		},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    fmt.Sprintf("certctl renew --schedule %s, requested by %s", every, req.RequestedBy),
	})
	if err != nil {
		if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return &exitError{code: 1, msg: fmt.Sprintf("schedule %s exists: delete it first (temporal schedule delete --schedule-id %s)", id, id)}
		}
		return &exitError{code: 1, msg: fmt.Sprintf("create schedule %s: %v", id, err)}
	}
	if output == "json" {
		return json.NewEncoder(w).Encode(map[string]string{"schedule_id": id, "every": every.String()})
	}
	fmt.Fprintf(w, "schedule: %s every %s\n", id, every)
	fmt.Fprintf(w, "each run renews %s of profile %s only when a target's certificate is inside the profile's renewal window, and asks approval as requested by %s\n",
		req.CertID, req.ProfileID, req.RequestedBy)
	fmt.Fprintf(w, "run now: temporal schedule trigger --schedule-id %s; remove: temporal schedule delete --schedule-id %s\n", id, id)
	return nil
}

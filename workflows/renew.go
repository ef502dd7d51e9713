package workflows

import (
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
)

// RenewID is the workflow ID `certctl renew` gives a renewal.
func RenewID(requestID string) string { return "renew/" + requestID }

// RenewRequest is RenewWorkflow's input. It names a profile by ID; the
// profile (approval, pool, targets) and the bypass come from the workflow
// worker (renewal.LoadProfile: CERTCTL_PROFILES_DIR and its own
// CERTCTL_APPROVAL_BYPASS), never from the request.
type RenewRequest struct {
	// RequestID names the approval (approval/<request-id>). Empty (a
	// scheduled run): derived from the cert id, the run's start time and run
	// id, so every run asks anew.
	RequestID   string `json:"request_id,omitempty"`
	CertID      string `json:"cert_id"`
	RequestedBy string `json:"requested_by"`
	// ProfileID names a profile installed on the workflow worker as
	// <CERTCTL_PROFILES_DIR>/<profile_id>.yaml.
	ProfileID string `json:"profile_id,omitempty"`
	// LegacyProfile and LegacyApprovalBypass are what requests carried
	// before profiles lived with the worker. They are read only when
	// replaying such a history; a new run ignores them (a profile_id given
	// only as profile.profile_id is still honoured as the ID).
	LegacyProfile        profile.Profile `json:"profile"`
	LegacyApprovalBypass bool            `json:"approval_bypass,omitempty"`
	// ApprovalTimeout is CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT as the
	// starter read it; 0 means 168h.
	ApprovalTimeout target.Duration `json:"approval_timeout,omitempty"`
	// OnlyIfDue (the scheduled path) first reads each target's deployed
	// certificate and renews only when one is inside the renewal window
	// (profile renew_before), missing or unreadable. A due renewal asks
	// approval like any other.
	OnlyIfDue bool            `json:"only_if_due,omitempty"`
	HostWait  target.Duration `json:"host_wait,omitempty"`
}

// RenewDeploy is one target's deploy.
type RenewDeploy struct {
	WorkflowID string `json:"workflow_id"`
	DeployResult
}

// RenewResult is RenewWorkflow's result, and the details of its failure.
type RenewResult struct {
	Outcome   string             `json:"outcome"`
	RequestID string             `json:"request_id"`
	CertID    string             `json:"cert_id"`
	ProfileID string             `json:"profile_id"`
	Checked   []renewal.Deployed `json:"checked,omitempty"`
	Approval  *ApprovalStatus    `json:"approval,omitempty"`
	// The issued leaf.
	LeafSHA256 string        `json:"leaf_sha256,omitempty"`
	Serial     string        `json:"serial,omitempty"`
	NotAfter   *time.Time    `json:"not_after,omitempty"`
	Deploys    []RenewDeploy `json:"deploys,omitempty"`
	// NotStarted counts the targets a halted rollout left untouched.
	NotStarted int    `json:"not_started,omitempty"`
	Error      string `json:"error,omitempty"`
}

// RenewWorkflow renews one certificate of a profile: (scheduled runs) check
// the renewal window, ask approval as a child ApprovalWorkflow where the
// profile requires it, issue, and deploy to every target as child
// DeployWorkflows. A rejected or expired approval ends the renewal with
// ApprovalRejected or ApprovalExpired and nothing downstream runs. Any
// outcome but Deployed, SkippedIdempotent and RenewalNotDue fails the
// workflow with an application error of that type, whose details are the
// RenewResult.
func RenewWorkflow(ctx workflow.Context, req RenewRequest) (RenewResult, error) {
	info := workflow.GetInfo(ctx)
	p, bypass := req.LegacyProfile, req.LegacyApprovalBypass
	res := RenewResult{RequestID: req.RequestID, CertID: req.CertID, ProfileID: p.ProfileID}
	fail := func(o, msg string) (RenewResult, error) {
		res.Outcome, res.Error = o, msg
		workflow.GetLogger(ctx).Info("renewal ended", "request_id", res.RequestID, "outcome", o)
		return res, temporal.NewNonRetryableApplicationError(msg, o, nil, res)
	}
	// Version 1: the profile and the bypass are the workflow worker's own;
	// the old branch (the request's) only replays older histories.
	if workflow.GetVersion(ctx, versionProfileFromWorker, workflow.DefaultVersion, 1) >= 1 {
		id := req.ProfileID
		if id == "" {
			id = req.LegacyProfile.ProfileID
		}
		res.ProfileID = id
		lp, err := loadProfile(ctx, id)
		if err != nil {
			return fail(contract.InvalidInput, errMessage(err))
		}
		p, bypass = lp.Profile, lp.Bypass
		res.ProfileID = p.ProfileID
	}
	p.ApplyDefaults()
	if err := p.Validate(); err != nil {
		return fail(contract.InvalidInput, "profile: "+err.Error())
	}
	if err := profile.CheckID("cert_id", req.CertID); err != nil {
		return fail(contract.InvalidInput, err.Error())
	}
	if strings.TrimSpace(req.RequestedBy) == "" {
		return fail(contract.InvalidInput, "requested_by: is required: two-person integrity needs to know who asked")
	}
	if res.RequestID == "" {
		run := info.WorkflowExecution.RunID
		if len(run) > 8 {
			run = run[:8]
		}
		res.RequestID = fmt.Sprintf("%s-%s-%s", req.CertID, info.WorkflowStartTime.UTC().Format("20060102T150405Z"), run)
	}
	if err := profile.CheckID("request_id", res.RequestID); err != nil {
		return fail(contract.InvalidInput, err.Error())
	}
	hostWait := req.HostWait.D()
	if hostWait <= 0 {
		hostWait = DefaultHostWait
	}

	if req.OnlyIfDue {
		due, o, msg := checkDue(ctx, p, hostWait, &res)
		if o != "" {
			return fail(o, msg)
		}
		if !due {
			res.Outcome = contract.RenewalNotDue
			return res, nil
		}
	}

	if p.RequiresApproval {
		st, err := askApproval(ctx, req, p, bypass, res.RequestID)
		if err != nil {
			if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
				return fail(contract.InvalidInput, fmt.Sprintf("request_id: %s was already used (%s exists): a closed request is never reopened; start a new renewal",
					res.RequestID, ApprovalID(res.RequestID)))
			}
			if contract.Of(err) == contract.InvalidInput {
				return fail(contract.InvalidInput, errMessage(err))
			}
			return res, fmt.Errorf("approval %s did not complete: %w", ApprovalID(res.RequestID), err)
		}
		res.Approval = &st
		switch st.State {
		case StateApproved, StateBypassed:
		case StateRejected:
			last := st.Decisions[len(st.Decisions)-1]
			why := ""
			if last.Note != "" {
				why = fmt.Sprintf(" (%q)", last.Note)
			}
			return fail(contract.ApprovalRejected, fmt.Sprintf("%s rejected %s%s: nothing issued or deployed", last.Actor, ApprovalID(st.RequestID), why))
		case StateExpired:
			return fail(contract.ApprovalExpired, fmt.Sprintf("%s expired at %s with %d of %d approvals: nothing issued or deployed; start a new renewal to ask again",
				ApprovalID(st.RequestID), st.Deadline.UTC().Format(time.RFC3339), st.Approvals(), st.RequiredApprovals))
		default:
			return fail(contract.InvalidInput, fmt.Sprintf("%s ended in state %q", ApprovalID(st.RequestID), st.State))
		}
	}

	is, err := issue(ctx, p, req.CertID, res.RequestID)
	if err != nil {
		return fail(contract.IssueFailed, "issue: "+errMessage(err))
	}
	notAfter := is.NotAfter
	res.LeafSHA256, res.Serial, res.NotAfter = is.LeafSHA256, is.Serial, &notAfter

	// Version 1 lands the certificate as a rollout does (the canary first,
	// then in batches, halting on failure: renew_rollout.go); before it,
	// every target at once.
	if workflow.GetVersion(ctx, versionRenewRollout, workflow.DefaultVersion, 1) >= 1 {
		renewRollout(ctx, p, is.Material, req.HostWait, &res)
	} else {
		deployAll(ctx, p.Targets, DeployRequest{Material: is.Material, HostWait: req.HostWait}, res.RequestID, &res)
	}
	failed, all := "", []string{}
	skipped := true
	for _, d := range res.Deploys {
		all = append(all, d.TargetID+" "+d.Outcome)
		if !contract.Succeeded(d.Outcome) && failed == "" {
			failed = d.Outcome
		}
		if d.Outcome != contract.SkippedIdempotent {
			skipped = false
		}
	}
	if failed != "" {
		var why []string
		for _, d := range res.Deploys {
			if d.Error != "" {
				why = append(why, d.TargetID+": "+d.Error)
			}
		}
		msg := "deploy: " + strings.Join(all, ", ") + "; " + strings.Join(why, "; ")
		if res.NotStarted > 0 {
			msg += fmt.Sprintf("; the rollout halted: %d targets not started", res.NotStarted)
		}
		return fail(failed, msg)
	}
	res.Outcome = contract.Deployed
	if skipped {
		res.Outcome = contract.SkippedIdempotent
	}
	workflow.GetLogger(ctx).Info("renewal ended", "request_id", res.RequestID, "outcome", res.Outcome)
	return res, nil
}

// checkDue reads every target's deployed leaf and reports whether one is due.
// A non-empty outcome means the check could not run.
func checkDue(ctx workflow.Context, p profile.Profile, hostWait time.Duration, res *RenewResult) (bool, string, string) {
	now := workflow.Now(ctx)
	futures := make([]workflow.Future, len(p.Targets))
	for i, t := range p.Targets {
		opts := workflow.ActivityOptions{
			ActivityID:             "inspect-" + t.TargetID,
			TaskQueue:              queueFor(t),
			ScheduleToStartTimeout: hostWait,
			StartToCloseTimeout:    30 * time.Second,
			RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 3},
		}
		futures[i] = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ra.InspectDeployed, t)
	}
	due := false
	for i, f := range futures {
		var d renewal.Deployed
		if err := f.Get(ctx, &d); err != nil {
			if isHostTimeout(err) {
				if h := p.Targets[i].Host; h != "" {
					return false, contract.HostUnavailable, fmt.Sprintf("%s (to read %s's certificate)", HostUnavailableMessage(h, hostWait), p.Targets[i].TargetID)
				}
				return false, contract.HostUnavailable, fmt.Sprintf("no worker polled %s to read %s's certificate", queueFor(p.Targets[i]), p.Targets[i].TargetID)
			}
			// When unsure, renew: the approval still gates it, and the
			// deploy says what is wrong with the target.
			d = renewal.Deployed{TargetID: p.Targets[i].TargetID, Path: leafPath(p.Targets[i]), Problem: "could not inspect: " + errMessage(err)}
		}
		res.Checked = append(res.Checked, d)
		if !d.Exists || d.Problem != "" || d.NotAfter.Sub(now) <= p.RenewBefore.D() {
			due = true
		}
	}
	return due, "", ""
}

// askApproval runs ApprovalWorkflow as a child with ID approval/<request-id>.
// A closed request's ID is never reused: a renewal that expired cannot be
// retried into running.
func askApproval(ctx workflow.Context, req RenewRequest, p profile.Profile, bypass bool, requestID string) (ApprovalStatus, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            ApprovalID(requestID),
		TaskQueue:             contract.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	})
	in := ApprovalRequest{
		RequestID: requestID, RequestedBy: strings.TrimSpace(req.RequestedBy), ProfileID: p.ProfileID,
		Subject: p.Subject.String(), SANs: p.SANs, CertID: req.CertID,
		Approvers: p.Approvers, RequiredApprovals: p.RequiredApprovals,
		Timeout: req.ApprovalTimeout, Bypass: bypass,
	}
	var st ApprovalStatus
	err := workflow.ExecuteChildWorkflow(cctx, contract.ApprovalWorkflow, in).Get(ctx, &st)
	return st, err
}

// versionProfileFromWorker is the GetVersion change ID of version 1.
const versionProfileFromWorker = "profile-from-worker"

// loadProfile runs renewal.LoadProfile on the certctl queue: the workflow
// worker's profiles directory and environment.
func loadProfile(ctx workflow.Context, id string) (renewal.ProfileResult, error) {
	opts := workflow.ActivityOptions{
		ActivityID:          "load-profile",
		TaskQueue:           contract.TaskQueue,
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts: 5, NonRetryableErrorTypes: []string{contract.InvalidInput}},
	}
	var lp renewal.ProfileResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ra.LoadProfile, renewal.ProfileInput{ProfileID: id}).Get(ctx, &lp)
	return lp, err
}

func issue(ctx workflow.Context, p profile.Profile, certID, requestID string) (renewal.IssueResult, error) {
	opts := workflow.ActivityOptions{
		ActivityID:          "issue",
		TaskQueue:           contract.TaskQueue,
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			MaximumAttempts: 5, NonRetryableErrorTypes: []string{contract.InvalidInput}},
	}
	var is renewal.IssueResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), ra.Issue, renewal.IssueInput{
		RequestID: requestID, CertID: certID, ProfileID: p.ProfileID, Issuer: p.Issuer,
		Subject: p.Subject, SANs: p.SANs, KeyType: p.KeyType, Validity: p.Validity,
	}).Get(ctx, &is)
	return is, err
}

// deployAll starts one DeployWorkflow per target, all at once, and waits
// for each. A deploy outlives a renewal that is terminated mid-way: it
// finishes or rolls back on its own.
func deployAll(ctx workflow.Context, targets []target.Target, base DeployRequest, requestID string, res *RenewResult) {
	ids := make([]string, len(targets))
	futures := make([]workflow.ChildWorkflowFuture, len(targets))
	for i, t := range targets {
		ids[i] = fmt.Sprintf("deploy/%s/renew-%s", t.TargetID, requestID)
		dctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        ids[i],
			TaskQueue:         contract.TaskQueue,
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		})
		in := base
		in.Target = t
		futures[i] = workflow.ExecuteChildWorkflow(dctx, contract.DeployWorkflow, in)
	}
	for i, f := range futures {
		var dr DeployResult
		if err := f.Get(ctx, &dr); err != nil {
			dr = childResult(err, targets[i].TargetID)
		}
		res.Deploys = append(res.Deploys, RenewDeploy{WorkflowID: ids[i], DeployResult: dr})
	}
}

// leafPath is the file a target's connector says holds its leaf (haproxy's
// pem_path, nginx's cert_path …), for messages; empty when none.
func leafPath(t target.Target) string {
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		return ""
	}
	d, _ := connectors.LeafFile(c, t.Config)
	return d.Path
}

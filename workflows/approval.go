package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/target"
)

// Names an operator types for approvals.
const (
	// SystemBypass decides every request while CERTCTL_APPROVAL_BYPASS=true.
	SystemBypass = "system-bypass"
	// MaxNote bounds a decision's note.
	MaxNote = 1000
)

// States of a request: pending until closed by one of the others.
const (
	StatePending  = "pending"
	StateApproved = "approved"
	StateRejected = "rejected"
	StateExpired  = "expired"
	StateBypassed = "bypassed"
	// StateRefused is a run started under a request ID already used: it
	// ends at once and decides nothing (the earlier run keeps the decision).
	StateRefused = "refused"
)

// ApprovalStates lists every state, for the CLI's --state.
var ApprovalStates = []string{StatePending, StateApproved, StateRejected, StateExpired, StateBypassed, StateRefused}

// Versions of ApprovalWorkflow (workflow.GetVersion). identityVersion: every
// actor is compared after identity.Canonical, a pool with invalid or
// colliding entries is refused at start, and a request ID already used is
// refused (StateRefused). Runs recorded before it keep the old comparison,
// for replay.
const (
	identityChange  = "approval-identity"
	identityVersion = 1
)

// Search attributes of ApprovalWorkflow (contract.SearchAttributes):
// `ApprovalState="pending"` is the inbox.
var (
	ApprovalStateKey     = contract.ApprovalStateKey
	ApprovalProfileKey   = contract.ApprovalProfileKey
	ApprovalDecidedByKey = contract.ApprovalDecidedByKey
)

// ApprovalID is the workflow ID of a request.
func ApprovalID(requestID string) string { return "approval/" + requestID }

// ApprovalRequest is ApprovalWorkflow's input, the JSON an operator may give
// the temporal CLI.
type ApprovalRequest struct {
	RequestID   string   `json:"request_id"`
	RequestedBy string   `json:"requested_by"`
	ProfileID   string   `json:"profile_id"`
	Subject     string   `json:"subject,omitempty"`
	SANs        []string `json:"sans,omitempty"`
	CertID      string   `json:"cert_id,omitempty"`
	// Approvers is the pool; empty means anyone but the requester.
	Approvers []string `json:"approvers,omitempty"`
	// RequiredApprovals distinct approvers must approve; 0 means 1.
	RequiredApprovals int `json:"required_approvals,omitempty"`
	// Timeout expires the request; 0 means 168h. The starter fills it from
	// CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT: workflow code never reads the
	// environment.
	Timeout target.Duration `json:"timeout,omitempty"`
	// Bypass auto-approves as system-bypass (CERTCTL_APPROVAL_BYPASS=true in
	// the starter's environment; dev and CI only).
	Bypass bool `json:"bypass,omitempty"`
}

// Decision is one obeyed decision.
type Decision struct {
	Actor    string    `json:"actor"`
	Decision string    `json:"decision"`
	Note     string    `json:"note"`
	At       time.Time `json:"at"`
}

// Refusal is a signalled decision that was refused: recorded, never obeyed.
// (A refused update never reaches the history: its caller gets the reason.)
type Refusal struct {
	Actor    string    `json:"actor"`
	Decision string    `json:"decision"`
	Note     string    `json:"note"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`
	Via      string    `json:"via"`
}

// ApprovalStatus is the query `state` and the workflow's result.
type ApprovalStatus struct {
	RequestID         string     `json:"request_id"`
	State             string     `json:"state"`
	RequestedBy       string     `json:"requested_by"`
	ProfileID         string     `json:"profile_id"`
	Subject           string     `json:"subject"`
	SANs              []string   `json:"sans"`
	CertID            string     `json:"cert_id,omitempty"`
	Approvers         []string   `json:"approvers"`
	RequiredApprovals int        `json:"required_approvals"`
	Decisions         []Decision `json:"decisions"`
	Refused           []Refusal  `json:"refused"`
	RequestedAt       time.Time  `json:"requested_at"`
	Deadline          time.Time  `json:"deadline"`
	// ClosedAt is when the request left pending.
	ClosedAt *time.Time `json:"closed_at,omitempty"`
}

// Approvals counts the distinct approvals obeyed so far.
func (s ApprovalStatus) Approvals() int {
	seen := map[string]bool{}
	for _, d := range s.Decisions {
		if d.Decision == contract.DecisionApprove {
			seen[profile.ActorKey(d.Actor)] = true
		}
	}
	return len(seen)
}

// DecideInput is the update `decide`'s argument.
type DecideInput struct {
	Actor    string `json:"actor"`
	Decision string `json:"decision"`
	Note     string `json:"note,omitempty"`
}

// SignalInput is the body of the signals `approve` and `reject`.
type SignalInput struct {
	Actor string `json:"actor"`
	Note  string `json:"note,omitempty"`
}

// ApprovalWorkflow holds one request until required_approvals distinct
// approvers approve it, one rejects it, or its deadline passes. Its result
// is the final state (a completed workflow whatever the decision: the
// renewal that waits on it turns rejected and expired into its outcome).
// It fails at once, nothing pending, on invalid input (InvalidInput: a pool
// entry that is no identity, two entries that are one) and when its
// workflow ID already ran (RequestClosed).
func ApprovalWorkflow(ctx workflow.Context, req ApprovalRequest) (ApprovalStatus, error) {
	info := workflow.GetInfo(ctx)
	canon := workflow.GetVersion(ctx, identityChange, workflow.DefaultVersion, identityVersion) >= identityVersion
	in, err := req.check(canon)
	if err != nil {
		return ApprovalStatus{}, err
	}
	timeout := in.timeout
	if info.WorkflowExecution.ID != ApprovalID(req.RequestID) {
		// `certctl approvals` finds a request by approval/<request_id>; a
		// workflow started under another ID still works, by its own ID.
		workflow.GetLogger(ctx).Warn("approval workflow ID is not approval/<request_id>: certctl approvals will not find it by request id",
			"workflow_id", info.WorkflowExecution.ID, "request_id", req.RequestID)
	}
	now := workflow.Now(ctx)
	g := &gate{
		req:   req,
		canon: canon,
		wfID:  info.WorkflowExecution.ID,
		runID: info.WorkflowExecution.RunID,
		status: ApprovalStatus{
			RequestID: req.RequestID, State: StatePending, RequestedBy: in.requestedBy,
			ProfileID: req.ProfileID, Subject: req.Subject, SANs: nonNil(req.SANs), CertID: req.CertID,
			Approvers: in.approvers, RequiredApprovals: req.RequiredApprovals,
			Decisions: []Decision{}, Refused: []Refusal{}, RequestedAt: now, Deadline: now.Add(timeout),
		},
	}
	if g.status.RequiredApprovals == 0 {
		g.status.RequiredApprovals = 1
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryState, func() (ApprovalStatus, error) { return g.snapshot(), nil }); err != nil {
		return ApprovalStatus{}, err
	}
	wake := workflow.NewBufferedChannel(ctx, 1)
	if err := workflow.SetUpdateHandlerWithOptions(ctx, contract.UpdateDecide,
		func(ctx workflow.Context, in DecideInput) (ApprovalStatus, error) {
			who, err := g.refusal(in.Actor, in.Decision, in.Note)
			if err != nil {
				return g.snapshot(), err
			}
			seq := g.apply(ctx, who, in.Decision, in.Note, "update")
			snap := g.snapshot()
			wake.SendAsync(true)
			// The caller hears back once the decision is in the audit log.
			_ = workflow.Await(ctx, func() bool { return g.audited >= seq })
			return snap, nil
		},
		workflow.UpdateHandlerOptions{
			Validator: func(ctx workflow.Context, in DecideInput) error {
				_, err := g.refusal(in.Actor, in.Decision, in.Note)
				if err == nil && !canon {
					err = g.lookAlike(in.Actor)
				}
				if err != nil {
					// Not in history, so not in state or the audit log: the
					// worker's log is where attempts are seen.
					workflow.GetLogger(ctx).Warn("approval decision refused", "request_id", req.RequestID,
						"actor", in.Actor, "decision", in.Decision, "reason", refusalMessage(err))
				}
				return err
			},
			Description: `{"actor":…,"decision":"approve|reject","note":…}: decide the request`,
		}); err != nil {
		return ApprovalStatus{}, err
	}
	g.startAuditor(ctx)
	if canon && info.ContinuedExecutionRunID == "" {
		// The temporal CLI starts a workflow ID again unless told not to:
		// a request ID once used stays used, whoever starts it.
		earlier, err := earlierRuns(ctx, info)
		if err != nil {
			return ApprovalStatus{}, err
		}
		if len(earlier) > 0 {
			return g.refuseReuse(ctx, earlier[0])
		}
	}
	g.record(ctx, audit.Event{Event: audit.Requested, Actor: g.status.RequestedBy, Via: "start"})
	_ = workflow.UpsertTypedSearchAttributes(ctx, ApprovalStateKey.ValueSet(StatePending), ApprovalProfileKey.ValueSet(req.ProfileID))

	approveCh := workflow.GetSignalChannel(ctx, contract.SignalApprove)
	rejectCh := workflow.GetSignalChannel(ctx, contract.SignalReject)
	if req.Bypass {
		g.bypass(ctx)
	} else {
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		deadline := workflow.NewTimerWithOptions(timerCtx, timeout, workflow.TimerOptions{Summary: "approval deadline"})
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(deadline, func(f workflow.Future) {
			if f.Get(ctx, nil) == nil && g.pending() {
				g.expire(ctx)
			}
		})
		sel.AddReceive(approveCh, func(c workflow.ReceiveChannel, _ bool) { g.signal(ctx, c, contract.DecisionApprove) })
		sel.AddReceive(rejectCh, func(c workflow.ReceiveChannel, _ bool) { g.signal(ctx, c, contract.DecisionReject) })
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		g.remindWhenPending(ctx, timerCtx, sel, timeout)
		for g.pending() {
			sel.Select(ctx)
		}
		cancelTimer()
	}

	// Signals that arrive once the request is closed are refused and
	// recorded, never dropped; updates in flight finish; every event is in
	// the audit log before the workflow ends.
	signalsWaiting := func() bool { return approveCh.Len() > 0 || rejectCh.Len() > 0 }
	for {
		for signalsWaiting() {
			if approveCh.Len() > 0 {
				g.signal(ctx, approveCh, contract.DecisionApprove)
			}
			if rejectCh.Len() > 0 {
				g.signal(ctx, rejectCh, contract.DecisionReject)
			}
		}
		done := func() bool { return workflow.AllHandlersFinished(ctx) && g.audited >= g.seq }
		_ = workflow.Await(ctx, func() bool { return done() || signalsWaiting() })
		if done() && !signalsWaiting() {
			break
		}
	}
	return g.snapshot(), nil
}

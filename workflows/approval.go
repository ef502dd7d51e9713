package workflows

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/identity"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/renewal"
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

// Search attributes of ApprovalWorkflow (Keyword, registered by
// temporal-dev.yaml): `ApprovalState="pending"` is the inbox.
var (
	ApprovalStateKey     = temporal.NewSearchAttributeKeyKeyword("ApprovalState")
	ApprovalProfileKey   = temporal.NewSearchAttributeKeyKeyword("ApprovalProfile")
	ApprovalDecidedByKey = temporal.NewSearchAttributeKeyKeyword("ApprovalDecidedBy")
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

// checked is a request's input once validated: the timeout to use, and the
// requester and pool as compared (identity.Canonical under identityVersion,
// trimmed before it).
type checked struct {
	timeout     time.Duration
	requestedBy string
	approvers   []string
}

// check validates the input. With canon, the requester and every approver
// must be identities (identity.Canonical) and no two approvers may be one
// identity once mapped.
func (r *ApprovalRequest) check(canon bool) (checked, error) {
	out := checked{requestedBy: strings.TrimSpace(r.RequestedBy), approvers: []string{}}
	if err := profile.CheckID("request_id", r.RequestID); err != nil {
		return out, invalidInput(err)
	}
	if out.requestedBy == "" {
		return out, contract.Invalid("requested_by", "is required: two-person integrity needs to know who asked")
	}
	if canon {
		c, err := identity.Canonical(r.RequestedBy)
		if err != nil {
			return out, contract.Invalid("requested_by", err.Error())
		}
		out.requestedBy = c
	}
	if err := profile.CheckID("profile_id", r.ProfileID); err != nil {
		return out, invalidInput(err)
	}
	if r.RequiredApprovals < 0 {
		return out, contract.Invalid("required_approvals", "must not be negative")
	}
	m := r.RequiredApprovals
	if m == 0 {
		m = 1
	}
	seen := map[string]int{}
	eligible := 0
	for i, a := range r.Approvers {
		field := fmt.Sprintf("approvers[%d]", i)
		k, entry := profile.ActorKey(a), strings.TrimSpace(a)
		if canon {
			c, err := identity.Canonical(a)
			if err != nil {
				return out, contract.Invalid(field, err.Error()+"; fix the profile's approvers")
			}
			k, entry = c, c
		} else if k == "" {
			return out, contract.Invalid(field, "is empty")
		}
		if j, dup := seen[k]; dup {
			if canon {
				return out, contract.Invalid(field, fmt.Sprintf("%s and approvers[%d] %s are one identity (%s): list each approver once",
					strconv.QuoteToASCII(a), j, strconv.QuoteToASCII(r.Approvers[j]), k))
			}
			return out, contract.Invalid(field, fmt.Sprintf("%q is listed twice", a))
		}
		seen[k] = i
		out.approvers = append(out.approvers, entry)
		if profile.ActorKey(k) != profile.ActorKey(out.requestedBy) {
			eligible++
		}
	}
	if len(r.Approvers) > 0 && m > eligible {
		return out, contract.Invalid("required_approvals", fmt.Sprintf(
			"%d approvals can never be given: the pool has %d approver(s) other than the requester", m, eligible))
	}
	if r.Timeout < 0 {
		return out, contract.Invalid("timeout", "must not be negative")
	}
	out.timeout = r.Timeout.D()
	if r.Timeout == 0 {
		out.timeout = renewal.DefaultApprovalTimeout
	}
	return out, nil
}

func invalidInput(err error) error {
	return contract.InvalidField(err, "input")
}

// gate is one request's state. Every method runs on the workflow's
// coroutines, one at a time.
type gate struct {
	req         ApprovalRequest
	canon       bool // identityVersion: actors compared after identity.Canonical
	wfID, runID string
	status      ApprovalStatus

	queue   []audit.Event // events waiting for the auditor
	seq     int           // events recorded so far
	audited int           // events the audit log holds
}

func (g *gate) pending() bool { return g.status.State == StatePending }

func (g *gate) snapshot() ApprovalStatus {
	s := g.status
	s.SANs = append([]string{}, s.SANs...)
	s.Approvers = append([]string{}, s.Approvers...)
	s.Decisions = append([]Decision{}, s.Decisions...)
	s.Refused = append([]Refusal{}, s.Refused...)
	return s
}

func refuse(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), contract.ApprovalRefused, nil)
}

// refusal says why a decision must not be obeyed, or nil, and who decides
// as recorded (identity.Canonical of actor under identityVersion, trimmed
// before it). It only reads state: the update's validator calls it.
func (g *gate) refusal(actor, decision, note string) (string, error) {
	who := strings.TrimSpace(actor)
	s := &g.status
	if who == "" {
		return "", refuse("actor is empty: say who decides")
	}
	if g.canon {
		c, err := identity.Canonical(actor)
		if err != nil {
			return "", refuse("actor: %v", err)
		}
		who = c
	}
	switch {
	case decision != contract.DecisionApprove && decision != contract.DecisionReject:
		return "", refuse("decision %q: want %q or %q", decision, contract.DecisionApprove, contract.DecisionReject)
	case len(note) > MaxNote:
		return "", refuse("note is longer than %d characters", MaxNote)
	case s.State != StatePending:
		return "", refuse("request %s is already %s: a closed request takes no decisions", s.RequestID, s.State)
	case profile.ActorKey(who) == profile.ActorKey(s.RequestedBy):
		as := ""
		if strings.TrimSpace(actor) != s.RequestedBy {
			as = fmt.Sprintf(" (%q is %s)", actor, s.RequestedBy)
		}
		return "", refuse("two-person integrity: %s requested %s and cannot %s it%s; another approver must decide", s.RequestedBy, s.RequestID, decision, as)
	}
	if len(s.Approvers) > 0 {
		in := false
		for _, a := range s.Approvers {
			if profile.ActorKey(a) == profile.ActorKey(who) {
				in = true
			}
		}
		if !in {
			return "", refuse("%s is not an approver of profile %s (approvers: %s)", who, s.ProfileID, strings.Join(s.Approvers, ", "))
		}
	}
	// Approving twice is refused; an approver who changes their mind may
	// still reject (stopping is always allowed).
	for _, d := range s.Decisions {
		if decision == contract.DecisionApprove && profile.ActorKey(d.Actor) == profile.ActorKey(who) {
			return "", refuse("%s already approved %s: the %d more approval(s) it needs must come from other approvers",
				who, s.RequestID, s.RequiredApprovals-s.Approvals())
		}
	}
	return who, nil
}

// lookAlike is the validator's extra check in runs started before
// identityVersion: an actor identity.Canonical refuses, or one that maps to
// the requester, is refused. A validator's refusal never reaches the
// history, so it may be stricter than the handler, which replays as it ran.
func (g *gate) lookAlike(actor string) error {
	c, err := identity.Canonical(actor)
	if err != nil {
		return refuse("actor: %v", err)
	}
	if r, err := identity.Canonical(g.status.RequestedBy); err == nil && r == c {
		return refuse("two-person integrity: %s requested %s and cannot decide it (%q is %s); another approver must decide",
			g.status.RequestedBy, g.status.RequestID, actor, r)
	}
	return nil
}

// earlierRuns asks visibility, by a local activity on the worker's client,
// for the other runs of this workflow ID, newest first.
func earlierRuns(ctx workflow.Context, info *workflow.Info) ([]activities.EarlierRun, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: 2 * time.Minute,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second},
	})
	var runs []activities.EarlierRun
	err := workflow.ExecuteLocalActivity(lctx, a.EarlierRuns, activities.EarlierRunsInput{
		WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, StateAttribute: ApprovalStateKey.GetName(),
	}).Get(ctx, &runs)
	if err != nil {
		return nil, fmt.Errorf("cannot tell whether %s was used before (visibility did not answer): nothing is pending; start it again later: %w",
			info.WorkflowExecution.ID, err)
	}
	return runs, nil
}

// refuseReuse ends a run started under a request ID already used: nothing
// pending, the refusal audited, the run failed as RequestClosed naming the
// earlier run and its state.
func (g *gate) refuseReuse(ctx workflow.Context, earlier activities.EarlierRun) (ApprovalStatus, error) {
	state := earlier.Status
	if earlier.State != "" {
		state = earlier.State + ", " + earlier.Status
	}
	reason := fmt.Sprintf("request %s (%s) was already used by run %s (%s, started %s): a closed request ID stays closed; ask again under a new request_id",
		g.status.RequestID, g.wfID, earlier.RunID, state, earlier.StartTime.UTC().Format(time.RFC3339))
	now := workflow.Now(ctx)
	s := &g.status
	s.State, s.ClosedAt = StateRefused, &now
	s.Refused = append(s.Refused, Refusal{Actor: s.RequestedBy, At: now, Reason: reason, Via: "start"})
	_ = workflow.UpsertTypedSearchAttributes(ctx, ApprovalStateKey.ValueSet(StateRefused), ApprovalProfileKey.ValueSet(s.ProfileID))
	workflow.GetLogger(ctx).Warn("approval request ID reused: refused", "request_id", s.RequestID, "earlier_run", earlier.RunID, "earlier_state", state)
	seq := g.record(ctx, audit.Event{Event: audit.Refused, Actor: s.RequestedBy, Reason: reason, Via: "start"})
	_ = workflow.Await(ctx, func() bool { return g.audited >= seq && workflow.AllHandlersFinished(ctx) })
	return g.snapshot(), temporal.NewNonRetryableApplicationError(reason, contract.RequestClosed, nil, earlier)
}

// apply obeys a decision that passed refusal and returns its event's sequence.
func (g *gate) apply(ctx workflow.Context, actor, decision, note, via string) int {
	now := workflow.Now(ctx)
	who := strings.TrimSpace(actor)
	s := &g.status
	s.Decisions = append(s.Decisions, Decision{Actor: who, Decision: decision, Note: note, At: now})
	ev := audit.Event{Actor: who, Decision: decision, Note: note, Via: via}
	switch {
	case decision == contract.DecisionReject:
		ev.Event = audit.Rejected
		g.close(ctx, StateRejected, who)
	case s.Approvals() >= s.RequiredApprovals:
		ev.Event = audit.Approved
		g.close(ctx, StateApproved, who)
	default:
		ev.Event = audit.Approved // one approval of several: still pending
	}
	return g.record(ctx, ev)
}

// close ends the request in state, decided by decidedBy ("" for expiry).
func (g *gate) close(ctx workflow.Context, state, decidedBy string) {
	now := workflow.Now(ctx)
	g.status.State, g.status.ClosedAt = state, &now
	upserts := []temporal.SearchAttributeUpdate{ApprovalStateKey.ValueSet(state)}
	if decidedBy != "" {
		upserts = append(upserts, ApprovalDecidedByKey.ValueSet(decidedBy))
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, upserts...)
	workflow.GetLogger(ctx).Info("approval request closed", "request_id", g.status.RequestID, "state", state, "decided_by", decidedBy)
}

func (g *gate) expire(ctx workflow.Context) {
	g.close(ctx, StateExpired, "")
	g.record(ctx, audit.Event{Event: audit.Expired, Via: "timer"})
}

func (g *gate) bypass(ctx workflow.Context) {
	workflow.GetLogger(ctx).Warn("approval bypassed: CERTCTL_APPROVAL_BYPASS=true (dev and CI only)", "request_id", g.status.RequestID)
	now := workflow.Now(ctx)
	note := "CERTCTL_APPROVAL_BYPASS=true"
	g.status.Decisions = append(g.status.Decisions, Decision{Actor: SystemBypass, Decision: contract.DecisionApprove, Note: note, At: now})
	g.close(ctx, StateBypassed, SystemBypass)
	g.record(ctx, audit.Event{Event: audit.Bypassed, Actor: SystemBypass, Decision: contract.DecisionApprove, Note: note, Via: "bypass"})
}

// signal takes one signal off c and obeys or refuses it.
func (g *gate) signal(ctx workflow.Context, c workflow.ReceiveChannel, decision string) {
	// A raw value always decodes, so a malformed body is refused and
	// recorded rather than dropped by the SDK.
	var raw converter.RawValue
	if !c.ReceiveAsync(&raw) {
		return
	}
	var in SignalInput
	if raw.Payload() == nil || converter.GetDefaultDataConverter().FromPayload(raw.Payload(), &in) != nil {
		g.refuse(ctx, in, decision, `the body is not {"actor":…,"note":…}`)
		return
	}
	who, err := g.refusal(in.Actor, decision, in.Note)
	if err != nil {
		g.refuse(ctx, in, decision, refusalMessage(err))
		return
	}
	g.apply(ctx, who, decision, in.Note, "signal")
}

func (g *gate) refuse(ctx workflow.Context, in SignalInput, decision, reason string) {
	note := in.Note
	if len(note) > MaxNote {
		note = note[:MaxNote] + "…"
	}
	who := strings.TrimSpace(in.Actor)
	g.status.Refused = append(g.status.Refused, Refusal{Actor: who, Decision: decision, Note: note, At: workflow.Now(ctx), Reason: reason, Via: "signal"})
	workflow.GetLogger(ctx).Warn("approval signal refused", "request_id", g.status.RequestID, "actor", who, "decision", decision, "reason", reason)
	g.record(ctx, audit.Event{Event: audit.Refused, Actor: who, Decision: decision, Note: note, Reason: reason, Via: "signal"})
}

func refusalMessage(err error) string {
	if ae, ok := err.(*temporal.ApplicationError); ok {
		return ae.Message()
	}
	return err.Error()
}

// record queues an audit event, filling what every event carries, and
// returns its sequence number.
func (g *gate) record(ctx workflow.Context, ev audit.Event) int {
	g.seq++
	s := &g.status
	ev.ID = fmt.Sprintf("%s:%s#%d", g.wfID, g.runID, g.seq)
	ev.Time = workflow.Now(ctx).UTC()
	ev.RequestID, ev.WorkflowID, ev.RunID = s.RequestID, g.wfID, g.runID
	ev.ProfileID, ev.State, ev.RequestedBy = s.ProfileID, s.State, s.RequestedBy
	ev.Subject, ev.CertID = s.Subject, s.CertID
	if s.State != StatePending && s.ClosedAt != nil && ev.Event != audit.Refused && ev.Event != audit.Requested {
		ev.PendingSeconds = s.ClosedAt.Sub(s.RequestedAt).Seconds()
	}
	g.queue = append(g.queue, ev)
	return g.seq
}

// startAuditor writes queued events in order, one activity each: the log's
// lines follow the history's order.
func (g *gate) startAuditor(ctx workflow.Context) {
	opts := workflow.ActivityOptions{
		TaskQueue:           contract.TaskQueue,
		StartToCloseTimeout: 30 * time.Second,
		// The audit line must be written: retry until it is (the pending
		// activity and its last error show in the Web UI).
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			_ = workflow.Await(ctx, func() bool { return len(g.queue) > 0 })
			ev := g.queue[0]
			var res renewal.AuditResult
			if err := workflow.ExecuteActivity(actx, ra.Audit, ev).Get(ctx, &res); err != nil {
				workflow.GetLogger(ctx).Error("audit event not written", "id", ev.ID, "error", err)
			}
			g.queue = g.queue[1:]
			g.audited++
		}
	})
}

var ra *renewal.Activities

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

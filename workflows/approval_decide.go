package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/identity"
	"github.com/certctl/certctl/profile"
)

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

func refusalMessage(err error) string {
	if ae, ok := err.(*temporal.ApplicationError); ok {
		return ae.Message()
	}
	return err.Error()
}

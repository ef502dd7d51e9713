package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// RolloutID is the workflow ID of rollout id: "rollout/<id>".
func RolloutID(id string) string { return contract.RolloutIDPrefix + id }

// Rollout defaults, for what a request leaves unset.
const (
	DefaultRolloutCanary = 1
	DefaultRolloutBatch  = 10
	// DefaultContinueAfter is how many deploys one run of a rollout starts
	// before it continues as new: each costs the rollout's history about
	// five to seven events (make bench), so a run stays under 3,500 events
	// whatever the fleet.
	DefaultContinueAfter = 500
	// MinStallAfter is the least stall_after, and the default's floor: a
	// live host worker completes a workflow task of its deploy at least
	// every workflowTaskTimeout (a step that runs longer heartbeats it),
	// and a dead one's task times out after as long, so three of them is
	// a wait no live worker makes.
	MinStallAfter = 3 * workflowTaskTimeout
	// workflowTaskTimeout is the deploy's workflow task timeout (the
	// server's default, which certctl does not change).
	workflowTaskTimeout = 10 * time.Second
	// rolloutRecent is how many finished deploys the progress query lists
	// (the CLI prints each as it sees it).
	rolloutRecent = 64
)

// RolloutRequest is RolloutWorkflow's input: one certificate for many
// targets, the JSON a temporal CLI user may give too.
type RolloutRequest struct {
	// Targets, in the order they are deployed: the first Canary of them
	// are the canary.
	Targets  []target.Target   `json:"targets"`
	Material material.Material `json:"material"`
	// Canary is how many targets go first, all of which must succeed
	// before any other starts (absent: 1; 0: no canary).
	Canary *int `json:"canary,omitempty"`
	// Batch is how many deploys run at once (absent or 0: 10). A new one
	// starts as soon as one ends.
	Batch int `json:"batch,omitempty"`
	// MaxFailures is how many targets after the canary may fail before the
	// rollout halts (0: the first failure halts it).
	MaxFailures   int  `json:"max_failures,omitempty"`
	DryRun        bool `json:"dry_run,omitempty"`
	ForceValidity bool `json:"force_validity,omitempty"`
	// HostWait bounds each deploy's wait for its host's worker (default
	// 5m): past it the target counts as failed, HostUnavailable, and the
	// rollout goes on with the others.
	HostWait target.Duration `json:"host_wait,omitempty"`
	// StallAfter bounds how long the rollout waits for a deploy that was
	// picked up and then makes no progress, a task of it waiting for the
	// host's worker (at least MinStallAfter; absent: host_wait, or
	// MinStallAfter if that is longer): past it the target counts as
	// failed, HostLost, its slot is freed, and the deploy is left to
	// finish or roll back when its worker returns (hostLostChange).
	StallAfter       target.Duration `json:"stall_after,omitempty"`
	HeartbeatTimeout target.Duration `json:"heartbeat_timeout,omitempty"`
	// ContinueAfter is how many deploys a run starts before it continues
	// as new (0: DefaultContinueAfter).
	ContinueAfter int `json:"continue_after,omitempty"`
	// Carried is what earlier runs of this rollout did; set by the
	// rollout itself when it continues as new, never by a starter.
	Carried *RolloutCarried `json:"carried,omitempty"`
}

// RolloutCarried is a rollout's state across continue-as-new: Targets then
// holds only the targets not started yet, the first of them number Offset
// of the whole.
type RolloutCarried struct {
	Offset    int              `json:"offset"`
	Total     int              `json:"total"`
	Succeeded int              `json:"succeeded"`
	Outcomes  map[string]int   `json:"outcomes"`
	Failed    []RolloutFailure `json:"failed"`
	Recent    []RolloutDone    `json:"recent"`
	Done      int              `json:"done"`
	Paused    bool             `json:"paused"`
	Runs      int              `json:"runs"`
}

// RolloutFailure is one target that did not succeed.
type RolloutFailure struct {
	TargetID   string `json:"target_id"`
	Outcome    string `json:"outcome"`
	Error      string `json:"error,omitempty"`
	WorkflowID string `json:"workflow_id"`
}

// RolloutDone is one finished deploy; Seq counts them from 1 across the
// whole rollout, so a follower knows what it has already seen.
type RolloutDone struct {
	Seq        int    `json:"seq"`
	TargetID   string `json:"target_id"`
	Outcome    string `json:"outcome"`
	Ms         int64  `json:"ms"`
	WorkflowID string `json:"workflow_id"`
	Error      string `json:"error,omitempty"`
}

// RolloutProgress is the answer to the progress query.
type RolloutProgress struct {
	Total     int              `json:"total"`
	Succeeded int              `json:"succeeded"`
	Failed    []RolloutFailure `json:"failed"`
	InFlight  []string         `json:"in_flight"`
	Pending   int              `json:"pending"`
	State     string           `json:"state"`
	// Phase is "canary" until every canary has succeeded, then "batches".
	Phase    string         `json:"phase"`
	Outcomes map[string]int `json:"outcomes"`
	Done     int            `json:"done"`
	Recent   []RolloutDone  `json:"recent,omitempty"`
	// Run counts continue-as-new: 0 in the rollout's first run.
	Run int `json:"run"`
}

// RolloutResult is RolloutWorkflow's result, and the details of its
// failure.
type RolloutResult struct {
	Outcome   string         `json:"outcome"`
	RolloutID string         `json:"rollout_id"`
	Total     int            `json:"total"`
	Succeeded int            `json:"succeeded"`
	Outcomes  map[string]int `json:"outcomes"`
	// Failed lists every target that did not succeed, with its outcome.
	Failed []RolloutFailure `json:"failed"`
	// NotStarted counts the targets a halted rollout never touched.
	NotStarted int    `json:"not_started"`
	Error      string `json:"error,omitempty"`
}

// RolloutWorkflow lands one certificate on many targets, each a child
// DeployWorkflow on its target's own path (started on the host's queue,
// where the host's worker runs it: the host run), visible and searchable on
// its own (CertctlTarget), with its own rollback. The canary goes first and
// must all succeed; then up to Batch deploys run at once, a new one as soon
// as one ends. A failed canary, or more than MaxFailures failed targets
// after it, halts the rollout: it starts nothing new, lets the deploys in
// flight end, and fails RolloutHalted naming each failed target. A target
// whose host's worker does not pick its deploy up within host_wait counts
// as failed (HostUnavailable) without holding up the others; one whose
// worker picked it up and then made no progress for stall_after counts as
// failed too (HostLost), its slot freed, the deploy left to finish or roll
// back when its worker returns (hostLostChange). Signals pause
// and resume stop and restart the starting of deploys; the progress query
// says where it is. Every ContinueAfter deploys it continues as new, once
// those in flight have ended, so its history stays bounded.
func RolloutWorkflow(ctx workflow.Context, req RolloutRequest) (RolloutResult, error) {
	r, err := newRollout(ctx, req)
	if err == nil {
		err = r.checkDeployIDs()
	}
	if err != nil {
		return r.result(contract.InvalidInput, errMessage(err)), temporal.NewNonRetryableApplicationError(errMessage(err), contract.InvalidInput, nil, r.result(contract.InvalidInput, errMessage(err)))
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryProgress, func() (RolloutProgress, error) { return r.progress(), nil }); err != nil {
		return RolloutResult{}, err
	}
	r.run(ctx)
	if ctx.Err() != nil {
		// Cancelled (temporal workflow cancel): nothing new was started
		// after it; the deploys in flight were asked to cancel too, and
		// each ended as a cancelled deploy does (finished or rolled back
		// once past its plan).
		res := r.result(contract.RolloutHalted, "cancelled; "+r.haltReason())
		return res, temporal.NewCanceledError(res)
	}
	if r.next < len(r.req.Targets) && !r.halted() {
		r.drainSignals(ctx)
		return RolloutResult{}, workflow.NewContinueAsNewError(ctx, contract.RolloutWorkflow, r.carry())
	}
	if r.halted() {
		res := r.result(contract.RolloutHalted, r.haltReason())
		r.notifyHalted(ctx, res)
		return res, temporal.NewNonRetryableApplicationError(res.Error, contract.RolloutHalted, nil, res)
	}
	return r.result(contract.RolloutCompleted, ""), nil
}

// rollout is one run's state.
type rollout struct {
	// ctx is the run's context: cancelled, the rollout starts nothing new.
	ctx                  workflow.Context
	id                   string
	req                  RolloutRequest
	canary, batch, limit int
	hostWait             time.Duration
	// stallAfter is StallAfter or its default; hostLost is the version of
	// hostLostChange, asked (asked) when the first deploy is known to have
	// been picked up.
	stallAfter time.Duration
	hostLost   workflow.Version
	asked      bool
	c          RolloutCarried
	// next indexes req.Targets: the next target to start.
	next int
	// started counts the deploys this run started (continue-as-new).
	started int
	flight  []*inFlight
	sel     workflow.Selector
	// watching: the host-wait timer is armed (watch).
	watching bool
	// afterCancel is the host wait's context once the rollout is
	// cancelled (hostWaitCtx).
	afterCancel workflow.Context
	// canaryFailed: a canary did not succeed.
	canaryFailed bool
	// childID names a target's deploy (RolloutDeployID by default; a
	// renewal names its own).
	childID func(target.Target) string
	// onDone, when set, is told each deploy that ended, with its target's
	// number in the whole rollout.
	onDone func(index int, workflowID string, dr DeployResult)
}

func newRollout(ctx workflow.Context, req RolloutRequest) (*rollout, error) {
	r := &rollout{id: strings.TrimPrefix(workflow.GetInfo(ctx).WorkflowExecution.ID, contract.RolloutIDPrefix), req: req, ctx: ctx, hostLost: workflow.DefaultVersion}
	r.childID = func(t target.Target) string { return RolloutDeployID(r.id, t.TargetID) }
	r.canary, r.batch, r.limit = DefaultRolloutCanary, req.Batch, req.ContinueAfter
	if req.Canary != nil {
		r.canary = *req.Canary
	}
	if r.batch == 0 {
		r.batch = DefaultRolloutBatch
	}
	if r.limit <= 0 {
		r.limit = DefaultContinueAfter
	}
	r.hostWait = req.HostWait.D()
	if r.hostWait <= 0 {
		r.hostWait = DefaultHostWait
	}
	r.stallAfter = req.StallAfter.D()
	if r.stallAfter <= 0 {
		r.stallAfter = max(r.hostWait, MinStallAfter)
	}
	if req.Carried != nil {
		r.c = *req.Carried
	} else {
		r.c = RolloutCarried{Total: len(req.Targets)}
	}
	if r.c.Outcomes == nil {
		r.c.Outcomes = map[string]int{}
	}
	r.sel = workflow.NewSelector(ctx)
	switch {
	case len(req.Targets) == 0 && req.Carried == nil:
		return r, contract.Invalid("targets", "is empty: a rollout needs at least one target")
	case r.canary < 0:
		return r, contract.Invalid("canary", fmt.Sprintf("is %d: want 0 or more", r.canary))
	case r.batch < 0:
		return r, contract.Invalid("batch", fmt.Sprintf("is %d: want 1 or more", r.batch))
	case req.MaxFailures < 0:
		return r, contract.Invalid("max_failures", fmt.Sprintf("is %d: want 0 or more", req.MaxFailures))
	case req.StallAfter != 0 && req.StallAfter.D() < MinStallAfter:
		return r, contract.Invalid("stall_after", fmt.Sprintf("is %s: want %s or more (a live worker may hold a workflow task up to its %s timeout), or none for host_wait", req.StallAfter.D(), MinStallAfter, workflowTaskTimeout))
	}
	seen := map[string]int{}
	for i, t := range req.Targets {
		if err := t.Validate(); err != nil {
			return r, contract.Invalid(fmt.Sprintf("targets[%d]", r.c.Offset+i), err.Error())
		}
		if j, dup := seen[t.TargetID]; dup {
			return r, contract.Invalid(fmt.Sprintf("targets[%d]", r.c.Offset+i), fmt.Sprintf("target_id %q is also targets[%d]: a rollout deploys each target once", t.TargetID, r.c.Offset+j))
		}
		seen[t.TargetID] = i
	}
	return r, nil
}

// checkDeployIDs refuses, before any deploy starts, a target whose
// deploy's workflow ID the server would refuse (CheckRolloutDeployID).
func (r *rollout) checkDeployIDs() error {
	for i, t := range r.req.Targets {
		if err := CheckRolloutDeployID(r.id, t); err != nil {
			return contract.Invalid(fmt.Sprintf("targets[%d]", r.c.Offset+i), err.Error())
		}
	}
	return nil
}

// inCanary says whether target number i (of the whole rollout) is a canary.
func (r *rollout) inCanary(i int) bool { return i < r.canary }

// canaryDone: every canary has ended and succeeded.
func (r *rollout) canaryDone() bool {
	return r.c.Offset+r.next >= r.canary && !r.anyCanaryInFlight() && !r.canaryFailed
}

func (r *rollout) anyCanaryInFlight() bool {
	for _, f := range r.flight {
		if r.inCanary(f.index) {
			return true
		}
	}
	return false
}

func (r *rollout) halted() bool {
	return r.canaryFailed || len(r.c.Failed) > r.req.MaxFailures
}

func (r *rollout) haltReason() string {
	var parts []string
	for _, f := range r.c.Failed {
		parts = append(parts, f.TargetID+" "+f.Outcome)
	}
	failed := fmt.Sprintf("%d failed (max_failures %d): %s", len(r.c.Failed), r.req.MaxFailures, strings.Join(parts, ", "))
	switch {
	case r.canaryFailed:
		failed = "the canary failed: " + strings.Join(parts, ", ")
	case len(parts) == 0:
		failed = "none failed"
	}
	return fmt.Sprintf("%s; %d targets not started", failed, r.c.Total-r.c.Offset-r.next)
}

// mayStart says whether the next target may start now.
func (r *rollout) mayStart() bool {
	if r.next >= len(r.req.Targets) || r.halted() || r.c.Paused || r.started >= r.limit || len(r.flight) >= r.batch || r.ctx.Err() != nil {
		return false
	}
	if r.inCanary(r.c.Offset + r.next) {
		return true
	}
	return r.canaryDone()
}

// run starts deploys while it may and waits for them, the signals and the
// host-wait timer, until nothing is in flight and nothing more may start.
func (r *rollout) run(ctx workflow.Context) {
	pause := workflow.GetSignalChannel(ctx, contract.SignalPause)
	resume := workflow.GetSignalChannel(ctx, contract.SignalResume)
	r.sel.AddReceive(pause, func(ch workflow.ReceiveChannel, _ bool) {
		ch.Receive(ctx, nil)
		r.c.Paused = true
	})
	r.sel.AddReceive(resume, func(ch workflow.ReceiveChannel, _ bool) {
		ch.Receive(ctx, nil)
		r.c.Paused = false
	})
	for {
		for r.mayStart() {
			r.start(ctx)
		}
		r.watch(ctx)
		if len(r.flight) == 0 && !r.waitingForResume() {
			return
		}
		r.sel.Select(ctx)
	}
}

// waitingForResume: paused with targets left that would start on resume.
func (r *rollout) waitingForResume() bool {
	return r.c.Paused && r.next < len(r.req.Targets) && !r.halted() && r.started < r.limit && r.ctx.Err() == nil
}

// drainSignals applies the signals that arrived but were not yet read, so
// that continue-as-new loses none.
func (r *rollout) drainSignals(ctx workflow.Context) {
	for {
		sel := workflow.NewSelector(ctx)
		got := false
		sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalPause), func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			r.c.Paused, got = true, true
		})
		sel.AddReceive(workflow.GetSignalChannel(ctx, contract.SignalResume), func(ch workflow.ReceiveChannel, _ bool) {
			ch.Receive(ctx, nil)
			r.c.Paused, got = false, true
		})
		sel.AddDefault(func() {})
		sel.Select(ctx)
		if !got {
			return
		}
	}
}

// carry is the next run's request. It pins what the defaults gave this
// run (canary, batch, host_wait, continue_after): a later change to a
// default changes neither what the next runs do nor how they replay.
func (r *rollout) carry() RolloutRequest {
	next := r.req
	canary := r.canary
	next.Canary, next.Batch, next.ContinueAfter, next.HostWait = &canary, r.batch, r.limit, target.Duration(r.hostWait)
	if r.hostLost >= hostLostVersion {
		// Pinned only by runs that watch for lost hosts: the input of a
		// run recorded before hostLostChange stays what it was.
		next.StallAfter = target.Duration(r.stallAfter)
	}
	next.Targets = r.req.Targets[r.next:]
	c := r.c
	c.Offset += r.next
	c.Runs++
	// The next run's input is one payload with the material's key, and
	// the codec compresses a payload this large before it encrypts it: no
	// text that is not the operator's may ride along (a deploy's error can
	// quote what a server or a command printed), or the ciphertext's length
	// could say whether that text repeats part of the key. Outcomes, target
	// and workflow IDs go on; each deploy's error stays in its own result.
	c.Failed = make([]RolloutFailure, len(r.c.Failed))
	for i, f := range r.c.Failed {
		f.Error = ""
		c.Failed[i] = f
	}
	c.Recent = make([]RolloutDone, len(r.c.Recent))
	for i, d := range r.c.Recent {
		d.Error = ""
		c.Recent[i] = d
	}
	next.Carried = &c
	return next
}

func (r *rollout) progress() RolloutProgress {
	p := RolloutProgress{
		Total: r.c.Total, Succeeded: r.c.Succeeded, Failed: r.c.Failed, InFlight: []string{},
		Pending: len(r.req.Targets) - r.next, State: contract.RolloutRunning, Phase: "batches",
		Outcomes: r.c.Outcomes, Done: r.c.Done, Recent: r.c.Recent, Run: r.c.Runs,
	}
	if p.Failed == nil {
		p.Failed = []RolloutFailure{}
	}
	for _, f := range r.flight {
		p.InFlight = append(p.InFlight, r.req.Targets[f.index-r.c.Offset].TargetID)
	}
	if r.c.Offset+r.next < r.canary || r.anyCanaryInFlight() || r.canaryFailed {
		p.Phase = "canary"
	}
	switch {
	case r.halted():
		p.State = contract.RolloutHaltState
	case r.c.Paused:
		p.State = contract.RolloutPaused
	case p.Pending == 0 && len(r.flight) == 0:
		p.State = contract.RolloutFinished
	}
	return p
}

func (r *rollout) result(outcome, msg string) RolloutResult {
	res := RolloutResult{
		Outcome: outcome, RolloutID: RolloutID(r.id), Total: r.c.Total, Succeeded: r.c.Succeeded,
		Outcomes: r.c.Outcomes, Failed: r.c.Failed, Error: msg,
	}
	if res.Failed == nil {
		res.Failed = []RolloutFailure{}
	}
	if outcome == contract.RolloutHalted {
		res.NotStarted = r.c.Total - r.c.Offset - r.next
	}
	return res
}

// record counts one finished deploy.
func (r *rollout) record(f *inFlight, dr DeployResult, ms int64) {
	r.c.Done++
	r.c.Outcomes[dr.Outcome]++
	if contract.Succeeded(dr.Outcome) {
		r.c.Succeeded++
	} else {
		r.c.Failed = append(r.c.Failed, RolloutFailure{TargetID: dr.TargetID, Outcome: dr.Outcome, Error: dr.Error, WorkflowID: f.id})
		if r.inCanary(f.index) {
			r.canaryFailed = true
		}
	}
	if r.onDone != nil {
		r.onDone(f.index, f.id, dr)
	}
	r.c.Recent = append(r.c.Recent, RolloutDone{Seq: r.c.Done, TargetID: dr.TargetID, Outcome: dr.Outcome, Ms: ms, WorkflowID: f.id, Error: dr.Error})
	if n := len(r.c.Recent); n > rolloutRecent {
		r.c.Recent = append([]RolloutDone(nil), r.c.Recent[n-rolloutRecent:]...)
	}
}

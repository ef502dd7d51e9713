package main

import (
	"context"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/workflows"
)

// progressEvent is one thing a deploy did, read from its history as it
// happens: what `--output events` prints, one JSON object a line, and what
// the terminal and plain renderers (progress_render.go) draw. The schema is
// in docs/operator.md "Following a deploy"; fields may be added, none
// renamed.
type progressEvent struct {
	// Event is started, waiting, picked_up, step_started, step_ended,
	// verify_attempt, wait (then outcome and detached, written by runDeploy).
	Event string    `json:"event"`
	Time  time.Time `json:"time"`
	// WorkflowID is the run the event is of: the deploy, or its host run
	// "<id>/host".
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id,omitempty"`
	// TaskQueue (started, waiting, picked_up) is the run's queue.
	TaskQueue string `json:"task_queue,omitempty"`
	// LimitMs (waiting) is how long a host run waits for its worker
	// (host_wait) before HostUnavailable; absent on "certctl".
	LimitMs int64 `json:"limit_ms,omitempty"`
	// Worker (picked_up) is the identity of the worker that took the run.
	Worker string `json:"worker,omitempty"`
	Step   string `json:"step,omitempty"`
	// Ms: picked_up, how long the run waited; step_ended and
	// verify_attempt, how long it took.
	Ms       int64  `json:"ms,omitempty"`
	Failed   bool   `json:"failed,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Error    string `json:"error,omitempty"`
	// Attempt and Attempts (verify_attempt, wait after one): which attempt
	// of how many post_deploy_verify_attempts.
	Attempt  int `json:"attempt,omitempty"`
	Attempts int `json:"attempts,omitempty"`
	// Reason (wait): verify_backoff (the next verify attempt comes after
	// WaitMs) or lock (another deploy holds WaitingFor; asked again after
	// WaitMs).
	Reason     string   `json:"reason,omitempty"`
	WaitMs     int64    `json:"wait_ms,omitempty"`
	WaitingFor []string `json:"waiting_for,omitempty"`
}

// Wait reasons.
const (
	waitVerifyBackoff = "verify_backoff"
	waitLock          = "lock"
)

// follower turns one run's history events into progress events. A step
// that is an activity is seen when it is scheduled and when it completes;
// steps that are local activities (the host run's) when the workflow task
// that ran them completes, named by their Summary, timed by their marker.
type follower struct {
	dc   converter.DataConverter
	emit func(progressEvent)
	// printed: the steps a step_ended was emitted for.
	printed map[string]bool

	id, runID string
	queue     string
	hostWait  time.Duration
	attempts  int // post_deploy_verify_attempts in effect
	names     map[int64]string
	scheduled map[int64]time.Time
	// taskScheduled is when the first workflow task was scheduled; picked:
	// a worker started it.
	taskScheduled time.Time
	picked        bool
	// last is when the previous local activity ended (or the workflow task
	// that ran it started).
	last time.Time
	// verify attempts of the step under way: its name, count, start; a
	// failed attempt waits for the next event to say whether a timer (the
	// next attempt) or the step's end follows.
	vStep    string
	vCount   int
	vStart   time.Time
	pending  *progressEvent
	lockWait []string
}

func newFollower(dc converter.DataConverter, emit func(progressEvent), printed map[string]bool, id, runID string) *follower {
	return &follower{dc: dc, emit: emit, printed: printed, id: id, runID: runID,
		names: map[int64]string{}, scheduled: map[int64]time.Time{}}
}

// followRun follows a run's history with long polls until it closes; a
// host run the deploy delegates to (a child "<id>/host") is followed in
// turn, then the deploy again.
func followRun(ctx context.Context, c client.Client, id, runID string, dc converter.DataConverter, emit func(progressEvent), printed map[string]bool) {
	f := newFollower(dc, emit, printed, id, runID)
	defer f.flush()
	it := c.GetWorkflowHistory(ctx, id, runID, true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return
		}
		if we := ev.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution(); we != nil && strings.HasSuffix(we.GetWorkflowId(), contract.HostRunSuffix) {
			f.flush()
			followRun(ctx, c, we.GetWorkflowId(), we.GetRunId(), dc, emit, printed)
			continue
		}
		f.handle(ev)
	}
}

func (f *follower) send(e progressEvent) {
	e.WorkflowID = f.id
	if e.Event == "step_ended" {
		f.printed[e.Step] = true
	}
	f.emit(e)
}

// flush ends a verify step whose last attempt failed with no next attempt.
func (f *follower) flush() {
	if f.pending == nil {
		return
	}
	p := *f.pending
	f.pending = nil
	f.send(p)
	f.send(progressEvent{Event: "step_ended", Time: p.Time, Step: p.Step, Ms: p.Time.Sub(f.vStart).Milliseconds(), Failed: true, Error: p.Error})
}

// handle reads one history event.
func (f *follower) handle(ev *historypb.HistoryEvent) {
	at := ev.GetEventTime().AsTime()
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		f.timer(ev)
		return
	case enumspb.EVENT_TYPE_MARKER_RECORDED, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		// A version marker or its search attribute comes between a failed
		// attempt and its timer.
		if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "LocalActivity" {
			f.flush()
			f.marker(ev)
		}
		return
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
	default:
		f.flush()
	}
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		a := ev.GetWorkflowExecutionStartedEventAttributes()
		f.queue = a.GetTaskQueue().GetName()
		f.scheduled[0] = at
		f.readRequest(a.GetInput())
		f.send(progressEvent{Event: "started", Time: at, RunID: f.runID, TaskQueue: f.queue})
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
		if f.taskScheduled.IsZero() {
			f.taskScheduled = at
			e := progressEvent{Event: "waiting", Time: at, TaskQueue: f.queue}
			if strings.HasPrefix(f.queue, contract.HostQueuePrefix) {
				e.LimitMs = f.hostWait.Milliseconds()
			}
			f.send(e)
		}
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
		f.last = at
		if !f.picked {
			f.picked = true
			f.send(progressEvent{Event: "picked_up", Time: at, TaskQueue: f.queue, Worker: strings.TrimSuffix(ev.GetWorkflowTaskStartedEventAttributes().GetIdentity(), "@"),
				Ms: at.Sub(f.taskScheduled).Milliseconds()})
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		if ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == contract.LockGrantedSignal {
			f.step(string(contract.StepLock), f.scheduled[0], at, nil, false)
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		name := ev.GetActivityTaskScheduledEventAttributes().GetActivityId()
		f.names[ev.GetEventId()] = name
		f.scheduled[ev.GetEventId()] = at
		f.send(progressEvent{Event: "step_started", Time: at, Step: name})
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		id := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
		f.ended(f.names[id], f.scheduled[id], at, nil, false)
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		a := ev.GetActivityTaskFailedEventAttributes()
		f.ended(f.names[a.GetScheduledEventId()], f.scheduled[a.GetScheduledEventId()], at, a.GetFailure(), false)
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		id := ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
		f.ended(f.names[id], f.scheduled[id], at, nil, true)
	}
}

// readRequest learns host_wait and the verify policy from the run's input
// (decoded with this certctl's codec; the material is not kept).
func (f *follower) readRequest(in *commonpb.Payloads) {
	var req struct {
		Target   target.Target   `json:"target"`
		HostWait target.Duration `json:"host_wait"`
	}
	f.hostWait = workflows.DefaultHostWait
	if in == nil || f.dc.FromPayloads(in, &req) != nil {
		return
	}
	if d := req.HostWait.D(); d > 0 {
		f.hostWait = d
	}
	f.attempts, _, _, _ = req.Target.Config.VerifyPolicy()
	if c, err := connectors.Get(req.Target.TargetType); err == nil && connectors.VerifiesByReadBack(c) {
		f.attempts = 1
	}
}

// step emits a step that is seen once it ended (a local activity, a lock
// granted by signal): its start, then its end.
func (f *follower) step(name string, start, end time.Time, fl *failurepb.Failure, timedOut bool) {
	f.send(progressEvent{Event: "step_started", Time: start, Step: name})
	f.ended(name, start, end, fl, timedOut)
}

func (f *follower) ended(name string, start, end time.Time, fl *failurepb.Failure, timedOut bool) {
	e := progressEvent{Event: "step_ended", Time: end, Step: name, Ms: end.Sub(start).Milliseconds(), TimedOut: timedOut, Failed: timedOut}
	if fl != nil {
		e.Failed, e.Error = true, f.message(fl)
	}
	f.send(e)
}

// marker reads a local activity's marker: a step, a verify attempt, or a
// lock not granted yet (a wait follows).
func (f *follower) marker(ev *historypb.HistoryEvent) {
	m := ev.GetMarkerRecordedEventAttributes()
	var name string
	if p := ev.GetUserMetadata().GetSummary(); p == nil || f.dc.FromPayload(p, &name) != nil || name == "" {
		return
	}
	var data struct {
		ReplayTime time.Time
		Attempt    int
	}
	end := ev.GetEventTime().AsTime()
	if p := m.GetDetails()["data"]; p != nil && f.dc.FromPayloads(p, &data) == nil && !data.ReplayTime.IsZero() {
		end = data.ReplayTime
	}
	start := f.last
	f.last = end
	if name == string(contract.StepLock) && m.GetFailure() == nil {
		var r activities.LockResult
		if p := m.GetDetails()["result"]; p == nil || f.dc.FromPayloads(p, &r) != nil || !r.Granted {
			f.lockWait = r.WaitingFor
			return
		}
	}
	if name != string(contract.StepVerify) && name != string(contract.StepRollbackVerify) {
		f.step(name, start, end, m.GetFailure(), false)
		return
	}
	if f.vStep != name {
		f.vStep, f.vCount, f.vStart = name, 0, start
		f.send(progressEvent{Event: "step_started", Time: start, Step: name})
	}
	f.vCount++
	attempt := f.vCount
	if attempt == 1 && data.Attempt > 1 {
		// Recorded before the verify loop: one marker after all retries.
		attempt = data.Attempt
	}
	e := progressEvent{Event: "verify_attempt", Time: end, Step: name, Attempt: attempt, Attempts: max(f.attempts, attempt), Ms: end.Sub(start).Milliseconds()}
	if fl := m.GetFailure(); fl != nil {
		e.Failed, e.Error = true, f.message(fl)
		f.pending = &e
		return
	}
	f.send(e)
	f.send(progressEvent{Event: "step_ended", Time: end, Step: name, Ms: end.Sub(f.vStart).Milliseconds()})
	f.vStep = ""
}

// timer: the wait before the next verify attempt, or before asking for the
// lock again. Other timers (the deploy's own host_wait) say nothing.
func (f *follower) timer(ev *historypb.HistoryEvent) {
	at := ev.GetEventTime().AsTime()
	d := ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration()
	switch {
	case f.pending != nil:
		p := *f.pending
		f.pending = nil
		f.send(p)
		f.send(progressEvent{Event: "wait", Time: at, Reason: waitVerifyBackoff, Step: p.Step, Attempt: p.Attempt, Attempts: p.Attempts, WaitMs: d.Milliseconds()})
	case f.lockWait != nil:
		f.send(progressEvent{Event: "wait", Time: at, Reason: waitLock, Step: string(contract.StepLock), WaitingFor: f.lockWait, WaitMs: d.Milliseconds()})
		f.lockWait = nil
	}
}

// message is a failure's message as the worker wrote it. The codec encrypts
// failure messages too (EncodeCommonAttributes): a history holds "Encoded
// failure" and the real message in encoded attributes, which the CLI, holding
// the codec key, decodes. A failure it cannot decode says so.
func (f *follower) message(fl *failurepb.Failure) string {
	if fl.GetEncodedAttributes() == nil {
		return fl.GetMessage()
	}
	// A local activity's failure in its marker holds the message in both.
	var ea struct {
		Message string `json:"message"`
	}
	if err := f.dc.FromPayload(fl.GetEncodedAttributes(), &ea); err != nil {
		return fl.GetMessage() + " (not decoded: it is encrypted under a codec key this certctl does not hold)"
	}
	return ea.Message
}

package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/notify"
	"github.com/certctl/certctl/scrub"
)

// notifyChange is the change ID under which DeployWorkflow, RolloutWorkflow
// and ApprovalWorkflow start a NotifyWorkflow: runs recorded before it
// notify nothing when they replay.
const (
	notifyChange         = "notify"
	approvalNotifyChange = "approval-notify"
)

// Bounds of a notification: each channel's delivery is retried by Temporal
// for up to NotifyDeliveryLimit; the NotifyWorkflow itself ends by
// NotifyWorkflowLimit even if no "certctl" worker ever runs it.
const (
	NotifyDeliveryLimit = 24 * time.Hour
	NotifyWorkflowLimit = NotifyDeliveryLimit + time.Hour
)

var na *notify.Activities

// maxNotifiedFailures bounds the failed targets a RolloutHalted event lists.
const maxNotifiedFailures = 50

// notifies says whether a deploy outcome is a notification event.
func notifies(outcome string) bool {
	return outcome != contract.RolloutHalted && outcome != contract.ApprovalPending && slices.Contains(contract.NotifyEvents, outcome)
}

// NotifyID is the workflow ID of the notification about workflowID:
// "<workflowID>/notify", or, where that would pass the server's limit on
// IDs, "notify/<sha256 of workflowID>".
func NotifyID(workflowID string) string {
	if id := workflowID + contract.NotifySuffix; len(id) <= MaxWorkflowIDLength {
		return id
	}
	sum := sha256.Sum256([]byte(workflowID))
	return "notify/" + hex.EncodeToString(sum[:])
}

// notifyDeploy tells the workflow worker's channels about a deploy that
// ended with a notification event (RollbackFailed, VerifyFailed,
// ReloadFailed, HostUnavailable). A successful deploy, and any deploy
// recorded before notifyChange, adds no event. The error is scrubbed of the
// deployed key here, where the key is known.
func (d *deploy) notifyDeploy(ctx workflow.Context, req DeployRequest) {
	if !notifies(d.res.Outcome) {
		return
	}
	if workflow.GetVersion(ctx, notifyChange, workflow.DefaultVersion, 1) < 1 {
		return
	}
	startNotify(ctx, notify.Event{
		Event: d.res.Outcome, TargetID: req.Target.TargetID, TargetType: req.Target.TargetType, Host: req.Target.Host,
		Error: scrubbed(req.Material, d.res.Error),
	})
}

// scrubbed removes the material's key, in every spelling package scrub
// knows, from text (the steps scrubbed their output already; this is the
// last word before it leaves certctl).
func scrubbed(m material.Material, text string) string {
	if text == "" {
		return ""
	}
	sc := scrub.New()
	sc.AddPEM([]byte(m.KeyPEM))
	return sc.String(text)
}

// startNotify starts the NotifyWorkflow for ev on the "certctl" queue
// (where the config is) and waits only until the server has started it: a
// child whose parent closes first would never start. The parent's outcome
// never waits on the delivery nor depends on it (ParentClosePolicy
// ABANDON); a start that fails is logged, never returned.
func startNotify(ctx workflow.Context, ev notify.Event) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	info := workflow.GetInfo(ctx)
	ev.WorkflowID, ev.RunID, ev.At = info.WorkflowExecution.ID, info.WorkflowExecution.RunID, workflow.Now(ctx).UTC()
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:               NotifyID(ev.WorkflowID),
		TaskQueue:                contract.TaskQueue,
		WorkflowExecutionTimeout: NotifyWorkflowLimit,
		ParentClosePolicy:        enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            "notify " + ev.Event,
	})
	run := workflow.ExecuteChildWorkflow(cctx, contract.NotifyWorkflow, ev)
	if err := run.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("notification not started", "event", ev.Event, "workflow_id", ev.WorkflowID, "error", err)
	}
}

// NotifyResult is NotifyWorkflow's result, and the details of its failure.
type NotifyResult struct {
	Event  string          `json:"event"`
	Sent   []string        `json:"sent"`
	Failed []NotifyFailure `json:"failed"`
}

// NotifyFailure is one channel that could not be reached.
type NotifyFailure struct {
	Channel string `json:"channel"`
	Error   string `json:"error"`
}

// NotifyWorkflow delivers one event to each channel of the workflow
// worker's --notify-config that subscribes to it, each an activity
// "notify-<channel>" retried by Temporal up to NotifyDeliveryLimit (a
// refusal retrying cannot change, NotifyRefused, is not retried). It fails
// NotifyFailed, naming each channel, when a delivery is given up; it
// changes nothing else.
func NotifyWorkflow(ctx workflow.Context, ev notify.Event) (NotifyResult, error) {
	res := NotifyResult{Event: ev.Event, Sent: []string{}, Failed: []NotifyFailure{}}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		Summary:             "routes",
	})
	var routes notify.Routes
	if err := workflow.ExecuteLocalActivity(lctx, na.NotifyRoutes, ev.Event).Get(ctx, &routes); err != nil {
		return res, err
	}
	info := workflow.GetInfo(ctx)
	var futures []workflow.Future
	for _, ch := range routes.Channels {
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			ActivityID:             "notify-" + ch,
			Summary:                "notify " + ch,
			TaskQueue:              contract.TaskQueue,
			StartToCloseTimeout:    5*time.Minute + time.Minute,
			ScheduleToCloseTimeout: NotifyDeliveryLimit,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
				NonRetryableErrorTypes: []string{contract.NotifyRefused},
			},
		})
		futures = append(futures, workflow.ExecuteActivity(actx, na.Notify, notify.SendInput{
			Channel: ch, Delivery: info.WorkflowExecution.ID + "#" + ch, Event: ev,
		}))
	}
	for i, f := range futures {
		ch := routes.Channels[i]
		outcome := metrics.NotificationSent
		if err := f.Get(ctx, nil); err != nil {
			res.Failed = append(res.Failed, NotifyFailure{Channel: ch, Error: errMessage(err)})
			outcome = metrics.NotificationFailed
		} else {
			res.Sent = append(res.Sent, ch)
		}
		recordNotification(ctx, ch, outcome)
	}
	if len(res.Failed) > 0 {
		msg := "not delivered to"
		for _, f := range res.Failed {
			msg += " " + f.Channel + " (" + f.Error + ")"
		}
		return res, temporal.NewNonRetryableApplicationError(msg, contract.NotifyFailed, nil, res)
	}
	return res, nil
}

// recordNotification counts one delivery's end once, as recordDeploy
// counts a deploy: not on a replay, not again on a retried workflow task
// on the same worker.
func recordNotification(ctx workflow.Context, channel, outcome string) {
	if workflow.IsReplaying(ctx) || !counted.add(workflow.GetInfo(ctx).WorkflowExecution.RunID+"#"+channel) {
		return
	}
	metrics.NotificationsTotal.WithLabelValues(channel, outcome).Inc()
}

// notifyHalted tells the channels a rollout halted: each failed target
// with its outcome and deploy (whose own notification carries its error),
// and how many were never started. Rollouts recorded before notifyChange
// notify nothing.
func (r *rollout) notifyHalted(ctx workflow.Context, res RolloutResult) {
	if workflow.GetVersion(ctx, notifyChange, workflow.DefaultVersion, 1) < 1 {
		return
	}
	ev := notify.Event{Event: contract.RolloutHalted, NotStarted: res.NotStarted, Error: scrubbed(r.req.Material, res.Error)}
	for _, f := range res.Failed {
		if len(ev.Failed) == maxNotifiedFailures {
			break // the error counts them all
		}
		ev.Failed = append(ev.Failed, notify.Failure{TargetID: f.TargetID, Outcome: f.Outcome, WorkflowID: f.WorkflowID})
	}
	startNotify(ctx, ev)
}

// remindWhenPending arms, under approvalNotifyChange, the timer that
// fires ApprovalPending once when the request is still pending after the
// workflow worker's approval_pending_after (read by a local activity from
// its --notify-config, never from the request). No threshold, or one not
// before the deadline: no timer. Requests recorded before the change arm
// nothing.
func (g *gate) remindWhenPending(ctx, timerCtx workflow.Context, sel workflow.Selector, timeout time.Duration) {
	if workflow.GetVersion(ctx, approvalNotifyChange, workflow.DefaultVersion, 1) < 1 {
		return
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		Summary:             "notify settings",
	})
	var set notify.Settings
	if err := workflow.ExecuteLocalActivity(lctx, na.NotifySettings).Get(ctx, &set); err != nil {
		workflow.GetLogger(ctx).Warn("notification settings not read: no ApprovalPending for this request", "error", err)
		return
	}
	after := set.ApprovalPendingAfter
	if after <= 0 || after >= timeout {
		return
	}
	remind := workflow.NewTimerWithOptions(timerCtx, after, workflow.TimerOptions{Summary: "approval pending notification"})
	sel.AddFuture(remind, func(f workflow.Future) {
		if f.Get(ctx, nil) != nil || !g.pending() {
			return
		}
		s := g.status
		startNotify(ctx, notify.Event{
			Event: contract.ApprovalPending, RequestID: s.RequestID, ProfileID: s.ProfileID, RequestedBy: s.RequestedBy,
			Subject: s.Subject, PendingSince: s.RequestedAt, Deadline: s.Deadline,
		})
	})
}

package notify

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
)

// Activities are the notification steps, registered on the workflow
// worker (the "certctl" queue), which holds the config. A nil *Activities,
// or one without Config, knows no channel: nothing is sent.
type Activities struct {
	Config *Config
}

// Routes is which channels receive one event (NotifyRoutes).
type Routes struct {
	Channels []string `json:"channels"`
}

// Settings is what workflows read of the config (NotifySettings).
type Settings struct {
	// ApprovalPendingAfter: 0 never fires ApprovalPending.
	ApprovalPendingAfter time.Duration `json:"approval_pending_after"`
}

// SendInput is one channel's delivery of one event.
type SendInput struct {
	Channel string `json:"channel"`
	// Delivery identifies it across retries (the webhook's id and
	// X-Certctl-Delivery, the email's Message-ID).
	Delivery string `json:"delivery"`
	Event    Event  `json:"event"`
}

// NotifyRoutes (a local activity) names the channels that subscribe to
// event.
func (a *Activities) NotifyRoutes(_ context.Context, event string) (Routes, error) {
	if a == nil || a.Config == nil {
		return Routes{Channels: []string{}}, nil
	}
	r := Routes{Channels: a.Config.Subscribed(event)}
	if r.Channels == nil {
		r.Channels = []string{}
	}
	return r, nil
}

// NotifySettings (a local activity) reads the workflow worker's
// notification settings.
func (a *Activities) NotifySettings(context.Context) (Settings, error) {
	if a == nil || a.Config == nil {
		return Settings{}, nil
	}
	return Settings{ApprovalPendingAfter: a.Config.ApprovalPendingAfter.D()}, nil
}

// Notify sends one event to one channel. A refusal that retrying cannot
// change is NotifyRefused; anything else is retried by the activity's
// retry policy.
func (a *Activities) Notify(ctx context.Context, in SendInput) error {
	if a == nil || a.Config == nil {
		return temporal.NewNonRetryableApplicationError("this worker has no --notify-config", contract.NotifyRefused, nil)
	}
	ch, ok := a.Config.channel(in.Channel)
	if !ok {
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("channel %s is not in %s any more (the worker restarted with another config)", in.Channel, a.Config.File), contract.NotifyRefused, nil)
	}
	ev := clean(in.Event)
	m := render(ev, a.Config.WebUI, activity.GetInfo(ctx).Namespace)
	now := time.Now()
	switch ch.Type {
	case TypeWebhook:
		return ch.sendWebhook(ctx, in.Delivery, ev, m, now)
	case TypeSlack:
		return ch.sendSlack(ctx, m)
	case TypeEmail:
		return ch.sendEmail(ctx, in.Delivery, m, now)
	}
	return temporal.NewNonRetryableApplicationError("channel "+ch.Name+": unknown type "+ch.Type, contract.NotifyRefused, nil)
}

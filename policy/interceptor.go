package policy

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// Targeted is an activity input that names the target it acts on. Every
// deploy step's input (activities.Request and the inputs embedding it) and
// target.Target itself are.
type Targeted interface {
	PolicyTarget() target.Target
}

// Interceptor enforces p on every activity a host worker runs: each
// argument must carry a target (Targeted) and the target must pass
// CheckTarget; anything else fails, before the activity runs, with a
// non-retryable application error of type PolicyRefused. Register it on a
// --host worker (worker.Options.Interceptors).
func Interceptor(p *Policy) interceptor.WorkerInterceptor {
	return &workerInterceptor{policy: p, requireTarget: true}
}

// TargetsInterceptor enforces p on the activities that carry a target and
// lets the others (audit, issue, profiles, locks) run: for the certctl
// worker, whose steps of a target without host write on its own machine.
func TargetsInterceptor(p *Policy) interceptor.WorkerInterceptor {
	return &workerInterceptor{policy: p}
}

type workerInterceptor struct {
	interceptor.WorkerInterceptorBase
	policy        *Policy
	requireTarget bool
}

func (w *workerInterceptor) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &activityInterceptor{w: w}
	i.Next = next
	return i
}

type activityInterceptor struct {
	interceptor.ActivityInboundInterceptorBase
	w *workerInterceptor
}

func (a *activityInterceptor) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	name := activity.GetInfo(ctx).ActivityType.Name
	if !a.w.requireTarget && !anyTargeted(in.Args) {
		return a.Next.ExecuteActivity(ctx, in)
	}
	if err := a.w.policy.CheckArgs(in.Args); err != nil {
		activity.GetLogger(ctx).Warn("activity refused by the host policy", "activity", name, "error", err)
		return nil, Error(fmt.Errorf("%s: %w", name, err))
	}
	return a.Next.ExecuteActivity(ctx, in)
}

// CheckArgs allows an activity's decoded arguments when there is at least
// one, each carries a target, and every target passes CheckTarget.
func (p *Policy) CheckArgs(args []any) error {
	if len(args) == 0 {
		return &Refused{File: p.File, Rule: "target", Field: "input", Value: "(none)", Reason: "carries no target: a host worker runs only steps of a target its policy allows"}
	}
	for i, arg := range args {
		t, ok := arg.(Targeted)
		if !ok {
			return &Refused{File: p.File, Rule: "target", Field: fmt.Sprintf("input %d", i), Value: fmt.Sprintf("(%T)", arg),
				Reason: "carries no target: a host worker runs only steps of a target its policy allows"}
		}
		if err := p.CheckTarget(t.PolicyTarget()); err != nil {
			return err
		}
	}
	return nil
}

func anyTargeted(args []any) bool {
	for _, arg := range args {
		if _, ok := arg.(Targeted); ok {
			return true
		}
	}
	return false
}

// Error turns a refusal into the non-retryable application error of type
// PolicyRefused, with the Refused as its details; other errors pass through.
func Error(err error) error {
	var r *Refused
	if !errors.As(err, &r) {
		return err
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), contract.PolicyRefused, nil, *r)
}

package main

import (
	"context"
	"errors"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/notify"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/workflows"
)

// pollerFresh is how recently a worker must have polled a queue to count
// as there: a live worker's long poll returns and polls again within a
// minute or so.
const pollerFresh = 90 * time.Second

// startDeploy starts DeployWorkflow. When the target's host has a worker
// polling its queue for workflow tasks, certctl starts the deploy there:
// the host run, a single workflow whose steps run on that worker (one
// workflow, a few workflow tasks). Otherwise (no host, or no worker seen)
// on the "certctl" queue, the temporal CLI's line: that deploy delegates
// to a host run and ends HostUnavailable when no worker picks it up within
// host_wait. Either way certctl sets CertctlTarget at the start, so it
// first checks the namespace has certctl's search attributes
// (requireSearchAttributes): without them it refuses in seconds, naming
// them and `certctl setup`, instead of a start the server refuses.
func startDeploy(ctx context.Context, c client.Client, req workflows.DeployRequest) (client.WorkflowRun, bool, error) {
	if err := requireSearchAttributes(ctx, c); err != nil {
		return nil, false, err
	}
	opts := client.StartWorkflowOptions{
		ID:                    workflowID(req.Target),
		TaskQueue:             contract.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(workflows.TargetKey.ValueSet(req.Target.TargetID)),
	}
	host := false
	if req.Target.Host != "" && polled(ctx, c, workflows.HostQueue(req.Target.Host)) {
		opts.TaskQueue, host = workflows.HostQueue(req.Target.Host), true
	}
	run, err := c.ExecuteWorkflow(ctx, opts, contract.DeployWorkflow, req)
	return run, host, err
}

// polled says whether a worker polled queue for workflow tasks lately.
func polled(ctx context.Context, c client.Client, queue string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := c.DescribeTaskQueue(ctx, queue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return false
	}
	for _, p := range resp.GetPollers() {
		if time.Since(p.GetLastAccessTime().AsTime()) < pollerFresh {
			return true
		}
	}
	return false
}

// watchHostRun gives a host run certctl started up when no worker picked
// it up within host_wait (the worker seen polling died since): it
// terminates the run, which never touched anything, and reports the
// message for the outcome. It returns a stop function; the message is ""
// when the run was not given up.
func watchHostRun(ctx context.Context, c client.Client, run client.WorkflowRun, req workflows.DeployRequest) (stop func() string) {
	wait := req.HostWait.D()
	if wait <= 0 {
		wait = workflows.DefaultHostWait
	}
	return giveUpAfter(ctx, c, run, req.Target, wait, wait)
}

// giveUpAfter is watchHostRun for a run whose host_wait is wait, left
// from now (`certctl deploy --follow` takes the watch over from the
// certctl that started the run).
func giveUpAfter(ctx context.Context, c client.Client, run client.WorkflowRun, t target.Target, wait, left time.Duration) (stop func() string) {
	done := make(chan struct{})
	result := make(chan string, 1)
	go func() {
		select {
		case <-done:
			result <- ""
			return
		case <-time.After(left):
		}
		// Unknown is not absent: an error counts as picked up.
		if started, err := activities.PickedUp(ctx, c, run.GetID(), run.GetRunID()); started || err != nil {
			result <- ""
			return
		}
		msg := workflows.HostUnavailableMessage(t.Host, wait) + "; nothing was touched"
		if err := c.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), msg); err != nil {
			result <- ""
			return
		}
		notifyGivenUp(ctx, c, run, t, msg)
		result <- msg
	}()
	return func() string { close(done); return <-result }
}

// notifyGivenUp tells the workflow worker's channels of a host run this
// certctl gave up: terminated, the run cannot tell them itself, as a
// HostUnavailable deploy on the "certctl" queue does. It starts the same
// NotifyWorkflow, under the same ID, the run would have; a failure to
// start it is not the deploy's: it is dropped.
func notifyGivenUp(ctx context.Context, c client.Client, run client.WorkflowRun, t target.Target, msg string) {
	ev := notify.Event{
		Event: contract.HostUnavailable, WorkflowID: run.GetID(), RunID: run.GetRunID(),
		TargetID: t.TargetID, TargetType: t.TargetType, Host: t.Host, Error: msg, At: time.Now().UTC(),
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, _ = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.NotifyID(run.GetID()), TaskQueue: contract.TaskQueue,
		WorkflowExecutionTimeout: workflows.NotifyWorkflowLimit,
	}, contract.NotifyWorkflow, ev)
}

// searchAttributeHint says what to do when the server refuses the start
// for want of certctl's search attributes (requireSearchAttributes could
// not list them, or they were removed since).
func searchAttributeHint(err error) string {
	var ia *serviceerror.InvalidArgument
	if !errors.As(err, &ia) || !strings.Contains(ia.Error(), workflows.TargetKey.GetName()) {
		return ""
	}
	return "; this namespace lacks certctl's search attributes (" + searchAttributeList() + "): register them once with `certctl setup`"
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/workflows"
	"github.com/spf13/cobra"
)

type deployFlags struct {
	target                string
	m                     materialFlags
	dryRun, detach, force bool
	output                string
}

func deployCmd() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy --target TARGET.yaml (--cert CERT.pem --key KEY.pem [--chain CHAIN.pem] | --lineage DIR)",
		Short: "Land a certificate on one target and follow the deploy to its outcome",
		Long: `Starts DeployWorkflow, prints its ID, each step as it finishes, then the outcome on its
own last line. The workflow starts on the target host's queue "certctl-host-<host>" when a
worker polls it (its steps then run on that worker), and otherwise on "certctl", which waits
up to CERTCTL_HOST_WAIT for the host's worker before HostUnavailable.

--lineage DIR reads an ACME client's lineage (certbot's RENEWED_LINEAGE,
/etc/letsencrypt/live/NAME): cert.pem, chain.pem and privkey.pem in it.

A leaf issued by a CA deployed without any chain prints a warning line (and
"chain_missing": true with --output json): clients that do not hold the
intermediate cannot verify it.

Exit codes: 0 Deployed, SkippedIdempotent or DryRunPassed; 1 any other outcome;
2 input refused before anything started (the message names the field).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := f.request()
			if err != nil {
				return invalid(err.Error())
			}
			return following(cmd, func(ctx context.Context, c client.Client) error {
				return runDeploy(ctx, c, req, f.detach, f.output, cmd.OutOrStdout(), "")
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "target file (YAML)")
	f.m.add(cmd)
	fl.BoolVar(&f.dryRun, "dry-run", false, "run Plan and Validate only; touch nothing live")
	fl.BoolVar(&f.detach, "detach", false, "print the workflow ID and return without waiting")
	fl.BoolVar(&f.force, "force-validity", false, "deploy a leaf that is expired or not yet valid (every other check still applies)")
	fl.StringVar(&f.output, "output", "text", "text or json")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

// request reads and checks everything before anything starts.
func (f *deployFlags) request() (workflows.DeployRequest, error) {
	var req workflows.DeployRequest
	if f.output != "text" && f.output != "json" {
		return req, errors.New("--output: want text or json")
	}
	m, err := f.m.read()
	if err != nil {
		return req, err
	}
	tf, err := os.Open(f.target)
	if err != nil {
		return req, fmt.Errorf("--target: %w", err)
	}
	defer tf.Close()
	t, err := target.Parse(tf)
	if err != nil {
		return req, fmt.Errorf("--target %s: %w", f.target, err)
	}
	now := time.Now()
	if f.force {
		now = time.Time{}
	}
	if _, _, err := activities.Preflight(*t, m, now); err != nil {
		return req, f.m.nameFlag(err)
	}
	req = workflows.DeployRequest{Target: *t, Material: m, DryRun: f.dryRun, ForceValidity: f.force}
	if req.HostWait, err = hostWaitFromEnv(); err != nil {
		return req, err
	}
	return req, nil
}

// workflowID is unique per request and says what it is about.
func workflowID(t target.Target) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("deploy/%s/%s-%s", t.TargetID, time.Now().UTC().Format("20060102T150405Z"), hex.EncodeToString(b))
}

// deployOutput is what --output json prints.
type deployOutput struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	// ChainMissing: the leaf was issued by a CA and no chain came with it
	// (chainWarning).
	ChainMissing bool `json:"chain_missing,omitempty"`
	workflows.DeployResult
}

// chainWarning is the warning for material whose leaf was issued by a CA
// (its issuer is not its subject) and that holds no chain: the server will
// send the leaf alone, and clients that do not hold the intermediate fail.
// Empty when there is a chain, the leaf is self-signed, or the material does
// not parse (the deploy says why).
func chainWarning(m material.Material) string {
	b, err := material.Parse(m)
	if err != nil || len(b.Chain) > 0 || !material.Issued(b.Leaf) {
		return ""
	}
	return fmt.Sprintf("warning: no chain: leaf %s is issued by %q and the server will send it alone; clients that do not hold that issuer's certificate fail "+
		"(\"unable to verify the first certificate\"): give --chain CHAIN.pem (the intermediates), or --lineage DIR", material.Name(b.Leaf), b.Leaf.Issuer.String())
}

// runDeploy starts the workflow and follows it. uiBase, when set, is the Web
// UI's namespace URL: a link to the workflow is printed.
func runDeploy(ctx context.Context, c client.Client, req workflows.DeployRequest, detach bool, output string, w io.Writer, uiBase string) error {
	run, onHost, err := startDeploy(ctx, c, req)
	if err != nil {
		return &exitError{code: 1, msg: "start DeployWorkflow: " + err.Error() + searchAttributeHint(err)}
	}
	text := output != "json"
	warning := chainWarning(req.Material)
	if text {
		if warning != "" {
			fmt.Fprintln(w, warning)
		}
		fmt.Fprintf(w, "workflow: %s\n", run.GetID())
		if uiBase != "" {
			fmt.Fprintf(w, "web ui:   %s\n", uiLink(uiBase, run))
		}
	}
	if detach {
		if !text {
			return json.NewEncoder(w).Encode(map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
		}
		return nil
	}
	givenUp := func() string { return "" }
	if onHost {
		givenUp = watchHostRun(ctx, c, run, req)
	}
	printed := map[string]bool{}
	if text {
		printed = followSteps(ctx, c, run.GetID(), run.GetRunID(), w)
	}
	var res workflows.DeployResult
	err = run.Get(ctx, &res)
	if msg := givenUp(); msg != "" {
		res = workflows.DeployResult{Outcome: contract.HostUnavailable, TargetID: req.Target.TargetID, Error: msg}
	} else if err != nil {
		if !detailsOf(err, &res) || res.Outcome == "" {
			return &exitError{code: 1, msg: fmt.Sprintf("deploy %s: %v", run.GetID(), err)}
		}
	}
	if text {
		// Steps that ran no activity (a verify turned off) are said too.
		for _, s := range res.Steps {
			if !printed[s.Name] {
				fmt.Fprintf(w, "  %-16s %s\n", s.Name, s.Detail)
			}
		}
	}
	if !text {
		if err := json.NewEncoder(w).Encode(deployOutput{WorkflowID: run.GetID(), RunID: run.GetRunID(), ChainMissing: warning != "", DeployResult: res}); err != nil {
			return err
		}
	} else {
		if res.Error != "" {
			fmt.Fprintf(w, "error: %s\n", terminalSafe(res.Error))
		}
		fmt.Fprintf(w, "outcome: %s\n", res.Outcome)
	}
	switch {
	case contract.Succeeded(res.Outcome):
		return nil
	case res.Outcome == contract.InvalidInput:
		return &exitError{code: 2}
	}
	return &exitError{code: 1}
}

// uiLink links to a workflow; nsURL is the Web UI's ".../namespaces/<ns>".
func uiLink(nsURL string, run client.WorkflowRun) string {
	return fmt.Sprintf("%s/workflows/%s/%s/history", strings.TrimRight(nsURL, "/"), escapeID(run.GetID()), run.GetRunID())
}

func escapeID(id string) string { return strings.ReplaceAll(id, "/", "%2F") }

// followSteps prints each step as it finishes, reading the history with
// long polls until the workflow closes; a host run the deploy delegates to
// (a child "<id>/host") is followed in turn. A step that is an activity is
// printed when it completes; steps that are local activities (the host
// run's) when the workflow task that ran them completes, named by their
// Summary, timed by their marker.
func followSteps(ctx context.Context, c client.Client, id, runID string, w io.Writer) map[string]bool {
	printed := map[string]bool{}
	f := follower{names: map[int64]string{}, scheduled: map[int64]time.Time{}, dc: dataConverter()}
	it := c.GetWorkflowHistory(ctx, id, runID, true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return printed
		}
		if we := ev.GetChildWorkflowExecutionStartedEventAttributes().GetWorkflowExecution(); we != nil && strings.HasSuffix(we.GetWorkflowId(), contract.HostRunSuffix) {
			for name := range followSteps(ctx, c, we.GetWorkflowId(), we.GetRunId(), w) {
				printed[name] = true
			}
			continue
		}
		if name, line := f.stepLine(ev); line != "" {
			printed[name] = true
			fmt.Fprintln(w, line)
		}
	}
	return printed
}

// follower turns history events into step lines.
type follower struct {
	names     map[int64]string
	scheduled map[int64]time.Time
	// last is when the previous local activity ended (or the workflow task
	// that ran it started).
	last time.Time
	dc   converter.DataConverter
}

func (f *follower) stepLine(ev *historypb.HistoryEvent) (string, string) {
	at := ev.GetEventTime().AsTime()
	took := func(id int64) string { return fmt.Sprintf("%6d ms", at.Sub(f.scheduled[id]).Milliseconds()) }
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		f.scheduled[0] = at
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
		f.last = at
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		if ev.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == contract.LockGrantedSignal {
			return "lock", fmt.Sprintf("  %-16s ok     %s", "lock", took(0))
		}
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		return f.markerLine(ev)
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		f.names[ev.GetEventId()] = ev.GetActivityTaskScheduledEventAttributes().GetActivityId()
		f.scheduled[ev.GetEventId()] = at
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		id := ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
		return f.names[id], fmt.Sprintf("  %-16s ok     %s", f.names[id], took(id))
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		a := ev.GetActivityTaskFailedEventAttributes()
		id := a.GetScheduledEventId()
		return f.names[id], fmt.Sprintf("  %-16s FAILED %s  %s", f.names[id], took(id), oneLine(f.message(a.GetFailure())))
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		id := ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
		return f.names[id], fmt.Sprintf("  %-16s TIMED OUT %s", f.names[id], took(id))
	}
	return "", ""
}

// markerLine is a local activity's step line: its name is the Summary, its
// end the marker's replay time. A lock still waiting, and markers that are
// not steps, print nothing.
func (f *follower) markerLine(ev *historypb.HistoryEvent) (string, string) {
	m := ev.GetMarkerRecordedEventAttributes()
	if m.GetMarkerName() != "LocalActivity" {
		return "", ""
	}
	var name string
	if p := ev.GetUserMetadata().GetSummary(); p == nil || f.dc.FromPayload(p, &name) != nil || name == "" {
		return "", ""
	}
	var data struct {
		ReplayTime time.Time
	}
	end := ev.GetEventTime().AsTime()
	if p := m.GetDetails()["data"]; p != nil && f.dc.FromPayloads(p, &data) == nil && !data.ReplayTime.IsZero() {
		end = data.ReplayTime
	}
	took := fmt.Sprintf("%6d ms", end.Sub(f.last).Milliseconds())
	f.last = end
	if fl := m.GetFailure(); fl != nil {
		return name, fmt.Sprintf("  %-16s FAILED %s  %s", name, took, oneLine(f.message(fl)))
	}
	if name == string(contract.StepLock) {
		var r activities.LockResult
		if p := m.GetDetails()["result"]; p == nil || f.dc.FromPayloads(p, &r) != nil || !r.Granted {
			return "", ""
		}
	}
	return name, fmt.Sprintf("  %-16s ok     %s", name, took)
}

// message is a failure's message as the worker wrote it. The codec encrypts
// failure messages too (EncodeCommonAttributes): a history holds "Encoded
// failure" and the real message in encoded attributes, which the CLI, holding
// the codec key, decodes. A failure it cannot decode says so.
func (f *follower) message(fl *failurepb.Failure) string {
	if fl.GetEncodedAttributes() == nil {
		return fl.GetMessage()
	}
	d := proto.Clone(fl).(*failurepb.Failure)
	converter.DecodeCommonFailureAttributes(f.dc, d)
	if d.GetMessage() == fl.GetMessage() {
		return fl.GetMessage() + " (not decoded: it is encrypted under a codec key this certctl does not hold)"
	}
	return d.GetMessage()
}

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
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

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
	output, progress      string
	// follow: the ID of a deploy to follow instead of starting one.
	follow string
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

On a terminal (--progress auto, or tty) one line below the steps is
rewritten in place with what the deploy does now and for how long: waiting
for the host's worker (against host_wait), running on it, each verify attempt
that failed and the countdown to the next. Elsewhere (--progress plain) a line
per finished step. After a failure, "next:" says what to do, just before the
outcome (contract.NextAction, docs/operator.md "Outcomes and what to do"). --output events prints
one JSON object a line as the deploy goes, the outcome last (docs/operator.md
"Following a deploy"); --output json one object at the end.

Ctrl-C leaves the deploy running (exit 130) and prints how to follow it
again: certctl deploy --follow WORKFLOW_ID.

Exit codes: 0 Deployed, SkippedIdempotent or DryRunPassed; 1 any other outcome;
2 input refused before anything started (the message names the field);
130 detached with Ctrl-C (the deploy goes on).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			o, err := f.opts(w)
			if err != nil {
				return invalid(err.Error())
			}
			var req workflows.DeployRequest
			if f.follow == "" {
				if req, err = f.request(); err != nil {
					return invalid(err.Error())
				}
			}
			return following(cmd, func(ctx context.Context, c client.Client) error {
				return runDeploy(ctx, c, req, o, w)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "target file (YAML)")
	f.m.add(cmd)
	fl.BoolVar(&f.dryRun, "dry-run", false, "run Plan and Validate only; touch nothing live")
	fl.BoolVar(&f.detach, "detach", false, "print the workflow ID and return without waiting")
	fl.BoolVar(&f.force, "force-validity", false, "deploy a leaf that is expired or not yet valid (every other check still applies)")
	fl.StringVar(&f.output, "output", "text", "text, json (one object at the end) or events (one JSON object a line as the deploy goes)")
	fl.StringVar(&f.progress, "progress", progressAuto, "text output: auto (tty on a terminal), tty (a live line: step, waits, verify attempts) or plain (a line per finished step)")
	fl.StringVar(&f.follow, "follow", "", "follow the deploy with this workflow ID (started before, or left with Ctrl-C) instead of starting one")
	return cmd
}

// opts checks the flags that say how to follow.
func (f *deployFlags) opts(w io.Writer) (deployOpts, error) {
	o := deployOpts{detach: f.detach, output: f.output, follow: f.follow}
	if f.output != "text" && f.output != "json" && f.output != "events" {
		return o, errors.New("--output: want text, json or events")
	}
	var err error
	if o.progress, err = progressMode(f.progress, w); err != nil {
		return o, err
	}
	if f.follow != "" {
		if f.target != "" || f.detach || f.dryRun || f.force || f.m.cert != "" || f.m.key != "" || f.m.chain != "" || f.m.lineage != "" {
			return o, errors.New("--follow: follows a deploy already started; drop --target, the material flags, --dry-run, --force-validity and --detach")
		}
		if !strings.HasPrefix(f.follow, "deploy/") {
			return o, fmt.Errorf("--follow: %q is not a deploy's workflow ID (deploy/<target>/<time>-<suffix>, as `certctl deploy` prints it)", f.follow)
		}
	} else if f.target == "" {
		return o, errors.New("--target: required (a target file, YAML); or --follow WORKFLOW_ID to follow a deploy already started")
	}
	return o, nil
}

// request reads and checks everything before anything starts.
func (f *deployFlags) request() (workflows.DeployRequest, error) {
	var req workflows.DeployRequest
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

// deployOpts say how runDeploy follows the deploy.
type deployOpts struct {
	detach bool
	// output is text, json (one object at the end) or events (one JSON
	// object a line as the deploy goes, the outcome last).
	output string
	// progress (text output) is tty or plain (progressMode).
	progress string
	// uiBase, when set, is the Web UI's namespace URL: a link to the
	// workflow is printed.
	uiBase string
	// follow is the ID of a deploy already started: follow it instead of
	// starting one.
	follow string
}

// outcomeEvent is the last line of --output events: the object --output
// json prints, and what to do next.
type outcomeEvent struct {
	Event string    `json:"event"`
	Time  time.Time `json:"time"`
	*deployOutput
	NextAction string `json:"next_action,omitempty"`
}

// detachedEvent is what --output events prints on Ctrl-C.
type detachedEvent struct {
	Event      string    `json:"event"`
	Time       time.Time `json:"time"`
	WorkflowID string    `json:"workflow_id"`
	Follow     string    `json:"follow"`
}

// exitDetached is the exit code of a deploy left on Ctrl-C: it goes on.
const exitDetached = 130

// followCommand is how to follow a deploy again.
func followCommand(id string) string { return "certctl deploy --follow " + id }

// runDeploy starts the workflow (or, with o.follow, takes one already
// started) and follows it to its outcome.
func runDeploy(ctx context.Context, c client.Client, req workflows.DeployRequest, o deployOpts, w io.Writer) error {
	var run client.WorkflowRun
	onHost := false
	givenUp := func() string { return "" }
	if o.follow != "" {
		run = c.GetWorkflow(ctx, o.follow, "")
		var err error
		if req, givenUp, err = takeOver(ctx, c, run); err != nil {
			return err
		}
	} else {
		var err error
		if run, onHost, err = startDeploy(ctx, c, req); err != nil {
			return &exitError{code: 1, msg: "start DeployWorkflow: " + err.Error() + searchAttributeHint(err)}
		}
	}
	text := o.output == "text"
	warning := chainWarning(req.Material)
	if text {
		if warning != "" {
			fmt.Fprintln(w, warning)
		}
		fmt.Fprintf(w, "workflow: %s\n", run.GetID())
		if o.uiBase != "" {
			fmt.Fprintf(w, "web ui:   %s\n", uiLink(o.uiBase, run))
		}
	}
	if o.detach {
		if !text {
			return json.NewEncoder(w).Encode(map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
		}
		return nil
	}
	if onHost {
		givenUp = watchHostRun(ctx, c, run, req)
	}
	var r renderer
	switch {
	case o.output == "events":
		r = newEventsRenderer(w)
	case o.output == "json":
	case o.progress == progressTTY:
		t := newTTYRenderer(w, terminalWidth(w), time.Now)
		t.start(100 * time.Millisecond)
		r = t
	default:
		r = plainRenderer{w}
	}
	printed := map[string]bool{}
	if r != nil {
		followRun(ctx, c, run.GetID(), run.GetRunID(), dataConverter(), r.event, printed)
		r.finish()
	}
	var res workflows.DeployResult
	err := run.Get(ctx, &res)
	if msg := givenUp(); msg != "" {
		res = workflows.DeployResult{Outcome: contract.HostUnavailable, TargetID: req.Target.TargetID, Error: msg}
	} else if err != nil && ctx.Err() != nil {
		return detached(w, o.output, run.GetID())
	} else if err != nil {
		if !detailsOf(err, &res) || res.Outcome == "" {
			return &exitError{code: 1, msg: fmt.Sprintf("deploy %s: %v", run.GetID(), err)}
		}
	}
	out := deployOutput{WorkflowID: run.GetID(), RunID: run.GetRunID(), ChainMissing: warning != "", DeployResult: res}
	switch o.output {
	case "json":
		if err := json.NewEncoder(w).Encode(out); err != nil {
			return err
		}
	case "events":
		ev := outcomeEvent{Event: "outcome", Time: time.Now().UTC(), deployOutput: &out, NextAction: contract.NextAction(res.Outcome)}
		if contract.Succeeded(res.Outcome) {
			ev.NextAction = ""
		}
		if err := json.NewEncoder(w).Encode(ev); err != nil {
			return err
		}
	default:
		// Steps that ran no activity (a verify turned off) are said too.
		for _, s := range res.Steps {
			if !printed[s.Name] {
				fmt.Fprintf(w, "  %-16s %s\n", s.Name, s.Detail)
			}
		}
		if res.Error != "" {
			fmt.Fprintf(w, "error: %s\n", terminalSafe(res.Error))
		}
		if next := contract.NextAction(res.Outcome); next != "" && !contract.Succeeded(res.Outcome) {
			fmt.Fprintf(w, "next:  %s\n", next)
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

// takeOver reads what following a deploy started before needs: its target
// and host_wait, from its input (decoded with this certctl's codec; the
// material is not read). A host run certctl started that no worker has
// picked up yet is given up when its host_wait is over, as the certctl
// that started it would have (watchHostRun).
func takeOver(ctx context.Context, c client.Client, run client.WorkflowRun) (workflows.DeployRequest, func() string, error) {
	var req workflows.DeployRequest
	none := func() string { return "" }
	d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return req, none, invalid(fmt.Sprintf("--follow: no workflow %s in namespace %s", run.GetID(), dialedNamespace))
	} else if err != nil {
		return req, none, &exitError{code: 1, msg: fmt.Sprintf("--follow %s: %v", run.GetID(), err)}
	}
	info := d.GetWorkflowExecutionInfo()
	it := c.GetWorkflowHistory(ctx, run.GetID(), info.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return req, none, nil
	}
	first, err := it.Next()
	if err != nil {
		return req, none, &exitError{code: 1, msg: fmt.Sprintf("--follow %s: %v", run.GetID(), err)}
	}
	var in struct {
		Target   target.Target   `json:"target"`
		HostWait target.Duration `json:"host_wait"`
	}
	if p := first.GetWorkflowExecutionStartedEventAttributes().GetInput(); p == nil || dataConverter().FromPayloads(p, &in) != nil {
		return req, none, nil
	}
	req.Target, req.HostWait = in.Target, in.HostWait
	wait := in.HostWait.D()
	if wait <= 0 {
		wait = workflows.DefaultHostWait
	}
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || info.GetParentExecution() != nil ||
		!strings.HasPrefix(info.GetTaskQueue(), contract.HostQueuePrefix) {
		return req, none, nil
	}
	left := max(wait-time.Since(info.GetStartTime().AsTime()), 0)
	return req, giveUpAfter(ctx, c, run, in.Target, wait, left), nil
}

// detached says, on Ctrl-C, that the deploy goes on and how to follow it.
func detached(w io.Writer, output, id string) error {
	switch output {
	case "text":
		fmt.Fprintf(w, "detached: %s goes on without this terminal; follow it again: %s\n", id, followCommand(id))
	case "events":
		_ = json.NewEncoder(w).Encode(detachedEvent{Event: "detached", Time: time.Now().UTC(), WorkflowID: id, Follow: followCommand(id)})
	}
	if output == "json" {
		return &exitError{code: exitDetached, msg: "detached from " + id + ": it goes on; follow it again: " + followCommand(id)}
	}
	return &exitError{code: exitDetached}
}

// uiLink links to a workflow; nsURL is the Web UI's ".../namespaces/<ns>".
func uiLink(nsURL string, run client.WorkflowRun) string {
	return fmt.Sprintf("%s/workflows/%s/%s/history", strings.TrimRight(nsURL, "/"), escapeID(run.GetID()), run.GetRunID())
}

func escapeID(id string) string { return strings.ReplaceAll(id, "/", "%2F") }

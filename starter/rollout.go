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
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/workflows"
)

type rolloutFlags struct {
	targets                    []string
	m                          materialFlags
	batch, canary, maxFailures int
	id, output                 string
	detach, dryRun, force      bool
	stallAfter                 time.Duration
}

func rolloutCmd() *cobra.Command {
	var f rolloutFlags
	cmd := &cobra.Command{
		Use:   "rollout --targets DIR_OR_FILE [--targets …] (--cert CERT.pem --key KEY.pem [--chain CHAIN.pem] | --lineage DIR)",
		Short: "Land one certificate on many targets: the canary first, then in batches, halting on failure",
		Long: `Starts RolloutWorkflow (ID rollout/<id>, queue "certctl") and follows it. Targets come from
each --targets: a directory's *.yaml files in file-name order, or one target file. The first
--canary of them go first and must all succeed; then up to --batch deploys run at once, a new one
as soon as one ends. Past --max-failures failed targets after the canary (0: the first failure),
the rollout starts nothing new, lets the deploys in flight end, and ends RolloutHalted naming each
failed target. Each deploy is a DeployWorkflow of its own ("deploy/<target>/rollout-<id>"), with
its own rollback; a target whose host has no worker counts as HostUnavailable after
CERTCTL_HOST_WAIT without holding up the others, and one whose worker stopped after
picking its deploy up counts as HostLost after --stall-after (the deploy itself is
left to finish or roll back when that worker returns).

Exit codes: 0 RolloutCompleted; 1 RolloutHalted or any other end; 2 input refused before
anything started (the message names the file and field); 130 detached with Ctrl-C (the
rollout goes on).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id := f.rolloutID()
			req, err := f.request(id)
			if err != nil {
				return invalid(err.Error())
			}
			return following(cmd, func(ctx context.Context, c client.Client) error {
				return runRollout(ctx, c, req, id, f.detach, f.output, cmd.OutOrStdout())
			})
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.targets, "targets", nil, "a directory of target files (*.yaml, in file-name order) or one target file; repeatable")
	f.m.add(cmd)
	fl.IntVar(&f.batch, "batch", workflows.DefaultRolloutBatch, "how many deploys run at once after the canary")
	fl.IntVar(&f.canary, "canary", workflows.DefaultRolloutCanary, "how many targets go first, all of which must succeed before any other starts")
	fl.IntVar(&f.maxFailures, "max-failures", 0, "how many targets after the canary may fail before the rollout halts")
	fl.DurationVar(&f.stallAfter, "stall-after", 0, "how long a deploy whose host's worker stopped after picking it up may hold its slot before it counts as HostLost (default: CERTCTL_HOST_WAIT, at least 30s)")
	fl.StringVar(&f.id, "id", "", "the rollout's ID (default: the time and a random suffix); its workflow is rollout/<id>")
	fl.BoolVar(&f.detach, "detach", false, "print the rollout's workflow ID and return without waiting")
	fl.BoolVar(&f.dryRun, "dry-run", false, "run Plan and Validate on every target; touch nothing live")
	fl.BoolVar(&f.force, "force-validity", false, "deploy a leaf that is expired or not yet valid")
	fl.StringVar(&f.output, "output", "text", "text or json")
	_ = cmd.MarkFlagRequired("targets")
	cmd.AddCommand(rolloutSignalCmd(contract.SignalPause, "Start no new deploy until resumed (those in flight end)"),
		rolloutSignalCmd(contract.SignalResume, "Go on starting deploys"), rolloutStatusCmd())
	return cmd
}

func (f *rolloutFlags) rolloutID() string {
	if f.id != "" {
		return f.id
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// request reads and checks every target and the material before anything
// starts: a target that would be refused is named with its file.
func (f *rolloutFlags) request(id string) (workflows.RolloutRequest, error) {
	var req workflows.RolloutRequest
	if f.output != "text" && f.output != "json" {
		return req, errors.New("--output: want text or json")
	}
	switch {
	case f.batch < 1:
		return req, fmt.Errorf("--batch: is %d: want 1 or more", f.batch)
	case f.canary < 0:
		return req, fmt.Errorf("--canary: is %d: want 0 or more", f.canary)
	case f.maxFailures < 0:
		return req, fmt.Errorf("--max-failures: is %d: want 0 or more", f.maxFailures)
	case f.stallAfter != 0 && f.stallAfter < workflows.MinStallAfter:
		return req, fmt.Errorf("--stall-after: is %s: want at least %s (a live worker completes a workflow task well within that)", f.stallAfter, workflows.MinStallAfter)
	}
	if f.id != "" {
		if err := profile.CheckID("--id", f.id); err != nil {
			return req, err
		}
	}
	files, err := targetFiles(f.targets)
	if err != nil {
		return req, err
	}
	m, err := f.m.read()
	if err != nil {
		return req, err
	}
	now := time.Now()
	if f.force {
		now = time.Time{}
	}
	from := map[string]string{}
	for _, path := range files {
		t, err := readTarget(path)
		if err != nil {
			return req, err
		}
		if err := workflows.CheckRolloutDeployID(id, *t); err != nil {
			return req, fmt.Errorf("--targets %s: %w", path, err)
		}
		if prev, dup := from[t.TargetID]; dup {
			return req, fmt.Errorf("--targets %s: target_id %q is also %s's: a rollout deploys each target once", path, t.TargetID, prev)
		}
		from[t.TargetID] = path
		if _, _, err := activities.Preflight(*t, m, now); err != nil {
			return req, fmt.Errorf("--targets %s: %w", path, f.m.nameFlag(err))
		}
		req.Targets = append(req.Targets, *t)
	}
	canary := f.canary
	req.Material, req.Canary, req.Batch, req.MaxFailures = m, &canary, f.batch, f.maxFailures
	req.DryRun, req.ForceValidity = f.dryRun, f.force
	if req.HostWait, err = hostWaitFromEnv(); err != nil {
		return req, err
	}
	// Every default the rollout would otherwise take from the worker's code
	// is written into its request, so that a later change to one changes
	// neither what a running rollout does nor how its history replays.
	if req.HostWait == 0 {
		req.HostWait = target.Duration(workflows.DefaultHostWait)
	}
	req.StallAfter = target.Duration(f.stallAfter)
	if req.StallAfter == 0 {
		req.StallAfter = target.Duration(max(req.HostWait.D(), workflows.MinStallAfter))
	}
	req.ContinueAfter = workflows.DefaultContinueAfter
	return req, nil
}

// targetFiles lists the target files the --targets flags name: a
// directory's *.yaml and *.yml files in file-name order, a file as it is.
func targetFiles(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		fi, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("--targets: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, a)
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("--targets: %w", err)
		}
		var in []string
		for _, e := range ents {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") && !strings.HasPrefix(e.Name(), ".") {
				in = append(in, filepath.Join(a, e.Name()))
			}
		}
		if len(in) == 0 {
			return nil, fmt.Errorf("--targets %s: the directory holds no *.yaml target file", a)
		}
		sort.Strings(in)
		files = append(files, in...)
	}
	if len(files) == 0 {
		return nil, errors.New("--targets: give at least one directory or target file")
	}
	return files, nil
}

func readTarget(path string) (*target.Target, error) {
	tf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--targets: %w", err)
	}
	defer tf.Close()
	t, err := target.Parse(tf)
	if err != nil {
		return nil, fmt.Errorf("--targets %s: %w", path, err)
	}
	return t, nil
}

// rolloutOutput is what --output json prints.
type rolloutOutput struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	workflows.RolloutResult
}

// runRollout starts the rollout and follows it to its end.
func runRollout(ctx context.Context, c client.Client, req workflows.RolloutRequest, id string, detach bool, output string, w io.Writer) error {
	if err := requireSearchAttributes(ctx, c); err != nil {
		return err
	}
	// A rollout already running under this ID is refused, not followed: the
	// client would otherwise hand back that rollout's run, as if this one
	// (its own certificate and targets) had started.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RolloutID(id), TaskQueue: contract.TaskQueue,
		WorkflowExecutionErrorWhenAlreadyStarted: true}, contract.RolloutWorkflow, req)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return invalid(fmt.Sprintf("--id %s: %s is already running: give another --id, or follow it with: certctl rollout status %s --follow",
			id, workflows.RolloutID(id), id))
	}
	if err != nil {
		return &exitError{code: 1, msg: "start RolloutWorkflow: " + err.Error()}
	}
	text := output != "json"
	if text {
		fmt.Fprintf(w, "rollout: %s (%d targets, canary %d, batch %d, max failures %d)\n", run.GetID(), len(req.Targets), *req.Canary, req.Batch, req.MaxFailures)
	}
	if detach {
		if !text {
			return json.NewEncoder(w).Encode(map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
		}
		fmt.Fprintf(w, "follow:  certctl rollout status %s --follow\n", id)
		return nil
	}
	return followRollout(ctx, c, run, id, text, w)
}

// followRollout prints a rollout's progress until it ends, then its result;
// the exit code is the outcome's.
func followRollout(ctx context.Context, c client.Client, run client.WorkflowRun, id string, text bool, w io.Writer) error {
	var err error
	done := make(chan error, 1)
	var res workflows.RolloutResult
	go func() { done <- run.Get(ctx, &res) }()
	p := progressPrinter{w: w, quiet: !text}
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for err == nil {
		select {
		case err = <-done:
			if err == nil {
				err = errFinished
			}
		case <-tick.C:
			p.show(ctx, c, run.GetID())
		case <-ctx.Done():
			fmt.Fprintf(w, "detached: the rollout goes on; follow it again with: certctl rollout status %s --follow\n", id)
			return &exitError{code: exitDetached}
		}
	}
	if errors.Is(err, errFinished) {
		err = nil
	}
	p.show(ctx, c, run.GetID())
	// Continue-as-new is followed by run.Get; anything else without a
	// result ended the rollout (terminated).
	if err != nil && (!detailsOf(err, &res) || res.Outcome == "") {
		return &exitError{code: 1, msg: fmt.Sprintf("rollout %s: %v", run.GetID(), err)}
	}
	return report(w, text, rolloutOutput{WorkflowID: run.GetID(), RunID: run.GetRunID(), RolloutResult: res},
		func() { printRolloutResult(w, res) }, res.Outcome, contract.RolloutCompleted)
}

var errFinished = errors.New("finished")

// progressPrinter prints each deploy as it ends and the counts when they
// change, from the rollout's progress query.
type progressPrinter struct {
	w     io.Writer
	quiet bool
	seen  int
	last  string
}

func (p *progressPrinter) show(ctx context.Context, c client.Client, id string) {
	if p.quiet {
		return
	}
	pr, err := queryProgress(ctx, c, id)
	if err != nil {
		return
	}
	if len(pr.Recent) > 0 && pr.Recent[0].Seq > p.seen+1 {
		fmt.Fprintf(p.w, "  … %d more ended (see certctl rollout status)\n", pr.Recent[0].Seq-p.seen-1)
	}
	for _, d := range pr.Recent {
		if d.Seq <= p.seen {
			continue
		}
		p.seen = d.Seq
		line := fmt.Sprintf("  %-20s %-18s %6d ms  %s", d.TargetID, d.Outcome, d.Ms, d.WorkflowID)
		if d.Error != "" {
			line += "\n      " + oneLine(d.Error)
		}
		fmt.Fprintln(p.w, line)
	}
	if s := progressLine(pr); s != p.last {
		p.last = s
		fmt.Fprintln(p.w, s)
	}
}

// progressLine is the counts: per outcome, in flight, pending, state.
func progressLine(pr workflows.RolloutProgress) string {
	var outs []string
	for o, n := range pr.Outcomes {
		outs = append(outs, fmt.Sprintf("%s %d", o, n))
	}
	slices.Sort(outs)
	s := fmt.Sprintf("[%s, %s] %d/%d done", pr.State, pr.Phase, pr.Done, pr.Total)
	if len(outs) > 0 {
		s += " (" + strings.Join(outs, ", ") + ")"
	}
	s += fmt.Sprintf(", %d pending", pr.Pending)
	if len(pr.InFlight) > 0 {
		s += ", in flight: " + strings.Join(pr.InFlight, " ")
	}
	return s
}

func queryProgress(ctx context.Context, c client.Client, id string) (workflows.RolloutProgress, error) {
	var pr workflows.RolloutProgress
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := c.QueryWorkflow(qctx, id, "", contract.QueryProgress)
	if err != nil {
		return pr, err
	}
	return pr, v.Get(&pr)
}

func printRolloutResult(w io.Writer, res workflows.RolloutResult) {
	fmt.Fprintf(w, "succeeded: %d of %d\n", res.Succeeded, res.Total)
	for _, f := range res.Failed {
		fmt.Fprintf(w, "failed:    %s %s (%s)\n", f.TargetID, f.Outcome, f.WorkflowID)
		if f.Error != "" {
			fmt.Fprintf(w, "           %s\n", oneLine(f.Error))
		}
	}
	if res.NotStarted > 0 {
		fmt.Fprintf(w, "not started: %d (untouched)\n", res.NotStarted)
	}
	if res.Error != "" {
		fmt.Fprintf(w, "error: %s\n", oneLine(res.Error))
	}
	fmt.Fprintf(w, "outcome: %s\n", res.Outcome)
}

// rolloutWorkflowID takes "rollout/<id>" or "<id>".
func rolloutWorkflowID(arg string) string {
	if strings.HasPrefix(arg, contract.RolloutIDPrefix) {
		return arg
	}
	return workflows.RolloutID(arg)
}

func rolloutSignalCmd(signal, short string) *cobra.Command {
	return &cobra.Command{
		Use:   signal + " ROLLOUT_ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd.Context(), func(ctx context.Context, c client.Client) error {
				id := rolloutWorkflowID(args[0])
				if err := c.SignalWorkflow(ctx, id, "", signal, nil); err != nil {
					return &exitError{code: 1, msg: fmt.Sprintf("%s %s: %v", signal, id, err)}
				}
				pr, err := queryProgress(ctx, c, id)
				if err != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: sent %s\n", id, signal)
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: sent %s\n%s\n", id, signal, progressLine(pr))
				return nil
			})
		},
	}
}

func rolloutStatusCmd() *cobra.Command {
	var output string
	var follow bool
	cmd := &cobra.Command{
		Use:   "status ROLLOUT_ID",
		Short: "Where a rollout is: counts per outcome, deploys in flight, failures",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if follow {
				return following(cmd, func(ctx context.Context, c client.Client) error {
					id := rolloutWorkflowID(args[0])
					return followRollout(ctx, c, c.GetWorkflow(ctx, id, ""), strings.TrimPrefix(id, contract.RolloutIDPrefix), output != "json", cmd.OutOrStdout())
				})
			}
			return withClient(cmd.Context(), func(ctx context.Context, c client.Client) error {
				id := rolloutWorkflowID(args[0])
				pr, err := queryProgress(ctx, c, id)
				w := cmd.OutOrStdout()
				if err != nil {
					// A rollout refused before it started (InvalidInput)
					// answers no query: its result says why.
					if res, ok := closedRollout(ctx, c, id); ok {
						return report(w, output != "json", rolloutOutput{WorkflowID: id, RolloutResult: res},
							func() { printRolloutResult(w, res) }, res.Outcome, contract.RolloutCompleted)
					}
					return &exitError{code: 1, msg: fmt.Sprintf("status %s: %v", id, err)}
				}
				if output == "json" {
					return json.NewEncoder(w).Encode(pr)
				}
				fmt.Fprintf(w, "rollout: %s\n%s\n", id, progressLine(pr))
				for _, f := range pr.Failed {
					fmt.Fprintf(w, "failed:  %s %s (%s)\n", f.TargetID, f.Outcome, f.WorkflowID)
					if f.Error != "" {
						fmt.Fprintf(w, "         %s\n", oneLine(f.Error))
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	cmd.Flags().BoolVar(&follow, "follow", false, "follow the rollout to its end, as certctl rollout does, and exit with its outcome's code")
	return cmd
}

// closedRollout is the result of a rollout that has ended, if it has.
func closedRollout(ctx context.Context, c client.Client, id string) (workflows.RolloutResult, bool) {
	var res workflows.RolloutResult
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return res, false
	}
	err = c.GetWorkflow(ctx, id, "").Get(ctx, &res)
	if err != nil && !detailsOf(err, &res) {
		return res, false
	}
	return res, res.Outcome != ""
}

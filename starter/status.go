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
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/probe"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/workflows"
	"github.com/spf13/cobra"
)

// EnvWebUI is the Temporal Web UI's address (http://127.0.0.1:8233): when
// set, status prints a link to the last deploy.
const EnvWebUI = "CERTCTL_WEB_UI"

func statusCmd() *cobra.Command {
	var targetArg, output string
	cmd := &cobra.Command{
		Use:   "status --target TARGET_ID|TARGET.yaml [--output json]",
		Short: "The last deploy of a target, the leaf it serves now and the leaf on disk",
		Long: `Prints the last deploy of the target (from visibility: CertctlTarget), its
outcome, steps and when it ran, with a Web UI link when CERTCTL_WEB_UI is set;
the leaf the target serves now, probed from this machine at its
post_deploy_verify endpoint; and the leaf in its certificate file, read by the
worker of its host (InspectWorkflow on "certctl-host-<host>", or on "certctl"
for a target without host). It says when the served leaf is not the one the
last deploy deployed, and when the file on disk is not what is served.

--target names a target file (YAML), or a target ID: the target is then read
from the last deploy's input (decoded with this certctl's codec key).

The read on disk waits up to CERTCTL_HOST_WAIT (default 5m) for the host's
worker, then says which worker to start.

Exit codes: 0 every fact read; 1 the cluster, the endpoint or the host's
worker could not be reached (what was read is still printed); 2 bad input
(the message names the flag).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			sel, err := selectTarget(targetArg)
			if err != nil {
				return err
			}
			wait, err := hostWaitFromEnv()
			if err != nil {
				return invalid(err.Error())
			}
			return following(cmd, func(ctx context.Context, c client.Client) error {
				if err := requireSearchAttributes(ctx, c); err != nil {
					return err
				}
				st, err := readStatus(ctx, c, sel, wait.D())
				if err != nil {
					return err
				}
				return printTargetStatus(cmd.OutOrStdout(), st, output)
			})
		},
	}
	cmd.Flags().StringVar(&targetArg, "target", "", "target ID, or target file (YAML)")
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

// targetSelection is what --target named: a target file (file is set) or
// a target ID.
type targetSelection struct {
	id   string
	file string
	t    *target.Target
}

// selectTarget reads --target: a path (it holds a '/', ends in .yaml or
// .yml, or is an existing file) is a target file, parsed here; anything
// else is a target ID.
func selectTarget(arg string) (targetSelection, error) {
	if arg == "" {
		return targetSelection{}, invalid("--target: give a target ID or a target file")
	}
	fi, statErr := os.Stat(arg)
	if strings.Contains(arg, "/") || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") || (statErr == nil && fi.Mode().IsRegular()) {
		f, err := os.Open(arg)
		if err != nil {
			return targetSelection{}, invalid("--target: " + err.Error())
		}
		defer f.Close()
		t, err := target.Parse(f)
		if err != nil {
			return targetSelection{}, invalid(fmt.Sprintf("--target %s: %v", arg, err))
		}
		return targetSelection{id: t.TargetID, file: arg, t: t}, nil
	}
	if err := lookupID(arg); err != nil {
		return targetSelection{}, err
	}
	return targetSelection{id: arg}, nil
}

// lookupID refuses a target ID that cannot go into a visibility query as
// it is (a quote, a backslash, a control character).
func lookupID(id string) error {
	if strings.ContainsAny(id, `'"\`) || strings.IndexFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return invalid(fmt.Sprintf("--target %q: a target ID with a quote, backslash or control character cannot be looked up; give the target file instead", id))
	}
	return nil
}

// deployQuery finds a target's deploys in visibility.
func deployQuery(id string) string {
	return fmt.Sprintf("%s = '%s' AND WorkflowType = '%s'", workflows.TargetKey.GetName(), id, contract.DeployWorkflow)
}

// hostRunOf says whether e is the host run a DeployWorkflow delegated to
// ("<id>/host", its child): that deploy is listed, not its run.
func hostRunOf(e *workflowpb.WorkflowExecutionInfo) bool {
	id := e.GetExecution().GetWorkflowId()
	parent := e.GetParentExecution().GetWorkflowId()
	return parent != "" && id == parent+contract.HostRunSuffix
}

// lastDeploy is the newest deploy of a target.
type lastDeploy struct {
	WorkflowID string     `json:"workflow_id"`
	RunID      string     `json:"run_id"`
	WebUI      string     `json:"web_ui,omitempty"`
	Status     string     `json:"status"`
	Started    time.Time  `json:"started"`
	Ended      *time.Time `json:"ended,omitempty"`
	TookMs     int64      `json:"took_ms,omitempty"`
	// Outcome is the deploy's (its result's, else its CertctlOutcome);
	// empty while it runs or when it was terminated before it had one.
	Outcome    string           `json:"outcome,omitempty"`
	LeafSHA256 string           `json:"leaf_sha256,omitempty"`
	Steps      []workflows.Step `json:"steps,omitempty"`
	Error      string           `json:"error,omitempty"`
}

// servedLeaf is the leaf an endpoint serves.
type servedLeaf struct {
	Endpoint string    `json:"endpoint"`
	SHA256   string    `json:"sha256"`
	Name     string    `json:"name"`
	NotAfter time.Time `json:"not_after"`
}

// statusOutput is what status prints (--output json: this object).
type statusOutput struct {
	TargetID   string            `json:"target_id"`
	TargetType string            `json:"target_type,omitempty"`
	Host       string            `json:"host,omitempty"`
	LastDeploy *lastDeploy       `json:"last_deploy"`
	Served     *servedLeaf       `json:"served,omitempty"`
	ServedErr  string            `json:"served_error,omitempty"`
	Disk       *renewal.Deployed `json:"disk,omitempty"`
	DiskErr    string            `json:"disk_error,omitempty"`
	// ServedIsDeployed: the served leaf is the last deploy's (the one it
	// deployed, or for a failed deploy the one it tried); absent when
	// either is unknown or the last deploy was a dry run.
	ServedIsDeployed *bool `json:"served_is_deployed,omitempty"`
	// Notes say in words what the facts mean.
	Notes []string `json:"notes"`
	// unreachable: the endpoint or the worker could not be reached (exit 1).
	unreachable bool
}

// readStatus gathers the facts: the last deploy, then (with the target,
// from the file or that deploy's input) the served leaf and the leaf on
// disk, both at once.
func readStatus(ctx context.Context, c client.Client, sel targetSelection, wait time.Duration) (*statusOutput, error) {
	st := &statusOutput{TargetID: sel.id}
	e, err := newestDeploy(ctx, c, sel.id)
	if err != nil {
		return nil, &exitError{code: 1, msg: err.Error()}
	}
	t := sel.t
	if e != nil {
		st.LastDeploy = describeDeploy(ctx, c, e)
		if t == nil {
			if t, err = deployedTarget(ctx, c, e); err != nil {
				return nil, &exitError{code: 1, msg: err.Error()}
			}
		}
	}
	if t == nil {
		return nil, invalid(fmt.Sprintf("--target %s: no deploy of this target in namespace %s (visibility: %s); give the target file (--target TARGET.yaml) to read what it serves",
			sel.id, dialedNamespace, deployQuery(sel.id)))
	}
	st.TargetType, st.Host = t.TargetType, t.Host
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		st.Served, st.ServedErr = probeServed(ctx, *t)
	}()
	go func() {
		defer wg.Done()
		d, err := inspectDisk(ctx, c, *t, wait)
		if err != nil {
			st.DiskErr = err.Error()
		} else {
			st.Disk = &d
		}
	}()
	wg.Wait()
	st.unreachable = (st.Served == nil && st.ServedErr != "" && t.Config.VerifyEnabled() && t.Config.PostDeployVerify.Endpoint != "") || st.DiskErr != ""
	st.judge()
	return st, nil
}

// newestDeploy is the target's newest DeployWorkflow in visibility (nil:
// none), not counting host runs.
func newestDeploy(ctx context.Context, c client.Client, id string) (*workflowpb.WorkflowExecutionInfo, error) {
	q := deployQuery(id)
	var token []byte
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 20, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list the deploys of %s (%s): %w", id, q, err)
		}
		for _, e := range resp.GetExecutions() {
			if !hostRunOf(e) {
				return e, nil
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return nil, nil
		}
	}
}

// describeDeploy reads a deploy's result: its steps and outcome, or, for
// one that failed, the DeployResult its failure carries.
func describeDeploy(ctx context.Context, c client.Client, e *workflowpb.WorkflowExecutionInfo) *lastDeploy {
	id, runID := e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()
	d := &lastDeploy{WorkflowID: id, RunID: runID, Status: executionStatus(e.GetStatus()), Started: e.GetStartTime().AsTime().UTC(),
		Outcome: keyword(e.GetSearchAttributes().GetIndexedFields()[workflows.OutcomeKey.GetName()])}
	if ui := os.Getenv(EnvWebUI); ui != "" {
		d.WebUI = uiLink(strings.TrimRight(ui, "/")+"/namespaces/"+dialedNamespace, c.GetWorkflow(ctx, id, runID))
	}
	if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return d
	}
	if ct := e.GetCloseTime(); ct != nil {
		end := ct.AsTime().UTC()
		d.Ended, d.TookMs = &end, end.Sub(d.Started).Milliseconds()
	}
	var res workflows.DeployResult
	err := c.GetWorkflow(ctx, id, runID).Get(ctx, &res)
	var te *temporal.TerminatedError
	switch {
	case err == nil:
	case detailsOf(err, &res) && res.Outcome != "":
	case errors.As(err, &te):
		d.Error = "terminated: " + terminationReason(ctx, c, id, runID)
		return d
	default:
		d.Error = err.Error()
		return d
	}
	d.Outcome, d.LeafSHA256, d.Steps = res.Outcome, res.LeafSHA256, res.Steps
	if res.Error != "" {
		d.Error = res.Error
	}
	return d
}

// terminationReason is the reason a terminated deploy's history gives
// (certctl's HostUnavailable message when it gave the run up).
func terminationReason(ctx context.Context, c client.Client, id, runID string) string {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			break
		}
		if a := ev.GetWorkflowExecutionTerminatedEventAttributes(); a != nil {
			return a.GetReason()
		}
	}
	return "(no reason recorded)"
}

// deployedTarget reads the target from a deploy's input (the first event
// of its history), decoded with this certctl's codec. Only the target is
// decoded: the material beside it is never kept.
func deployedTarget(ctx context.Context, c client.Client, e *workflowpb.WorkflowExecutionInfo) (*target.Target, error) {
	id, runID := e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return nil, fmt.Errorf("deploy %s has no history", id)
	}
	ev, err := it.Next()
	if err != nil {
		return nil, fmt.Errorf("read deploy %s's history: %w", id, err)
	}
	in := ev.GetWorkflowExecutionStartedEventAttributes().GetInput()
	var req struct {
		Target target.Target `json:"target"`
	}
	if in == nil || len(in.GetPayloads()) == 0 {
		return nil, fmt.Errorf("deploy %s's first event holds no input to read the target from: give --target TARGET.yaml", id)
	}
	if err := dataConverter().FromPayload(in.GetPayloads()[0], &req); err != nil {
		return nil, fmt.Errorf("read the target from deploy %s's input: %v (it is encrypted under a codec key this certctl does not hold: set CERTCTL_CODEC_KEY_FILE, or give --target TARGET.yaml)", id, err)
	}
	if req.Target.TargetID == "" {
		return nil, fmt.Errorf("deploy %s's input names no target: give --target TARGET.yaml", id)
	}
	return &req.Target, nil
}

// probeServed reads the leaf the target's post_deploy_verify endpoint
// serves, from this machine, as Verify does (package probe).
func probeServed(ctx context.Context, t target.Target) (*servedLeaf, string) {
	v := t.Config.PostDeployVerify
	if !t.Config.VerifyEnabled() || v.Endpoint == "" {
		return nil, "not probed: the target has no post_deploy_verify endpoint"
	}
	conn, err := connectors.Get(t.TargetType)
	if err != nil {
		return nil, err.Error()
	}
	_, _, _, timeout := t.Config.VerifyPolicy()
	certs, err := probe.Chain(ctx, v.Endpoint, probe.Host(v), connectors.VerifyProtocol(conn, t.Config), timeout)
	if err != nil {
		return nil, fmt.Sprintf("could not probe %s: %v", v.Endpoint, err)
	}
	return &servedLeaf{Endpoint: v.Endpoint, SHA256: material.Fingerprint(certs[0].Raw), Name: material.Name(certs[0]), NotAfter: certs[0].NotAfter.UTC()}, ""
}

// inspectDisk runs InspectWorkflow on the target's queue and returns what
// it read. No worker picking it up within wait is HostUnavailable: the run
// is terminated (it would have touched nothing) and the error names the
// worker to start.
func inspectDisk(ctx context.Context, c client.Client, t target.Target, wait time.Duration) (renewal.Deployed, error) {
	if wait <= 0 {
		wait = workflows.DefaultHostWait
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	queue := workflows.QueueFor(t)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        fmt.Sprintf("%s%s/%s-%s", workflows.InspectIDPrefix, t.TargetID, time.Now().UTC().Format("20060102T150405Z"), hex.EncodeToString(b)),
		TaskQueue: queue,
		// Whatever happens to this certctl, the run does not outlive it by much.
		WorkflowExecutionTimeout: wait + 2*time.Minute,
	}, contract.InspectWorkflow, t)
	if err != nil {
		return renewal.Deployed{}, fmt.Errorf("start %s on %s: %w", contract.InspectWorkflow, queue, err)
	}
	var d renewal.Deployed
	wctx, cancel := context.WithTimeout(ctx, wait)
	err = run.Get(wctx, &d)
	cancel()
	if err == nil {
		return d, nil
	}
	// The run ended without a result (PolicyRefused, say), or certctl is
	// stopping: say so. Anything else is the wait's end (its long poll
	// ends with the deadline, as a canceled stream or a timeout).
	var failed *temporal.WorkflowExecutionError
	if ctx.Err() != nil || errors.As(err, &failed) {
		return d, inspectErr(run, err)
	}
	// Unknown is not absent: an error reading the history counts as picked up.
	if started, perr := activities.PickedUp(ctx, c, run.GetID(), run.GetRunID()); !started && perr == nil {
		msg := diskUnavailable(t, wait)
		_ = c.TerminateWorkflow(ctx, run.GetID(), run.GetRunID(), msg)
		return d, errors.New(msg)
	}
	// Picked up: the read itself is bounded (three tries of 30s).
	if err := run.Get(ctx, &d); err != nil {
		return d, inspectErr(run, err)
	}
	return d, nil
}

// inspectErr says why the read failed: the worker's own words and error
// type (PolicyRefused naming the rule, say) when it gave them.
func inspectErr(run client.WorkflowRun, err error) error {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return fmt.Errorf("not read: %s (%s, %s %s)", ae.Message(), ae.Type(), contract.InspectWorkflow, run.GetID())
	}
	return fmt.Errorf("not read: %s %s: %w", contract.InspectWorkflow, run.GetID(), err)
}

// diskUnavailable says no worker read the file, and which to start.
func diskUnavailable(t target.Target, wait time.Duration) string {
	if t.Host == "" {
		return fmt.Sprintf("HostUnavailable: no worker polled %s for %s; start one with: certctl-worker; the leaf on disk was not read", contract.TaskQueue, wait)
	}
	return workflows.HostUnavailableMessage(t.Host, wait) + "; the leaf on disk was not read"
}

// judge says in words what the facts mean.
func (st *statusOutput) judge() {
	d := st.LastDeploy
	if d == nil {
		st.Notes = append(st.Notes, "no deploy of this target in visibility")
	}
	if d != nil && d.Outcome == contract.DryRunPassed {
		st.Notes = append(st.Notes, "the last deploy was a dry run: it landed nothing (see `certctl history` for the deploys before it)")
	} else if st.Served != nil && d != nil && d.LeafSHA256 != "" {
		landed := d.Outcome == contract.Deployed || d.Outcome == contract.SkippedIdempotent
		same := st.Served.SHA256 == d.LeafSHA256
		st.ServedIsDeployed = &same
		switch {
		case landed && same:
			st.Notes = append(st.Notes, "serving the leaf the last deploy deployed")
		case landed:
			st.Notes = append(st.Notes, fmt.Sprintf("serving another leaf than the last deploy deployed (%s): it changed since %s; deploy again to put it back", short(d.LeafSHA256), d.WorkflowID))
		case same:
			st.Notes = append(st.Notes, fmt.Sprintf("serving the leaf the last deploy tried, though it ended %s", d.Outcome))
		default:
			st.Notes = append(st.Notes, fmt.Sprintf("serving another leaf than the last deploy tried (%s): it ended %s", short(d.LeafSHA256), d.Outcome))
		}
	}
	if st.Served != nil && st.Disk != nil && st.Disk.LeafSHA256 != "" && st.Served.SHA256 != st.Disk.LeafSHA256 {
		st.Notes = append(st.Notes, fmt.Sprintf("the file on disk holds another leaf than the one served: the server has not loaded %s (reload it), or serves another file", st.Disk.Path))
	}
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

func printTargetStatus(w io.Writer, st *statusOutput, output string) error {
	if output == "json" {
		if st.Notes == nil {
			st.Notes = []string{}
		}
		if err := json.NewEncoder(w).Encode(st); err != nil {
			return err
		}
	} else {
		printStatusText(w, st)
	}
	if st.unreachable {
		return &exitError{code: 1}
	}
	return nil
}

func printStatusText(w io.Writer, st *statusOutput) {
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	where := st.TargetType
	if st.Host != "" {
		where += " on host " + st.Host
	}
	fmt.Fprintf(w, "target:      %s (%s)\n", st.TargetID, where)
	if d := st.LastDeploy; d == nil {
		fmt.Fprintln(w, "last deploy: none")
	} else {
		fmt.Fprintf(w, "last deploy: %s (%s)\n", d.WorkflowID, d.Status)
		if d.WebUI != "" {
			fmt.Fprintf(w, "web ui:      %s\n", d.WebUI)
		}
		fmt.Fprintf(w, "started:     %s\n", at(d.Started))
		if d.Ended != nil {
			fmt.Fprintf(w, "ended:       %s (took %d ms)\n", at(*d.Ended), d.TookMs)
		}
		for _, s := range d.Steps {
			state := "ok    "
			if s.Failed {
				state = "FAILED"
			}
			line := fmt.Sprintf("  %-16s %s %6d ms", s.Name, state, s.Ms)
			if s.Detail != "" {
				line += "  " + oneLine(s.Detail)
			}
			fmt.Fprintln(w, line)
		}
		if d.Error != "" {
			fmt.Fprintf(w, "error:       %s\n", oneLine(d.Error))
		}
		outcome := d.Outcome
		if outcome == "" {
			outcome = "(none)"
		}
		fmt.Fprintf(w, "outcome:     %s\n", outcome)
		if d.LeafSHA256 != "" {
			fmt.Fprintf(w, "deployed:    %s\n", d.LeafSHA256)
		}
	}
	if s := st.Served; s != nil {
		fmt.Fprintf(w, "served:      %s %s, not after %s (at %s)\n", s.SHA256, s.Name, at(s.NotAfter), s.Endpoint)
	} else {
		fmt.Fprintf(w, "served:      %s\n", st.ServedErr)
	}
	switch d := st.Disk; {
	case d == nil:
		fmt.Fprintf(w, "disk:        %s\n", st.DiskErr)
	case d.LeafSHA256 != "":
		fmt.Fprintf(w, "disk:        %s, not after %s (%s)\n", d.LeafSHA256, at(d.NotAfter), d.Path)
	default:
		fmt.Fprintf(w, "disk:        %s (%s)\n", d.Problem, d.Path)
	}
	for _, n := range st.Notes {
		fmt.Fprintf(w, "note:        %s\n", n)
	}
}

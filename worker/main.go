// Command certctl-worker runs certctl's workflows and steps.
//
//	certctl-worker [--host NAME [--workflows]] [--metrics-addr 127.0.0.1:9464] [--notify-config FILE]
//
// With --host it polls only "certctl-host-NAME": the file steps of targets on
// this machine. Without it polls "certctl": the workflows and the steps of
// agentless targets. One machine may run both, as two processes or as one
// with --host NAME --workflows (a one-host setup needs no second worker).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/clientenv"
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/lock"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/notify"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/workflows"
)

// config is what the flags ask for.
type config struct {
	host        string // poll certctl-host-HOST
	workflows   bool   // poll certctl (the workflows); the default without --host
	metricsAddr string
	// notifyConfig is the workflow worker's notification channels
	// (package notify); "" sends none.
	notifyConfig string
}

// parseFlags reads args (without the program name); a refused flag is exit 2.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("certctl-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.host, "host", "", "poll certctl-host-`NAME` (file steps for targets on this host) instead of certctl")
	fs.BoolVar(&c.workflows, "workflows", false, "with --host: poll certctl as well, in the same process (a one-host setup needs no second worker)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at `ADDR`/metrics (e.g. 127.0.0.1:9464)")
	fs.StringVar(&c.notifyConfig, "notify-config", "", "the workflow worker's notification channels, a YAML `FILE` (docs/notifications.md)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.workflows && c.host == "" {
		return c, errors.New("--workflows: only with --host NAME (without --host the worker polls certctl already)")
	}
	if c.host == "" {
		c.workflows = true
	}
	if c.notifyConfig != "" && !c.workflows {
		return c, errors.New("--notify-config: only where the workflows run (without --host, or with --host NAME --workflows): notifications are sent from the certctl queue")
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "certctl-worker:", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(cfg, logger); err != nil {
		logger.Error("certctl-worker stopped", "error", err)
		os.Exit(1)
	}
}

func run(cfg config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A config that does not read stops the worker before it connects.
	notes, err := notify.Load(cfg.notifyConfig)
	if err != nil {
		return err
	}
	opts, err := clientenv.Options(logger)
	if err != nil {
		return err
	}
	if cfg.metricsAddr != "" {
		// One registry, one scrape: certctl's metrics and the SDK's.
		ln, err := net.Listen("tcp", cfg.metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		handler, closer := metrics.SDKHandler(func(err error) { logger.Warn("a Temporal SDK metric was not registered", "error", err) })
		opts.MetricsHandler = handler
		defer closer.Close()
		logger.Info("serving metrics", "addr", ln.Addr().String())
	}
	opts.Logger = withSearchAttributeAdvice(opts.Logger, opts.Namespace)
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal: %w", err)
	}
	defer c.Close()
	checkSearchAttributes(ctx, c, opts.Namespace, logger)

	// Fail closed: every step of a target is checked against this
	// machine's own policy file before it runs.
	pol, err := policy.Load(policy.PathFromEnv())
	if err != nil {
		return err
	}
	logPolicy(logger, pol)
	auditLog := audit.PathFromEnv()
	var ws []worker.Worker
	if cfg.host != "" {
		ws = append(ws, hostWorker(c, cfg.host, pol, auditLog, logger))
	}
	if cfg.workflows {
		ws = append(ws, workflowWorker(c, pol, auditLog, notes, logger))
	}
	if cfg.host != "" {
		sweepLeftovers(ctx, c, logger)
	}
	for _, w := range ws {
		if err := w.Start(); err != nil {
			return err
		}
		defer w.Stop()
	}
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}

// hostWorker polls "certctl-host-HOST": the host runs of DeployWorkflow
// (their steps are local activities on this worker) and the file steps of
// targets on this machine, each checked against the host policy
// (policy.Interceptor, which sees local activities too); it runs nothing
// else.
func hostWorker(c client.Client, host string, pol *policy.Policy, auditLog string, logger *slog.Logger) worker.Worker {
	queue := workflows.HostQueue(host)
	w := worker.New(c, queue, worker.Options{Interceptors: []interceptor.WorkerInterceptor{policy.Interceptor(pol)}})
	workflows.RegisterHost(w)
	w.RegisterActivity(&activities.Activities{Client: c})
	w.RegisterActivity(renewal.New(auditLog)) // InspectDeployed
	logger.Info("certctl-worker polling", "task_queue", queue)
	return w
}

// workflowWorker polls "certctl": the workflows, the activities without a
// target (audit, issue, profiles, locks) and the steps of targets without
// host, which write on its machine (policy.TargetsInterceptor checks those).
func workflowWorker(c client.Client, pol *policy.Policy, auditLog string, notes *notify.Config, logger *slog.Logger) worker.Worker {
	w := worker.New(c, contract.TaskQueue, worker.Options{Interceptors: []interceptor.WorkerInterceptor{policy.TargetsInterceptor(pol)}})
	workflows.Register(w)
	// The client serves the local activities by which a deploy asks for a
	// lock (RequestFileLock, RequestTargetLock) and ApprovalRuns.
	w.RegisterActivity(&activities.Activities{Client: c})
	w.RegisterActivity(&lock.Activities{Client: c})
	w.RegisterActivity(renewal.New(auditLog)) // Audit, Issue, LoadProfile
	w.RegisterActivity(&notify.Activities{Config: notes})
	logNotify(logger, notes)
	logger.Info("approval audit log", "path", auditLog, "env", audit.EnvPath)
	logger.Info("renewal profiles", "dir", profile.DirFromEnv(), "env", profile.EnvDir)
	if bypass, err := renewal.BypassFromEnv(); err != nil || bypass {
		logger.Warn("CERTCTL_APPROVAL_BYPASS is set: every renewal this worker runs auto-approves as system-bypass; dev and CI only, never production",
			"value", os.Getenv(renewal.EnvBypass))
	}
	logger.Info("certctl-worker polling", "task_queue", contract.TaskQueue)
	return w
}

// logPolicy says at start which policy the host worker enforces: a WARN
// when there is none (every target refused) or when it allows anything.
func logPolicy(logger *slog.Logger, p *policy.Policy) {
	if p.Missing {
		logger.Warn("no host policy file: every target is refused until one is written",
			"path", p.File, "env", policy.EnvPath)
		return
	}
	logger.Info("host policy", "path", p.File, "allow_paths", p.AllowPaths, "allow_commands", len(p.AllowCommands), "allow_ssh_hosts", p.AllowSSHHosts)
	if w := p.Wildcards(); len(w) > 0 {
		logger.Warn("the host policy allows anything (\"*\"): dev and tests only, never production", "path", p.File, "fields", w)
	}
}

// logNotify says at start which notification channels the workflow
// worker sends to.
func logNotify(logger *slog.Logger, c *notify.Config) {
	if len(c.Channels) == 0 {
		logger.Info("no notification channels (--notify-config): failed deploys, halted rollouts and waiting approvals notify nobody")
		return
	}
	for _, ch := range c.Channels {
		events := ch.Events
		if len(events) == 0 {
			events = []string{"every event"}
		}
		logger.Info("notification channel", "config", c.File, "name", ch.Name, "type", ch.Type, "events", events)
	}
	if c.ApprovalPendingAfter > 0 {
		logger.Info("approvals pending longer than this notify", "approval_pending_after", c.ApprovalPendingAfter.String())
	}
}

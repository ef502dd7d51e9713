// Command certctl-worker runs certctl's workflows and steps.
//
//	certctl-worker [--host NAME] [--metrics-addr 127.0.0.1:9464]
//
// With --host it polls only "certctl-host-NAME": the file steps of targets on
// this machine. Without it polls "certctl": the workflows and the steps of
// agentless targets. One machine may run both.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/clientenv"
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/lock"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/workflows"
)

func main() {
	host := flag.String("host", "", "poll certctl-host-`NAME` (file steps for targets on this host) instead of certctl")
	metricsAddr := flag.String("metrics-addr", "", "serve Prometheus metrics at `ADDR`/metrics (e.g. 127.0.0.1:9464)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*host, *metricsAddr, logger); err != nil {
		logger.Error("certctl-worker stopped", "error", err)
		os.Exit(1)
	}
}

func run(host, metricsAddr string, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.Handler())
		srv := &http.Server{Handler: mux}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		logger.Info("serving metrics", "addr", ln.Addr().String())
	}
	opts, err := clientenv.Options(logger)
	if err != nil {
		return err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal: %w", err)
	}
	defer c.Close()

	queue := contract.TaskQueue
	if host != "" {
		queue = workflows.HostQueue(host)
	}
	// Fail closed: every step of a target is checked against this
	// machine's own policy file before it runs. A host worker runs nothing
	// else; the certctl worker also runs activities without a target
	// (audit, issue, profiles, locks), and the steps of targets without
	// host, which write on its machine.
	pol, err := policy.Load(policy.PathFromEnv())
	if err != nil {
		return err
	}
	logPolicy(logger, pol)
	check := policy.Interceptor(pol)
	if host == "" {
		check = policy.TargetsInterceptor(pol)
	}
	w := worker.New(c, queue, worker.Options{Interceptors: []interceptor.WorkerInterceptor{check}})
	if host == "" {
		workflows.Register(w)
	}
	// The client serves the local activities by which a deploy asks for a
	// lock (RequestFileLock, RequestTargetLock) and ApprovalRuns.
	w.RegisterActivity(&activities.Activities{Client: c})
	w.RegisterActivity(&lock.Activities{Client: c})
	// Audit and Issue run on "certctl"; InspectDeployed on the host's queue.
	auditLog := audit.PathFromEnv()
	w.RegisterActivity(renewal.New(auditLog))
	if host == "" {
		logger.Info("approval audit log", "path", auditLog, "env", audit.EnvPath)
		logger.Info("renewal profiles", "dir", profile.DirFromEnv(), "env", profile.EnvDir)
		if bypass, err := renewal.BypassFromEnv(); err != nil || bypass {
			logger.Warn("CERTCTL_APPROVAL_BYPASS is set: every renewal this worker runs auto-approves as system-bypass; dev and CI only, never production",
				"value", os.Getenv(renewal.EnvBypass))
		}
	}
	logger.Info("certctl-worker polling", "task_queue", queue)
	if host != "" {
		sweepLeftovers(ctx, c, logger)
	}
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Stop()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}

// logPolicy says at start which policy the host worker enforces: a WARN
// when there is none (every target refused) or when it allows anything.
func logPolicy(logger *slog.Logger, p *policy.Policy) {
	if p.Missing {
		logger.Warn("no host policy file: every target is refused until one is written",
			"path", p.File, "env", policy.EnvPath)
		return
	}
	logger.Info("host policy", "path", p.File, "allow_paths", p.AllowPaths, "allow_commands", len(p.AllowCommands))
	if w := p.Wildcards(); len(w) > 0 {
		logger.Warn("the host policy allows anything (\"*\"): dev and tests only, never production", "path", p.File, "fields", w)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/clientenv"
	"github.com/certctl/certctl/codec"
	"github.com/certctl/certctl/devenv"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/workflows"
)

type devFlags struct {
	config, stateDir, workerBin string
	notifyConfig, metricsAddr   string
	once                        bool
}

func devCmd() *cobra.Command {
	var f devFlags
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "The embedded default: a Temporal dev server, workers, a real nginx on loopback, and one deploy",
		Long: `Starts the Temporal dev server described by temporal-dev.yaml (the temporal CLI,
history in a SQLite file under the state dir, Web UI on, certctl's search
attributes registered), one worker polling both queues (certctl-worker --host
localhost --workflows), and a real nginx on loopback serving a self-signed certificate; then deploys a fresh certificate to
it and prints the Web UI link to that workflow. Runs until Ctrl-C (or, with
--once, stops after the deploy).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDev(ctx, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "temporal-dev.yaml", "dev server description")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "where the dev server's database, logs, nginx and certificates live")
	fl.StringVar(&f.workerBin, "worker-bin", "", "certctl-worker binary (default: beside certctl, then PATH)")
	fl.BoolVar(&f.once, "once", false, "stop everything after the deploy instead of waiting for Ctrl-C")
	fl.StringVar(&f.notifyConfig, "notify-config", "", "the worker's notification channels (docs/notifications.md), as certctl-worker --notify-config")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve the worker's /metrics here (host:port), as certctl-worker --metrics-addr")
	return cmd
}

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "certctl", "dev")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "certctl-dev")
	}
	return filepath.Join(home, ".local", "state", "certctl", "dev")
}

func findWorker(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "certctl-worker")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("certctl-worker"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("certctl-worker not found beside certctl or on PATH: run `make build`")
}

func runDev(ctx context.Context, f devFlags, w io.Writer) (err error) {
	fail := func(format string, args ...any) error {
		return &exitError{code: 1, msg: fmt.Sprintf(format, args...)}
	}
	cfg, err := devenv.LoadDevConfig(f.config)
	if err != nil {
		return fail("%v", err)
	}
	workerBin, err := findWorker(f.workerBin)
	if err != nil {
		return fail("%v", err)
	}
	if _, err := devenv.NginxBinary(); err != nil {
		return fail("%v", err)
	}
	if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
		return fail("state dir: %v", err)
	}
	// certctl-dev runs the target's files under the state dir: nginx must
	// be able to traverse it.
	_ = os.Chmod(f.stateDir, 0o711)
	address := net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port))
	for _, port := range []int{cfg.Port, cfg.UIPort, cfg.CodecPort} {
		if l, err := net.Listen("tcp", net.JoinHostPort(cfg.IP, strconv.Itoa(port))); err != nil {
			return fail("port %d on %s is taken (another `certctl dev` or Temporal server running?): %v", port, cfg.IP, err)
		} else {
			l.Close()
		}
	}

	fmt.Fprintf(w, "state dir:      %s\n", f.stateDir)
	keyFile, cdc, err := devCodec(f.stateDir)
	if err != nil {
		return fail("%v", err)
	}
	uiOrigin := fmt.Sprintf("http://%s:%d", cfg.IP, cfg.UIPort)
	codecAddr := net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.CodecPort))
	codecCtx, stopCodec := context.WithCancel(context.Background())
	defer stopCodec()
	codecErr := make(chan error, 1)
	go func() {
		codecErr <- serveCodec(codecCtx, cdc, codecAddr, []string{uiOrigin, fmt.Sprintf("http://localhost:%d", cfg.UIPort)}, "", io.Discard)
	}()
	fmt.Fprintf(w, "codec server:   http://%s (payloads encrypted with key %s from %s)\n", codecAddr, cdc.KeyID(), keyFile)
	serverLog, err := os.Create(filepath.Join(f.stateDir, "temporal.log"))
	if err != nil {
		return fail("%v", err)
	}
	defer serverLog.Close()
	fmt.Fprintf(w, "temporal:       starting dev server on %s (Web UI http://%s:%d) ...\n", address, cfg.IP, cfg.UIPort)
	srv, err := devenv.StartDevServer(ctx, devenv.DevServerOptions{
		Config: cfg, Port: cfg.Port, UIPort: cfg.UIPort, UI: true, UICodecEndpoint: "http://" + codecAddr,
		DBFile: filepath.Join(f.stateDir, cfg.DBFilename), Output: serverLog,
	})
	if err != nil {
		return fail("start the Temporal dev server: %v (log: %s)", err, serverLog.Name())
	}
	defer func() { _ = srv.Stop() }()

	initial, err := devenv.SelfSigned()
	if err != nil {
		return fail("%v", err)
	}
	nginxDir := filepath.Join(f.stateDir, "nginx")
	_ = os.RemoveAll(nginxDir)
	ngx, err := devenv.StartNginx(nginxDir, initial)
	if err != nil {
		return fail("%v", err)
	}
	defer ngx.Stop()
	fmt.Fprintf(w, "nginx:          https://%s serving a self-signed leaf %s\n", ngx.Endpoint, initial.LeafSHA256)
	env := []string{"TEMPORAL_ADDRESS=" + address, "TEMPORAL_NAMESPACE=" + cfg.Namespace, codec.EnvKeyFile + "=" + keyFile, codec.EnvKeys + "=",
		"CERTCTL_STATE_DIR=" + filepath.Join(f.stateDir, "worker-state")}
	// The host worker may write only this nginx's files and run only its
	// commands; the workflow worker reads profiles from the state dir.
	policyFile, profilesDir := filepath.Join(f.stateDir, "worker.yaml"), filepath.Join(f.stateDir, "profiles")
	if err := devenv.WritePolicy(policyFile, policy.Policy{
		AllowPaths:    []string{nginxDir},
		AllowCommands: [][]string{ngx.ValidateCommand(), ngx.ReloadCommand()},
	}); err != nil {
		return fail("%v", err)
	}
	if err := os.MkdirAll(profilesDir, 0o755); err != nil {
		return fail("%v", err)
	}
	env = append(env, policy.EnvPath+"="+policyFile, profile.EnvDir+"="+profilesDir)
	fmt.Fprintf(w, "host policy:    %s (profiles: %s)\n", policyFile, profilesDir)
	// One process polls the host's queue and "certctl": a one-host setup
	// needs no second worker.
	const host = "localhost"
	args := []string{"--host", host, "--workflows"}
	if f.notifyConfig != "" {
		abs, err := filepath.Abs(f.notifyConfig)
		if err != nil {
			return fail("--notify-config: %v", err)
		}
		args = append(args, "--notify-config", abs)
	}
	if f.metricsAddr != "" {
		args = append(args, "--metrics-addr", f.metricsAddr)
	}
	wp, err := devenv.StartProcess("certctl-worker", filepath.Join(f.stateDir, "certctl-worker.log"), env, workerBin, args...)
	if err != nil {
		return fail("start certctl-worker: %v", err)
	}
	defer wp.Stop()
	fmt.Fprintf(w, "worker:         certctl-worker %s (pid %d, log %s)\n", strings.Join(args, " "), wp.Pid(), wp.Log)
	if f.metricsAddr != "" {
		fmt.Fprintf(w, "metrics:        http://%s/metrics\n", f.metricsAddr)
	}

	ca, err := devenv.NewCA("certctl dev")
	if err != nil {
		return fail("%v", err)
	}
	fresh, err := ca.Issue(devenv.LeafOptions{})
	if err != nil {
		return fail("%v", err)
	}
	tgt := ngx.Target("dev-nginx", host)
	inDir := filepath.Join(f.stateDir, "new")
	if err := os.MkdirAll(inDir, 0o700); err != nil {
		return fail("%v", err)
	}
	certFile, chainFile, newKeyFile, err := fresh.Write(inDir)
	if err != nil {
		return fail("%v", err)
	}
	// A second leaf, for the deploys a person tries next (README "Break a
	// deploy on purpose"): the first one is deployed below, so deploying
	// it again only skips.
	next, err := ca.Issue(devenv.LeafOptions{})
	if err != nil {
		return fail("%v", err)
	}
	nextDir := filepath.Join(f.stateDir, "next")
	if err := os.MkdirAll(nextDir, 0o700); err != nil {
		return fail("%v", err)
	}
	nextCert, nextChain, nextKey, err := next.Write(nextDir)
	if err != nil {
		return fail("%v", err)
	}
	targetFile := filepath.Join(f.stateDir, "target.yaml")
	if err := writeYAML(targetFile, tgt); err != nil {
		return fail("%v", err)
	}

	copts := client.Options{HostPort: address, Namespace: cfg.Namespace,
		Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	clientenv.WithCodec(&copts, cdc)
	dialedConverter, dialedNamespace = copts.DataConverter, cfg.Namespace
	c, err := client.Dial(copts)
	if err != nil {
		return fail("%v", err)
	}
	defer c.Close()
	// The deploy runs on the host's worker when it polls (startDeploy): give
	// the worker just started a moment to poll.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && !polled(ctx, c, workflows.HostQueue(host)); {
		select {
		case <-wp.Exited():
			// A worker that refused its flags (a bad --notify-config,
			// a metrics address in use) says why in its log.
			b, _ := os.ReadFile(wp.Log)
			return fail("certctl-worker exited at start (log %s):\n%s", wp.Log, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Fprintf(w, "deploying:      a fresh leaf %s to %s\n\n", fresh.LeafSHA256, tgt.TargetID)
	uiBase := fmt.Sprintf("http://%s:%d", cfg.IP, cfg.UIPort)
	req := workflows.DeployRequest{Target: tgt, Material: fresh.Material}
	progress, _ := progressMode(progressAuto, w)
	deployErr := runDeploy(ctx, c, req, deployOpts{output: "text", progress: progress, uiBase: uiBase + "/namespaces/" + cfg.Namespace}, w)
	if deployErr == nil {
		// Verify saw the new leaf, but an old nginx worker may still accept
		// a connection or two while it drains after the reload.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = ngx.WaitServing(wctx, fresh.LeafSHA256)
		cancel()
	}
	served, err := ngx.Served(ctx)
	if err != nil {
		return fail("nginx after the deploy: %v", err)
	}
	fmt.Fprintln(w)
	if served == fresh.LeafSHA256 {
		fmt.Fprintf(w, "nginx now serves the new leaf %s\n", served)
	} else {
		fmt.Fprintf(w, "nginx serves %s, not the new leaf %s\n", served, fresh.LeafSHA256)
	}
	fmt.Fprintf(w, "deploy again:   TEMPORAL_ADDRESS=%s %s=%s certctl deploy --target %s --cert %s --chain %s --key %s\n",
		address, codec.EnvKeyFile, keyFile, targetFile, certFile, chainFile, newKeyFile)
	fmt.Fprintf(w, "a new leaf:     TEMPORAL_ADDRESS=%s %s=%s certctl deploy --target %s --cert %s --chain %s --key %s\n",
		address, codec.EnvKeyFile, keyFile, targetFile, nextCert, nextChain, nextKey)
	if deployErr != nil {
		return deployErr
	}
	if f.once {
		return nil
	}
	fmt.Fprintf(w, "Web UI:         %s — press Ctrl-C to stop everything\n", uiBase)
	select {
	case <-ctx.Done():
	case err := <-codecErr:
		return fail("codec server: %v", err)
	}
	return nil
}

// devCodec loads the dev payload key from the state dir, making one the
// first time. The same key then decodes every earlier dev history.
func devCodec(stateDir string) (string, *codec.Codec, error) {
	path := filepath.Join(stateDir, "codec-keys")
	if _, err := os.Stat(path); os.IsNotExist(err) {
		id := "dev-" + time.Now().UTC().Format("20060102")
		_, b64, err := codec.GenerateKey(id)
		if err != nil {
			return "", nil, err
		}
		if err := os.WriteFile(path, []byte("# certctl dev payload key (id base64); the last line encrypts\n"+id+" "+b64+"\n"), 0o600); err != nil {
			return "", nil, err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	keys, err := codec.ParseKeys(string(b))
	if err != nil {
		return "", nil, err
	}
	c, err := codec.New(keys...)
	return path, c, err
}

func writeYAML(path string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

package testsuite_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/testsuite"
)

// README "Break a deploy on purpose", as a new user follows it: `certctl
// dev` with a webhook and /metrics, the printed "a new leaf" command run
// against a target whose verify endpoint was broken with the README's sed
// line. The CLI says why and what to do next, the webhook receives one
// signed VerifyFailed, and /metrics counts the rollback once.
func TestIntegrationWalkthroughBreakADeploy(t *testing.T) {
	cfgPath, _ := testsuite.RepoFile("temporal-dev.yaml")
	cfg, err := testsuite.LoadDevConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, _ = testsuite.FreePort()
	cfg.UIPort, _ = testsuite.FreePort()
	dir := t.TempDir()
	b, _ := yaml.Marshal(cfg)
	conf := writeFile(t, dir, "temporal-dev.yaml", string(b))
	secret := []byte("walkthrough-secret")
	hook := newReceiver(t, secret)
	secretFile := writeFile(t, dir, "hook.secret", string(secret))
	notifyConf := writeFile(t, dir, "notify.yaml", fmt.Sprintf("channels:\n  - name: me\n    type: webhook\n    url: %s/certctl\n    secret_file: %s\n", hook.srv.URL, secretFile))
	mport, _ := testsuite.FreePort()
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", mport)
	stateDir := filepath.Join(dir, "state")

	// Terminal 1: certctl dev, left running.
	devOut := filepath.Join(dir, "dev.out")
	out, err := os.Create(devOut)
	if err != nil {
		t.Fatal(err)
	}
	dev := exec.Command(env.certctl, "dev", "--config", conf, "--state-dir", stateDir, "--notify-config", notifyConf, "--metrics-addr", metricsAddr)
	dev.Stdout, dev.Stderr = out, out
	dev.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- dev.Wait(); out.Close() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-dev.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-dev.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	var printed string
	testsuite.WaitFor(t, 3*time.Minute, func() (bool, string) {
		b, _ := os.ReadFile(devOut)
		printed = string(b)
		select {
		case err := <-exited:
			t.Fatalf("certctl dev exited (%v):\n%s", err, printed)
		default:
		}
		return strings.Contains(printed, "press Ctrl-C to stop everything"), "certctl dev is not up:\n" + printed
	})
	for _, want := range []string{"outcome: Deployed", "metrics:        http://" + metricsAddr + "/metrics", "--notify-config " + notifyConf} {
		if !strings.Contains(printed, want) {
			t.Fatalf("certctl dev printed no %q:\n%s", want, printed)
		}
	}

	// Break it: the README's sed line points verify at a closed port.
	targetFile := filepath.Join(stateDir, "target.yaml")
	tb, err := os.ReadFile(targetFile)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := regexp.MustCompile(`(?m)^(\s*endpoint:) .*$`)
	if !endpoint.Match(tb) {
		t.Fatalf("target.yaml has no endpoint line for the README's sed:\n%s", tb)
	}
	if err := os.WriteFile(targetFile, endpoint.ReplaceAll(tb, []byte("${1} 127.0.0.1:1")), 0o644); err != nil {
		t.Fatal(err)
	}

	// Terminal 2: the "a new leaf" line certctl dev printed, as printed.
	var again string
	sc := bufio.NewScanner(strings.NewReader(printed))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "a new leaf:"); ok {
			again = strings.TrimSpace(rest)
		}
	}
	fields := strings.Fields(again)
	var cmdEnv []string
	for len(fields) > 0 && strings.Contains(fields[0], "=") {
		cmdEnv, fields = append(cmdEnv, fields[0]), fields[1:]
	}
	if len(fields) < 2 || fields[0] != "certctl" || fields[1] != "deploy" {
		t.Fatalf("no \"a new leaf\" line: %q", again)
	}
	args := fields[1:]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, env.certctl, args...)
	// A new user's shell: none of the suite's own CERTCTL_ or TEMPORAL_
	// settings, only what the line sets.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTCTL_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			run.Env = append(run.Env, kv)
		}
	}
	run.Env = append(run.Env, cmdEnv...)
	res, err := run.CombinedOutput()
	text := string(res)
	t.Logf("certctl deploy:\n%s", text)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("deploy: %v, want exit 1", err)
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if last := lines[len(lines)-1]; last != "outcome: "+contract.VerifyFailed {
		t.Fatalf("last line %q", last)
	}
	for _, want := range []string{"verify 127.0.0.1:1", "\n  rollback ", "\nnext:  " + contract.NextAction(contract.VerifyFailed)} {
		if !strings.Contains(text, want) {
			t.Fatalf("the CLI does not say %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^workflow: (\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no workflow line")
	}

	// The webhook: one signed VerifyFailed about that deploy.
	p := hook.waitFor(t, aboutWorkflow(m[1]), "about "+m[1])
	w := webhookOf(t, p)
	if !p.signed || w.Event.Event != contract.VerifyFailed || w.TargetID != "dev-nginx" {
		t.Fatalf("webhook signed %v: %+v", p.signed, w)
	}

	// /metrics: the rollback, once.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`certctl_deploy_rollback_total{outcome="restored"} 1`,
		`certctl_deploy_total{outcome="VerifyFailed",target_type="nginx"} 1`,
		`certctl_deploy_total{outcome="Deployed",target_type="nginx"} 1`,
	} {
		if !strings.Contains(string(scrape), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

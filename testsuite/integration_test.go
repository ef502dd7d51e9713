package testsuite_test

// Integration tests: a real Temporal dev server (the temporal CLI), real
// certctl-worker processes, a real nginx on loopback, driven only through
// the operator's interface (the certctl binary). Nothing here skips: a
// missing part fails the run and says what to install.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/clientenv"
	"github.com/certctl/certctl/codec"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

const testHost = "itest"

var env struct {
	certctl, worker string
	address         string
	client          client.Client
	ca              *testsuite.CA
	workDir         string
	codec           *codec.Codec
	temporalCLI     string
	workflowWorker  *testsuite.Process // polls "certctl"; a crash test may replace it
	profilesDir     string             // CERTCTL_PROFILES_DIR of every worker
	// sshPort is where the agentless tests start sshd, deadSSHPort one
	// where nothing listens: both in the workers' allow_ssh_hosts.
	sshPort, deadSSHPort int
	// umaskSSHPort: an sshd whose SFTP umask is the default (022).
	umaskSSHPort int
	// sftpLogSSHPort: an sshd whose SFTP server logs every operation.
	sftpLogSSHPort int
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// `make unit`: nothing here runs without the temporal CLI and the
		// real servers, and nothing is started. `make test` and CI never
		// pass -short, so nothing skips there.
		fmt.Println("testsuite: integration tests skipped under -short: they need the temporal CLI, nginx and the other real servers; run `make test`")
		os.Exit(0)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "certctl-itest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer stopKube()
	_ = os.Chmod(dir, 0o711)
	env.workDir = dir
	// Host workers record where they staged; keep that out of /var/lib.
	os.Setenv("CERTCTL_STATE_DIR", filepath.Join(dir, "state"))
	// Every worker gets a host policy (the tests' temp dirs, any command)
	// and a profiles directory.
	taken := map[int]bool{}
	for _, p := range []*int{&env.sshPort, &env.deadSSHPort, &env.umaskSSHPort, &env.sftpLogSSHPort} {
		for *p == 0 || taken[*p] {
			if *p, err = testsuite.FreePort(); err != nil {
				fmt.Fprintln(os.Stderr, "integration setup:", err)
				return 1
			}
		}
		taken[*p] = true
	}
	if env.profilesDir, err = testsuite.UseTestPolicy(dir, fmt.Sprintf("127.0.0.1:%d", env.sshPort), fmt.Sprintf("127.0.0.1:%d", env.deadSSHPort), fmt.Sprintf("127.0.0.1:%d", env.umaskSSHPort), fmt.Sprintf("127.0.0.1:%d", env.sftpLogSSHPort)); err != nil {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		return 1
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "integration setup:", err)
		return 1
	}
	if env.certctl, env.worker, err = testsuite.BuildBinaries(dir); err != nil {
		return fail(err)
	}
	cfgPath, err := testsuite.RepoFile("temporal-dev.yaml")
	if err != nil {
		return fail(err)
	}
	cfg, err := testsuite.LoadDevConfig(cfgPath)
	if err != nil {
		return fail(err)
	}
	serverLog, err := os.Create(filepath.Join(dir, "temporal.log"))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	cdc, err := testsuite.UseTestCodec()
	if err != nil {
		return fail(err)
	}
	env.codec = cdc
	if env.temporalCLI, err = testsuite.TemporalCLI(cfg.CLIVersion); err != nil {
		return fail(err)
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{Config: cfg, Output: serverLog})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = srv.Stop() }()
	env.address = srv.FrontendHostPort()
	copts := client.Options{HostPort: env.address,
		Logger: log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}
	clientenv.WithCodec(&copts, cdc)
	env.client, err = client.Dial(copts)
	if err != nil {
		return fail(err)
	}
	defer env.client.Close()
	workerEnv := []string{"TEMPORAL_ADDRESS=" + env.address}
	for _, args := range [][]string{nil, {"--host", testHost}} {
		name := "worker" + strings.Join(args, "")
		p, err := testsuite.StartProcess(name, filepath.Join(dir, name+".log"), workerEnv, env.worker, args...)
		if err != nil {
			return fail(err)
		}
		if args == nil {
			env.workflowWorker = p
		}
		defer func() { p.Stop() }()
	}
	defer func() { env.workflowWorker.Stop() }()
	if env.ca, err = testsuite.NewCA("certctl itest"); err != nil {
		return fail(err)
	}
	code := m.Run()
	if code != 0 {
		for _, f := range []string{"worker.log", "worker--hostitest.log"} {
			b, _ := os.ReadFile(filepath.Join(dir, f))
			fmt.Fprintf(os.Stderr, "---- %s (tail)\n%s\n", f, tail(string(b), 3000))
		}
	}
	return code
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func issue(t *testing.T) testsuite.Set {
	t.Helper()
	s, err := env.ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startNginx(t *testing.T) (*testsuite.Nginx, testsuite.Set) {
	t.Helper()
	initial := issue(t)
	dir := t.TempDir()
	_ = os.Chmod(dir, 0o711)
	n, err := testsuite.StartNginx(dir, initial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n, initial
}

// deployRun is one run of `certctl deploy`.
type deployRun struct {
	code           int
	stdout, stderr string
}

func (r deployRun) lastLine() string {
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	return lines[len(lines)-1]
}

func (r deployRun) workflowID() string {
	for _, l := range strings.Split(r.stdout, "\n") {
		if id, ok := strings.CutPrefix(l, "workflow: "); ok {
			return id
		}
	}
	var out struct {
		WorkflowID string `json:"workflow_id"`
	}
	_ = json.Unmarshal([]byte(r.stdout), &out)
	return out.WorkflowID
}

func (r deployRun) result(t *testing.T) workflows.DeployResult {
	t.Helper()
	var res workflows.DeployResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--output json: %v\n%s", err, r.stdout)
	}
	return res
}

// deploy writes the target file and material and runs certctl deploy.
func deploy(t testing.TB, tg target.Target, set testsuite.Set, args ...string) deployRun {
	t.Helper()
	b, err := yaml.Marshal(tg)
	if err != nil {
		t.Fatal(err)
	}
	return deployText(t, string(b), set, args...)
}

// deployText runs certctl deploy with a target file's text.
func deployText(t testing.TB, text string, set testsuite.Set, args ...string) deployRun {
	t.Helper()
	return deployTextEnv(t, text, set, nil, args...)
}

func yamlOf(tg target.Target) (string, error) {
	b, err := yaml.Marshal(tg)
	return string(b), err
}

// deployTextEnv is deployText with extra environment for certctl.
func deployTextEnv(t testing.TB, text string, set testsuite.Set, extraEnv []string, args ...string) deployRun {
	t.Helper()
	dir := t.TempDir()
	tf := filepath.Join(dir, "target.yaml")
	if err := os.WriteFile(tf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, chain, key, err := set.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.certctl, append([]string{"deploy", "--target", tf, "--cert", cert, "--chain", chain, "--key", key}, args...)...)
	cmd.Env = append(append(os.Environ(), "TEMPORAL_ADDRESS="+env.address, "CERTCTL_HOST_WAIT=1m"), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := deployRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	if _, isTest := t.(*testing.T); isTest {
		t.Logf("certctl deploy (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	return r
}

func wantServed(t *testing.T, n *testsuite.Nginx, leaf string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.WaitServing(ctx, leaf); err != nil {
		t.Fatalf("nginx: %v", err)
	}
}

// snapshot reads every file of a target, to prove they did not change.
func snapshot(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		m[p] = fmt.Sprintf("%s|%v", b, fi.Mode())
	}
	return m
}

func wantUnchanged(t *testing.T, before map[string]string) {
	t.Helper()
	for p, v := range before {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		if fmt.Sprintf("%s|%v", b, fi.Mode()) != v {
			t.Fatalf("%s changed", p)
		}
	}
}

func wantNoLeftovers(t *testing.T, dir string, backups int) {
	t.Helper()
	if tmp := testsuite.TempFiles(dir); len(tmp) > 0 {
		t.Fatalf("temp files left behind: %v", tmp)
	}
	baks, _ := filepath.Glob(filepath.Join(dir, "*.certctl-bak.*"))
	if backups >= 0 && len(baks) != backups {
		t.Fatalf("%d backups, want %d: %v", len(baks), backups, baks)
	}
}

// record keeps a finished workflow's history for the replay test when
// CERTCTL_RECORD_HISTORIES=1 (make record-histories): re-recorded only on
// purpose, never by an ordinary test run. A deploy that delegated to a host
// run ("<id>/host") has the run's kept too, as <name>-host.
func record(t *testing.T, workflowID, name string) {
	t.Helper()
	recordRun(t, workflowID, "", name)
	recordRun(t, workflowID+contract.HostRunSuffix, "", name+"-host")
}

// recordRun keeps one run's history (runID "": the latest) as name, when
// CERTCTL_RECORD_HISTORIES=1.
func recordRun(t *testing.T, workflowID, runID, name string) {
	t.Helper()
	if os.Getenv("CERTCTL_RECORD_HISTORIES") != "1" {
		return
	}
	p, err := testsuite.RepoFile("testsuite/histories")
	if err != nil {
		t.Fatal(err)
	}
	h := &historypb.History{Events: history(t, workflowID, runID)}
	if len(h.Events) == 0 {
		return
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationFirstDeployServesNewLeaf(t *testing.T) {
	n, _ := startNginx(t)
	fresh := issue(t)
	r := deploy(t, n.Target("first", testHost), fresh)
	if r.code != 0 || r.lastLine() != "outcome: Deployed" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	for _, step := range []string{"plan", "backup", "stage", "validate", "commit", "reload", "verify", "cleanup"} {
		if !strings.Contains(r.stdout, "  "+step+" ") {
			t.Fatalf("step %s not printed", step)
		}
	}
	wantServed(t, n, fresh.LeafSHA256)
	got, err := os.ReadFile(n.KeyPath)
	if err != nil || string(got) != fresh.KeyPEM {
		t.Fatalf("key file not the new key (err %v)", err)
	}
	wantNoLeftovers(t, n.CertDir, 3)
	record(t, r.workflowID(), "deploy-deployed")
}

func TestIntegrationIdenticalDeploySkipsWithoutReload(t *testing.T) {
	n, _ := startNginx(t)
	fresh := issue(t)
	tg := n.Target("twice", testHost)
	if r := deploy(t, tg, fresh); r.code != 0 {
		t.Fatalf("first deploy exit %d", r.code)
	}
	r := deploy(t, tg, fresh, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != "SkippedIdempotent" {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	for _, s := range res.Steps {
		if s.Name != "plan" && s.Name != "lock" && s.Name != "unlock" {
			t.Fatalf("an idempotent deploy ran %q", s.Name)
		}
	}
	wantServed(t, n, fresh.LeafSHA256)
	record(t, r.workflowID(), "deploy-skipped")
}

func TestIntegrationNginxCheckFailsLeavesLiveFilesUntouched(t *testing.T) {
	n, initial := startNginx(t)
	broken := filepath.Join(n.Dir, "broken.conf")
	conf, _ := os.ReadFile(n.Conf)
	if err := os.WriteFile(broken, append(conf, []byte("\nthis is not a directive\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	tg := n.Target("badcheck", testHost)
	tg.Config.ValidateCommand = target.Command{"nginx", "-t", "-p", n.Dir + "/", "-c", broken, "-e", filepath.Join(n.Dir, "error.log")}
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	r := deploy(t, tg, issue(t))
	if r.code != 1 || r.lastLine() != "outcome: ValidateFailed" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	if !strings.Contains(r.stdout, "nginx") || !strings.Contains(r.stdout, "test failed") {
		t.Fatalf("the error does not carry nginx's message")
	}
	wantUnchanged(t, before)
	wantNoLeftovers(t, n.CertDir, 0)
	wantServed(t, n, initial.LeafSHA256)
	record(t, r.workflowID(), "deploy-validate-failed")
}

func TestIntegrationReloadFailsRestoresAndServesOldLeaf(t *testing.T) {
	n, initial := startNginx(t)
	tg := n.Target("badreload", testHost)
	tg.Config.ReloadCommand = reloadFailsOnce(t, n)
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	r := deploy(t, tg, issue(t))
	if r.code != 1 || r.lastLine() != "outcome: ReloadFailed" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	for _, step := range []string{"rollback ", "rollback-reload ", "rollback-verify "} {
		if !strings.Contains(r.stdout, step) {
			t.Fatalf("step %s not run", step)
		}
	}
	wantUnchanged(t, before)
	wantServed(t, n, initial.LeafSHA256)
	wantNoLeftovers(t, n.CertDir, 3) // backups kept after a failure
	record(t, r.workflowID(), "deploy-reload-failed")
}

func TestIntegrationVerifySeesAnotherLeafRollsBack(t *testing.T) {
	n, initial := startNginx(t)
	other := issue(t)
	pair, err := tls.X509KeyPair([]byte(other.CertPEM), []byte(other.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	tg := n.Target("wrongvhost", testHost)
	tg.Config.PostDeployVerify.Endpoint = ln.Addr().String()
	tg.Config.PostDeployVerifyAttempts = 2
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	r := deploy(t, tg, issue(t))
	if r.code != 1 || r.lastLine() != "outcome: VerifyFailed" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	wantUnchanged(t, before)
	wantServed(t, n, initial.LeafSHA256)
	record(t, r.workflowID(), "deploy-verify-failed")
}

func TestIntegrationMismatchedKeyRefusedBeforeStart(t *testing.T) {
	n, initial := startNginx(t)
	a, b := issue(t), issue(t)
	a.KeyPEM = b.KeyPEM
	tg := n.Target("mismatch", testHost)
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	r := deploy(t, tg, a)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2", r.code)
	}
	if !strings.Contains(r.stderr, "key_pem") || strings.Contains(r.stdout, "workflow:") {
		t.Fatalf("want a refusal naming key_pem before any workflow; stdout %q stderr %q", r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "PRIVATE KEY") {
		t.Fatal("the refusal prints key material")
	}
	resp, err := env.client.ListWorkflow(context.Background(), listByTarget("mismatch"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Executions) != 0 {
		t.Fatalf("a workflow was started: %v", resp.Executions)
	}
	wantUnchanged(t, before)
	wantServed(t, n, initial.LeafSHA256)
}

func TestIntegrationOwnerAndModes(t *testing.T) {
	n, _ := startNginx(t)
	// Existing files keep their owner and mode: the 0600 key stays 0600.
	if r := deploy(t, n.Target("modes", testHost), issue(t)); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	wantMode(t, n.KeyPath, 0o600, 0)
	wantMode(t, n.CertPath, 0o644, 0)
	// An explicit setting wins over the existing file's.
	tg := n.Target("modes", testHost)
	m := target.Mode(0o640)
	tg.Config.KeyFileMode = &m
	tg.Config.CertOwner = "nobody"
	if r := deploy(t, tg, issue(t)); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	wantMode(t, n.KeyPath, 0o640, 0)
	nobody, _ := user.Lookup("nobody")
	uid, _ := strconv.Atoi(nobody.Uid)
	wantMode(t, n.CertPath, 0o644, uid)

	// New files take nginx's defaults: key 0640, owner www-data where it
	// exists. Verify is off here: nothing serves these new paths.
	dir := t.TempDir()
	off := false
	fresh := target.Target{TargetID: "newfiles", TargetType: "nginx", Host: testHost, Config: target.Config{
		CertPath: filepath.Join(dir, "cert.pem"), ChainPath: filepath.Join(dir, "chain.pem"), KeyPath: filepath.Join(dir, "key.pem"),
		ValidateCommand: target.Command{"true"}, ReloadCommand: target.Command{"true"},
		PostDeployVerify: target.Verify{Enabled: &off},
	}}
	r := deploy(t, fresh, issue(t))
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	owner := 0
	if u, err := user.Lookup("www-data"); err == nil {
		owner, _ = strconv.Atoi(u.Uid)
	}
	wantMode(t, fresh.Config.KeyPath, 0o640, owner)
	wantMode(t, fresh.Config.CertPath, 0o644, owner)
	wantMode(t, fresh.Config.ChainPath, 0o644, owner)
	if !strings.Contains(r.stdout, "verify") {
		t.Fatal("a disabled verify must still be shown")
	}
}

func wantMode(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Fatalf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), mode)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
		t.Fatalf("%s: owner %d, want %d", path, st.Uid, uid)
	}
}

func TestIntegrationBackupRetention(t *testing.T) {
	n, _ := startNginx(t)
	tg := n.Target("retention", testHost)
	keep := 2
	tg.Config.BackupRetention = &keep
	var last testsuite.Set
	var previous string
	for i := 0; i < 4; i++ {
		cur, _ := os.ReadFile(n.CertPath)
		previous = string(cur)
		last = issue(t)
		if r := deploy(t, tg, last); r.code != 0 {
			t.Fatalf("deploy %d: exit %d", i, r.code)
		}
	}
	wantServed(t, n, last.LeafSHA256)
	wantNoLeftovers(t, n.CertDir, 3*keep)
	baks, _ := filepath.Glob(n.CertPath + ".certctl-bak.*")
	newest := baks[0]
	for _, b := range baks {
		if b > newest {
			newest = b
		}
	}
	if got, _ := os.ReadFile(newest); string(got) != previous {
		t.Fatal("the newest backup does not hold the cert the last deploy replaced")
	}
	if fi, _ := os.Stat(n.KeyPath + ".certctl-bak." + strings.TrimPrefix(newest, n.CertPath+".certctl-bak.")); fi == nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatal("the key's backup must exist with the key's mode")
	}
}

func TestIntegrationDryRunTouchesNothing(t *testing.T) {
	n, initial := startNginx(t)
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	r := deploy(t, n.Target("dry", testHost), issue(t), "--dry-run", "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != "DryRunPassed" {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	detail := ""
	for _, s := range res.Steps {
		if s.Name == "validate" {
			detail = s.Detail
		}
	}
	if !strings.Contains(detail, "server check staged") {
		t.Fatalf("dry run validate should run nginx -t on the staged files: %q", detail)
	}
	wantUnchanged(t, before)
	wantNoLeftovers(t, n.CertDir, 0)
	wantServed(t, n, initial.LeafSHA256)
}

func TestIntegrationBadTargetRefused(t *testing.T) {
	n, _ := startNginx(t)
	tg := n.Target("badpath", testHost)
	tg.Config.KeyPath = "relative/key.pem"
	r := deploy(t, tg, issue(t))
	if r.code != 2 || !strings.Contains(r.stderr, "target_config.key_path") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	dir := t.TempDir()
	tf := filepath.Join(dir, "t.yaml")
	text := fmt.Sprintf("target_id: badcmd\ntarget_type: nginx\nhost: %s\ntarget_config:\n  cert_path: %s\n  key_path: %s\n"+
		"  reload_command: \"nginx -s reload; rm -rf /\"\n  post_deploy_verify: {enabled: false}\n", testHost, n.CertPath, n.KeyPath)
	_ = os.WriteFile(tf, []byte(text), 0o600)
	set := issue(t)
	cert, _, key, _ := set.Write(dir)
	out, err := exec.Command(env.certctl, "deploy", "--target", tf, "--cert", cert, "--key", key).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "metacharacter") {
		t.Fatalf("a command with ';' must be refused with exit 2: %v %s", err, out)
	}
}

func listByTarget(id string) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("CertctlTarget = %q", id)}
}

// The quick start: `certctl dev --once` on free ports ends with the new
// leaf served.
// devConfigOnFreePorts writes temporal-dev.yaml into dir with the server and
// Web UI moved to free ports, for a `certctl dev` of the test's own.
func devConfigOnFreePorts(t *testing.T, dir string) string {
	t.Helper()
	cfgPath, _ := testsuite.RepoFile("temporal-dev.yaml")
	cfg, err := testsuite.LoadDevConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, _ = testsuite.FreePort()
	cfg.UIPort, _ = testsuite.FreePort()
	b, _ := yaml.Marshal(cfg)
	conf := filepath.Join(dir, "temporal-dev.yaml")
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

func TestIntegrationCertctlDev(t *testing.T) {
	dir := t.TempDir()
	conf := devConfigOnFreePorts(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, env.certctl, "dev", "--once", "--config", conf, "--state-dir", filepath.Join(dir, "state")).CombinedOutput()
	t.Logf("certctl dev:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"outcome: Deployed", "nginx now serves the new leaf", "/namespaces/default/workflows/deploy%2Fdev-nginx%2F",
		"\nworker:         certctl-worker --host localhost --workflows (pid "} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("certctl dev output lacks %q", want)
		}
	}
	// One worker process polls both queues.
	if n := strings.Count(string(out), "\nworker: "); n != 1 {
		t.Fatalf("certctl dev started %d workers, want 1", n)
	}
}

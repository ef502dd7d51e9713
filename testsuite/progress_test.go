package testsuite_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// event is one line of `certctl deploy --output events`.
type event struct {
	Event      string `json:"event"`
	WorkflowID string `json:"workflow_id"`
	Step       string `json:"step"`
	Attempt    int    `json:"attempt"`
	Attempts   int    `json:"attempts"`
	Failed     bool   `json:"failed"`
	Error      string `json:"error"`
	Reason     string `json:"reason"`
	WaitMs     int64  `json:"wait_ms"`
	Outcome    string `json:"outcome"`
	NextAction string `json:"next_action"`
	Follow     string `json:"follow"`
	raw        string
}

// liveDeploy is a certctl deploy whose stdout is read line by line while it
// runs.
type liveDeploy struct {
	cmd    *exec.Cmd
	lines  *bufio.Scanner
	stderr strings.Builder
	seen   []event
}

func startLiveDeploy(t *testing.T, args ...string) *liveDeploy {
	t.Helper()
	return startLiveDeployEnv(t, []string{"CERTCTL_HOST_WAIT=1m"}, args...)
}

func startLiveDeployEnv(t *testing.T, extraEnv []string, args ...string) *liveDeploy {
	t.Helper()
	cmd := exec.Command(env.certctl, append([]string{"deploy"}, args...)...)
	cmd.Env = append(append(os.Environ(), "TEMPORAL_ADDRESS="+env.address), extraEnv...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &liveDeploy{cmd: cmd, lines: bufio.NewScanner(out)}
	d.lines.Buffer(make([]byte, 1<<20), 1<<20)
	cmd.Stderr = &d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return d
}

// next reads events until one matches, failing when the output ends first.
func (d *liveDeploy) next(t *testing.T, what string, match func(event) bool) event {
	t.Helper()
	for d.lines.Scan() {
		var e event
		if err := json.Unmarshal(d.lines.Bytes(), &e); err != nil {
			t.Fatalf("--output events printed a line that is not one JSON object: %q: %v", d.lines.Text(), err)
		}
		e.raw = d.lines.Text()
		d.seen = append(d.seen, e)
		if match(e) {
			return e
		}
	}
	t.Fatalf("the output ended before %s; events:\n%s\nstderr: %s", what, d.dump(), d.stderr.String())
	return event{}
}

func (d *liveDeploy) dump() string {
	var b strings.Builder
	for _, e := range d.seen {
		b.WriteString(e.raw + "\n")
	}
	return b.String()
}

// exit waits for certctl to end and returns its exit code.
func (d *liveDeploy) exit(t *testing.T) int {
	t.Helper()
	for d.lines.Scan() {
		var e event
		if err := json.Unmarshal(d.lines.Bytes(), &e); err != nil {
			t.Fatalf("not one JSON object a line: %q", d.lines.Text())
		}
		e.raw = d.lines.Text()
		d.seen = append(d.seen, e)
	}
	err := d.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// lateListener is a loopback port that forwards to to once opened: a
// verify endpoint that starts serving when the test says so.
type lateListener struct {
	addr, to string
	ln       net.Listener
}

func newLateListener(t *testing.T, to string) *lateListener {
	t.Helper()
	p, err := testsuite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l := &lateListener{addr: fmt.Sprintf("127.0.0.1:%d", p), to: to}
	t.Cleanup(func() {
		if l.ln != nil {
			l.ln.Close()
		}
	})
	return l
}

func (l *lateListener) open(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		t.Fatal(err)
	}
	l.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", l.to)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

// writeDeployFiles writes a target file and material for certctl deploy.
func writeDeployFiles(t *testing.T, tg target.Target, set testsuite.Set) []string {
	t.Helper()
	dir := t.TempDir()
	b, err := yaml.Marshal(tg)
	if err != nil {
		t.Fatal(err)
	}
	tf := filepath.Join(dir, "target.yaml")
	if err := os.WriteFile(tf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, chain, key, err := set.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--target", tf, "--cert", cert, "--chain", chain, "--key", key}
}

func running(t *testing.T, id string) bool {
	t.Helper()
	d, err := env.client.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// lateTarget is an nginx target whose verify endpoint serves only once the
// test opens it: every attempt before fails with "connection refused".
func lateTarget(t *testing.T, n *testsuite.Nginx, id string, attempts int) (target.Target, *lateListener) {
	late := newLateListener(t, n.Endpoint)
	tg := n.Target(id, testHost)
	tg.Config.PostDeployVerify.Endpoint = late.addr
	tg.Config.PostDeployVerifyAttempts = attempts
	tg.Config.PostDeployVerifyBackoff = target.Duration(time.Second)
	tg.Config.PostDeployVerifyMaxBackoff = target.Duration(2 * time.Second)
	return tg, late
}

// A verify that fails twice, then passes: `--output events` shows each
// attempt and each wait while the deploy runs. The endpoint opens only
// after the second wait was read, so what was read came before the
// workflow could end (it is asked, too). The history is kept as
// deploy-verify-retried (and -host: the run that retried) for the replay
// test (recorded once: CERTCTL_RECORD_HISTORIES=1 go test -run
// TestProgressVerifyAttemptsAreLive ./testsuite/).
func TestProgressVerifyAttemptsAreLive(t *testing.T) {
	n, _ := startNginx(t)
	fresh := issue(t)
	tg, late := lateTarget(t, n, "progress-late", 4)
	d := startLiveDeploy(t, append(writeDeployFiles(t, tg, fresh), "--output", "events")...)

	started := d.next(t, "the started event", func(e event) bool { return e.Event == "started" })
	id := started.WorkflowID
	for attempt := 1; attempt <= 2; attempt++ {
		a := d.next(t, fmt.Sprintf("verify attempt %d", attempt), func(e event) bool { return e.Event == "verify_attempt" })
		if a.Step != "verify" || a.Attempt != attempt || a.Attempts != 4 || !a.Failed || !strings.Contains(a.Error, late.addr) {
			t.Fatalf("attempt %d: %s", attempt, a.raw)
		}
		w := d.next(t, fmt.Sprintf("the wait after attempt %d", attempt), func(e event) bool { return e.Event != "verify_attempt" })
		if w.Event != "wait" || w.Reason != "verify_backoff" || w.Attempt != attempt || w.WaitMs != int64(attempt)*1000 {
			t.Fatalf("after attempt %d: %s, want a wait of %ds", attempt, w.raw, attempt)
		}
		if !running(t, id) {
			t.Fatalf("%s ended before its second wait was read: the events were not live", id)
		}
	}
	late.open(t)
	third := d.next(t, "verify attempt 3", func(e event) bool { return e.Event == "verify_attempt" })
	if third.Attempt != 3 || third.Failed {
		t.Fatalf("attempt 3: %s", third.raw)
	}
	ended := d.next(t, "verify's end", func(e event) bool { return e.Event == "step_ended" && e.Step == "verify" })
	if ended.Failed {
		t.Fatalf("verify ended %s", ended.raw)
	}
	if code := d.exit(t); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, d.dump(), d.stderr.String())
	}
	t.Logf("certctl deploy --output events:\n%s", d.dump())
	last := d.seen[len(d.seen)-1]
	if last.Event != "outcome" || last.Outcome != contract.Deployed || last.WorkflowID != id || last.NextAction != "" {
		t.Fatalf("last line %s", last.raw)
	}
	for _, e := range d.seen {
		if strings.Contains(e.raw, fresh.KeyPEM[30:60]) {
			t.Fatalf("an event holds the key: %s", e.raw)
		}
	}
	wantServed(t, n, fresh.LeafSHA256)
	record(t, id, "deploy-verify-retried")
}

// stepLine is a finished step's line as certctl deploy printed it before
// live progress existed.
var stepLine = regexp.MustCompile(`^  [a-z-]{1,16} +ok +\d+ ms$`)

// Not on a terminal, certctl deploy prints what it always printed: the
// workflow, a line per finished step, the outcome; no carriage return, no
// escape sequence, no attempt line (the attempts are in the verify line's
// time).
func TestProgressPlainKeepsTheLines(t *testing.T) {
	n, _ := startNginx(t)
	fresh := issue(t)
	tg, late := lateTarget(t, n, "progress-plain", 3)
	late.open(t)
	r := deploy(t, tg, fresh)
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "workflow: deploy/progress-plain/") || lines[len(lines)-1] != "outcome: Deployed" {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	var names []string
	for _, l := range lines[1 : len(lines)-1] {
		if !stepLine.MatchString(l) {
			t.Fatalf("line %q is not a step line\n%s", l, r.stdout)
		}
		names = append(names, strings.Fields(l)[0])
	}
	if got := strings.Join(names, ","); got != "lock,plan,backup,stage,validate,commit,reload,verify,cleanup" {
		t.Fatalf("steps %s", got)
	}
	if strings.ContainsAny(r.stdout, "\r\x1b") {
		t.Fatalf("plain output holds a control character: %q", r.stdout)
	}
}

// screen is what a terminal shows of output that rewrites its last line in
// place (carriage return, erase line): each line as it was left.
func screen(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if i := strings.LastIndex(l, "\r\x1b[K"); i >= 0 {
			l = l[i+len("\r\x1b[K"):]
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// On a terminal (--progress tty forces it here) a deploy that rolls back
// shows each failed attempt and ends with what to do next, before the
// outcome on its own last line; the line drawn in place is gone.
func TestProgressTTYRollbackSaysWhatToDo(t *testing.T) {
	n, initial := startNginx(t)
	tg, late := lateTarget(t, n, "progress-tty", 2)
	r := deploy(t, tg, issue(t), "--progress", "tty")
	if r.code != 1 {
		t.Fatalf("exit %d", r.code)
	}
	lines := screen(r.stdout)
	want := []*regexp.Regexp{
		regexp.MustCompile(`^workflow: deploy/progress-tty/`),
		regexp.MustCompile(`^  verify           attempt 1/2 FAILED +\d+ ms  verify ` + regexp.QuoteMeta(late.addr) + `: .*connection refused`),
		regexp.MustCompile(`^  verify           FAILED +\d+ ms  verify ` + regexp.QuoteMeta(late.addr)),
		regexp.MustCompile(`^  rollback         ok +\d+ ms$`),
		regexp.MustCompile(`^  rollback-reload  ok +\d+ ms$`),
		regexp.MustCompile(`^error: verify ` + regexp.QuoteMeta(late.addr)),
		regexp.MustCompile(`^next:  ` + regexp.QuoteMeta(contract.NextAction(contract.VerifyFailed)) + `$`),
		regexp.MustCompile(`^outcome: VerifyFailed$`),
	}
	i := 0
	for _, l := range lines {
		if i < len(want) && want[i].MatchString(l) {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("the terminal shows no line matching %s after the ones before:\n%s", want[i], strings.Join(lines, "\n"))
	}
	if last := lines[len(lines)-1]; last != "outcome: VerifyFailed" {
		t.Fatalf("last line %q", last)
	}
	wantServed(t, n, initial.LeafSHA256)
}

// Ctrl-C leaves the deploy running and says how to follow it again;
// `certctl deploy --follow ID` follows it to its outcome.
func TestProgressCtrlCDetachesAndFollowAgain(t *testing.T) {
	n, _ := startNginx(t)
	fresh := issue(t)
	tg, late := lateTarget(t, n, "progress-detach", 4)
	d := startLiveDeploy(t, append(writeDeployFiles(t, tg, fresh), "--output", "events")...)
	w := d.next(t, "the first wait", func(e event) bool { return e.Event == "wait" })
	if w.Reason != "verify_backoff" {
		t.Fatalf("wait %s", w.raw)
	}
	id := w.WorkflowID
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	det := d.next(t, "the detached event", func(e event) bool { return e.Event == "detached" })
	if det.WorkflowID != id || det.Follow != "certctl deploy --follow "+id {
		t.Fatalf("detached %s", det.raw)
	}
	if code := d.exit(t); code != 130 {
		t.Fatalf("exit %d after Ctrl-C, want 130", code)
	}
	if !running(t, id) {
		t.Fatalf("%s ended with the CLI", id)
	}
	f := startLiveDeploy(t, "--follow", id, "--output", "events")
	f.next(t, "a wait", func(e event) bool { return e.Event == "wait" })
	late.open(t)
	if code := f.exit(t); code != 0 {
		t.Fatalf("--follow: exit %d\n%s%s", code, f.dump(), f.stderr.String())
	}
	if last := f.seen[len(f.seen)-1]; last.Event != "outcome" || last.Outcome != contract.Deployed {
		t.Fatalf("--follow: last line %s", last.raw)
	}
	wantServed(t, n, fresh.LeafSHA256)
}

// Left with Ctrl-C while its host run waits for a worker that died,
// a deploy is still given up at host_wait: `certctl deploy --follow` takes
// the watch over from the certctl that started it, and the run ends
// HostUnavailable, terminated, nothing touched.
func TestProgressFollowTakesOverTheHostWait(t *testing.T) {
	n, _ := startNginx(t)
	host := "vanishing-follow"
	tg := n.Target("vanishing-follow", host)
	w := hostWorker(t, host)
	waitPolled(t, host)
	w.Kill()
	<-w.Exited()
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	d := startLiveDeployEnv(t, []string{"CERTCTL_HOST_WAIT=4s"}, append(writeDeployFiles(t, tg, issue(t)), "--output", "events")...)
	wt := d.next(t, "the wait for a worker", func(e event) bool { return e.Event == "waiting" })
	if !strings.Contains(wt.raw, `"task_queue":"certctl-host-vanishing-follow","limit_ms":4000`) {
		t.Fatalf("waiting %s: want the host run on certctl-host-vanishing-follow with host_wait 4s", wt.raw)
	}
	id := wt.WorkflowID
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := d.exit(t); code != 130 {
		t.Fatalf("exit %d after Ctrl-C, want 130\n%s", code, d.dump())
	}
	f := startLiveDeploy(t, "--follow", id, "--output", "events")
	if code := f.exit(t); code != 1 {
		t.Fatalf("--follow: exit %d, want 1\n%s%s", code, f.dump(), f.stderr.String())
	}
	var out struct {
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
	}
	last := f.seen[len(f.seen)-1]
	if err := json.Unmarshal([]byte(last.raw), &out); err != nil || last.Event != "outcome" || out.Outcome != contract.HostUnavailable ||
		!strings.Contains(out.Error, "no worker polled certctl-host-vanishing-follow for 4s") {
		t.Fatalf("--follow: last line %s", last.raw)
	}
	desc, err := env.client.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED {
		t.Fatalf("%s: status %v, want terminated", id, st)
	}
	wantUnchanged(t, before)
}

// --follow of a workflow that does not exist says so (exit 2).
func TestProgressFollowUnknownWorkflow(t *testing.T) {
	r := certctlCLI(t, nil, "deploy", "--follow", "deploy/nobody/20260101T000000Z-00000000")
	if r.code != 2 || !strings.Contains(r.stderr, "--follow: no workflow deploy/nobody/20260101T000000Z-00000000 in namespace") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/testsuite/histories"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// A host run that waited 3s for its worker and whose verify failed twice
// before it passed, as the follower reads it from the history.
func retriedVerify() []progressEvent {
	id := "deploy/web-1/20261202T100000Z-0a0b0c0d"
	return []progressEvent{
		{Event: "started", Time: at(0), WorkflowID: id, TaskQueue: "certctl-host-web-1"},
		{Event: "waiting", Time: at(0), WorkflowID: id, TaskQueue: "certctl-host-web-1", LimitMs: 300000},
		{Event: "picked_up", Time: at(3000), WorkflowID: id, TaskQueue: "certctl-host-web-1", Worker: "4242@web-1", Ms: 3000},
		{Event: "step_started", Time: at(3000), WorkflowID: id, Step: "lock"},
		{Event: "step_ended", Time: at(3002), WorkflowID: id, Step: "lock", Ms: 2},
		{Event: "step_started", Time: at(3010), WorkflowID: id, Step: "commit"},
		{Event: "step_ended", Time: at(3015), WorkflowID: id, Step: "commit", Ms: 5},
		{Event: "step_started", Time: at(3020), WorkflowID: id, Step: "verify"},
		{Event: "verify_attempt", Time: at(3620), WorkflowID: id, Step: "verify", Attempt: 1, Attempts: 3, Ms: 600, Failed: true,
			Error: "verify 127.0.0.1:8443: serves leaf old.example (sha256:aaaa), want new.example"},
		{Event: "wait", Time: at(3620), WorkflowID: id, Reason: waitVerifyBackoff, Step: "verify", Attempt: 1, Attempts: 3, WaitMs: 1000},
		{Event: "verify_attempt", Time: at(5220), WorkflowID: id, Step: "verify", Attempt: 2, Attempts: 3, Ms: 600, Failed: true,
			Error: "verify 127.0.0.1:8443: dial tcp: connection refused\x1b[2J"},
		{Event: "wait", Time: at(5220), WorkflowID: id, Reason: waitVerifyBackoff, Step: "verify", Attempt: 2, Attempts: 3, WaitMs: 2000},
		{Event: "verify_attempt", Time: at(7400), WorkflowID: id, Step: "verify", Attempt: 3, Attempts: 3, Ms: 180},
		{Event: "step_ended", Time: at(7400), WorkflowID: id, Step: "verify", Ms: 4380},
	}
}

// Plain output is a line per finished step, the lines certctl printed
// before progress existed: nothing of the waits or attempts.
func TestPlainRendererPrintsFinishedSteps(t *testing.T) {
	var b bytes.Buffer
	r := plainRenderer{&b}
	for _, e := range retriedVerify() {
		r.event(e)
	}
	r.event(progressEvent{Event: "step_ended", Step: "rollback", Ms: 12, Failed: true, Error: "restore\nfailed"})
	r.event(progressEvent{Event: "step_ended", Step: "reload", Ms: 60000, TimedOut: true, Failed: true})
	r.finish()
	want := "" +
		"  lock             ok          2 ms\n" +
		"  commit           ok          5 ms\n" +
		"  verify           ok       4380 ms\n" +
		"  rollback         FAILED     12 ms  restore failed\n" +
		"  reload           TIMED OUT  60000 ms\n"
	if b.String() != want {
		t.Fatalf("plain output:\n%q\nwant\n%q", b.String(), want)
	}
}

// The terminal gets the same step lines, a line per failed verify attempt,
// and below them one line rewritten in place: what happens now and since
// when, the wait for a worker against host_wait, the countdown to the next
// verify attempt. Text from the workflow cannot move the cursor.
func TestTTYRendererDrawsPhasesInPlace(t *testing.T) {
	var b bytes.Buffer
	now := t0
	r := newTTYRenderer(&b, 72, func() time.Time { return now })
	ev := retriedVerify()
	step := func(n int) {
		for _, e := range ev[:n] {
			r.event(e)
		}
		ev = ev[n:]
	}
	draw := func(ms int) { now = at(ms); r.draw() }

	step(1)
	draw(200)
	step(1)
	draw(2500)
	step(1)
	draw(3000)
	step(3) // lock, commit started
	draw(3012)
	step(2) // commit ended, verify started
	draw(3300)
	step(2) // attempt 1 failed, wait 1s
	draw(3700)
	draw(4700)
	step(2) // attempt 2 failed, wait 2s
	draw(5300)
	step(2) // attempt 3 passed, verify ended
	r.finish()
	r.line("outcome: Deployed")

	e := eraseLine
	want := "" +
		e + "⠋ starting deploy/web-1/20261202T100000Z-0a0b0c0d  0.2s" +
		e + "⠙ waiting for a worker on certctl-host-web-1  2.5s / host_wait 5m0s" +
		e + "⠹ running on 4242@web-1  0.0s" +
		e + "  lock             ok          2 ms\n" +
		e + "⠸ commit on 4242@web-1  0.0s" +
		e + "  commit           ok          5 ms\n" +
		e + "⠼ verify on 4242@web-1  0.3s" +
		e + "  verify           attempt 1/3 FAILED    600 ms  verify 127.0.0.1:8443: serves leaf old.example (sha256:aaaa), want new.example\n" +
		e + "⠴ verify attempt 1 of 3 failed — next attempt in 1s" +
		e + "⠦ verify attempt 1 of 3 failed — next attempt in 0s" +
		e + "  verify           attempt 2/3 FAILED    600 ms  verify 127.0.0.1:8443: dial tcp: connection refused\\x1b[2J\n" +
		e + "⠧ verify attempt 2 of 3 failed — next attempt in 2s" +
		e + "  verify           ok       4380 ms\n" +
		"outcome: Deployed\n"
	if got := b.String(); got != want {
		t.Fatalf("terminal output:\n%q\nwant\n%q", got, want)
	}
}

// The spinner line never wraps: a wrapped line could not be rewritten in
// place.
func TestTTYRendererCutsTheLineToTheWidth(t *testing.T) {
	var b bytes.Buffer
	r := newTTYRenderer(&b, 20, func() time.Time { return at(1000) })
	r.event(progressEvent{Event: "waiting", Time: t0, TaskQueue: "certctl-host-a-very-long-host-name"})
	r.draw()
	got := strings.TrimPrefix(b.String(), eraseLine)
	if n := len([]rune(got)); n != 19 || !strings.HasSuffix(got, "…") {
		t.Fatalf("spinner line %q (%d runes), want 19 ending in …", got, n)
	}
}

// --output events: one JSON object a line, every event.
func TestEventsRendererWritesOneObjectALine(t *testing.T) {
	var b bytes.Buffer
	r := newEventsRenderer(&b)
	for _, e := range retriedVerify() {
		r.event(e)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != len(retriedVerify()) {
		t.Fatalf("%d lines for %d events", len(lines), len(retriedVerify()))
	}
	var w struct {
		Event    string `json:"event"`
		Reason   string `json:"reason"`
		WaitMs   int64  `json:"wait_ms"`
		Attempt  int    `json:"attempt"`
		Attempts int    `json:"attempts"`
	}
	if err := json.Unmarshal([]byte(lines[9]), &w); err != nil {
		t.Fatal(err)
	}
	if w.Event != "wait" || w.Reason != "verify_backoff" || w.WaitMs != 1000 || w.Attempt != 1 || w.Attempts != 3 {
		t.Fatalf("line 10 %s", lines[9])
	}
}

func TestProgressModeFlag(t *testing.T) {
	var b bytes.Buffer
	for flag, want := range map[string]string{"auto": progressPlain, "tty": progressTTY, "plain": progressPlain} {
		if got, err := progressMode(flag, &b); err != nil || got != want {
			t.Errorf("--progress %s on a buffer: %q %v, want %q", flag, got, err, want)
		}
	}
	if _, err := progressMode("fancy", &b); err == nil || err.Error() != `--progress: want auto, tty or plain, not "fancy"` {
		t.Errorf("--progress fancy: %v", err)
	}
}

// followFile reads a recorded history as followRun reads a live one.
func followFile(t *testing.T, name string) []progressEvent {
	t.Helper()
	c, err := testsuite.UseTestCodec()
	if err != nil {
		t.Fatal(err)
	}
	var evs []progressEvent
	f := newFollower(c.DataConverter(), func(e progressEvent) { evs = append(evs, e) }, map[string]bool{}, "deploy/x/host", "")
	for _, hf := range histories.Load(t, "../testsuite/histories/"+name) {
		for _, ev := range hf.History.GetEvents() {
			f.handle(ev)
		}
	}
	f.flush()
	if len(evs) == 0 {
		t.Fatalf("no events from %s", name)
	}
	return evs
}

// A host run whose verify failed twice, recorded from the real dev server
// and nginx (testsuite TestProgressVerifyAttemptsAreLive): each attempt
// and each wait, in order, with the waits' real backoffs, then one verify
// step; the plain lines are one a step, as ever.
func TestFollowerReadsVerifyAttemptsFromARecordedHistory(t *testing.T) {
	evs := followFile(t, "deploy-verify-retried-host.json")
	var got []string
	var plain bytes.Buffer
	for _, e := range evs {
		plainRenderer{&plain}.event(e)
		switch e.Event {
		case "verify_attempt":
			got = append(got, fmt.Sprintf("attempt %d/%d failed=%t", e.Attempt, e.Attempts, e.Failed))
			if e.Failed && !strings.Contains(e.Error, "connection refused") {
				t.Errorf("attempt %d: error %q", e.Attempt, e.Error)
			}
		case "wait":
			got = append(got, fmt.Sprintf("wait %s %dms after %d", e.Reason, e.WaitMs, e.Attempt))
		case "waiting":
			got = append(got, "waiting "+e.TaskQueue)
		case "picked_up":
			got = append(got, "picked up")
		case "step_ended":
			got = append(got, "end "+e.Step)
		}
	}
	want := "waiting certctl-host-itest,picked up,end lock,end plan,end backup,end stage,end validate,end commit,end reload," +
		"attempt 1/4 failed=true,wait verify_backoff 1000ms after 1,attempt 2/4 failed=true,wait verify_backoff 2000ms after 2,attempt 3/4 failed=false," +
		"end verify,end cleanup"
	if strings.Join(got, ",") != want {
		t.Fatalf("events\n %s\nwant\n %s", strings.Join(got, ","), want)
	}
	if lines := strings.Count(plain.String(), "\n"); lines != 9 || !strings.Contains(plain.String(), "\n  verify           ok ") {
		t.Fatalf("plain lines:\n%s", plain.String())
	}
}

// A host run recorded before the verify loop: its one verify marker is the
// attempt its retry policy ended on, and no wait is made up.
func TestFollowerReadsAVerifyRecordedBeforeTheLoop(t *testing.T) {
	var attempts, waits int
	for _, e := range followFile(t, "deploy-host-shared-verify-failed.json") {
		switch e.Event {
		case "verify_attempt":
			if e.Step == "verify" {
				attempts++
				if !e.Failed || e.Attempt < 1 {
					t.Errorf("attempt %+v", e)
				}
			}
		case "wait":
			waits++
		}
	}
	if attempts != 1 || waits != 0 {
		t.Fatalf("%d verify attempts, %d waits; want 1, 0", attempts, waits)
	}
}

// The last failed attempt has no line of its own: the step's FAILED line
// says it.
func TestTTYRendererLastFailedAttemptIsTheStepLine(t *testing.T) {
	var b bytes.Buffer
	r := newTTYRenderer(&b, 100, func() time.Time { return at(0) })
	fail := func(n int) progressEvent {
		return progressEvent{Event: "verify_attempt", Time: at(n * 1000), Step: "verify", Attempt: n, Attempts: 2, Ms: 600, Failed: true, Error: fmt.Sprintf("refused %d", n)}
	}
	r.event(fail(1))
	r.event(progressEvent{Event: "wait", Time: at(1000), Reason: waitVerifyBackoff, Step: "verify", Attempt: 1, Attempts: 2, WaitMs: 1000})
	r.event(fail(2))
	r.event(progressEvent{Event: "step_ended", Time: at(2000), Step: "verify", Ms: 2200, Failed: true, Error: "refused 2"})
	r.finish()
	want := "" +
		"  verify           attempt 1/2 FAILED    600 ms  refused 1\n" +
		"  verify           FAILED   2200 ms  refused 2\n"
	if b.String() != want {
		t.Fatalf("terminal output:\n%q\nwant\n%q", b.String(), want)
	}
}

// The follow flags refuse what they cannot mean, naming the flag.
func TestDeployFollowFlags(t *testing.T) {
	var b bytes.Buffer
	cases := []struct {
		f    deployFlags
		want string
	}{
		{deployFlags{}, "--target: required (a target file, YAML); or --follow WORKFLOW_ID to follow a deploy already started"},
		{deployFlags{follow: "deploy/a/1", target: "t.yaml"}, "--follow: follows a deploy already started; drop --target, the material flags, --dry-run, --force-validity and --detach"},
		{deployFlags{follow: "deploy/a/1", m: materialFlags{cert: "c.pem"}}, "--follow: follows a deploy already started; drop --target, the material flags, --dry-run, --force-validity and --detach"},
		{deployFlags{follow: "rollout/x"}, "--follow: \"rollout/x\" is not a deploy's workflow ID (deploy/<target>/<time>-<suffix>, as `certctl deploy` prints it)"},
		{deployFlags{target: "t.yaml", output: "yaml"}, "--output: want text, json or events"},
		{deployFlags{target: "t.yaml", output: "text", progress: "x"}, `--progress: want auto, tty or plain, not "x"`},
	}
	for _, c := range cases {
		if c.f.output == "" {
			c.f.output = "text"
		}
		if _, err := c.f.opts(&b); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v\nwant %s", c.f, err, c.want)
		}
	}
	o, err := (&deployFlags{follow: "deploy/a/1", output: "events", progress: "auto"}).opts(&b)
	if err != nil || o.follow != "deploy/a/1" || o.output != "events" || o.progress != progressPlain {
		t.Fatalf("opts %+v, %v", o, err)
	}
}

// The spinner's ticker and the events draw on one writer: nothing is
// written after finish, and nothing races (go test -race).
func TestTTYRendererTickerStopsAtFinish(t *testing.T) {
	var b syncBuffer
	r := newTTYRenderer(&b, 80, time.Now)
	r.start(time.Millisecond)
	for _, e := range retriedVerify() {
		r.event(e)
		r.draw()
	}
	r.finish()
	n := b.Len()
	time.Sleep(5 * time.Millisecond)
	if b.Len() != n || !strings.Contains(b.String(), "  verify           ok       4380 ms\n") {
		t.Fatalf("output after finish: %q", b.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Len() int       { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

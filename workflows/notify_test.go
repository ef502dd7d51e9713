package workflows

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/notify"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite/histories"
)

// notified records the NotifyWorkflow children a workflow started (the
// child is the test's: what it was asked to send).
type notified struct {
	mu     sync.Mutex
	events []notify.Event
	fail   bool // the child fails, as a notification that never arrives does
}

func (n *notified) mock(env *testsuite.TestWorkflowEnvironment) {
	env.OnWorkflow(contract.NotifyWorkflow, mock.Anything, mock.Anything).Return(func(_ workflow.Context, ev notify.Event) (NotifyResult, error) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.events = append(n.events, ev)
		if n.fail {
			return NotifyResult{}, temporal.NewNonRetryableApplicationError("not delivered to hook (connection refused)", contract.NotifyFailed, nil)
		}
		return NotifyResult{Event: ev.Event, Sent: []string{"hook"}}, nil
	}).Maybe()
}

// ecKey is a fresh P-256 key, its PEM and the spellings of it an error
// could quote: its PEM body, base64 of its DER, hex of its scalar.
func ecKey(t *testing.T) (pemText string, spellings []string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pemText = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	d, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	return pemText, []string{b64[20:60], hex.EncodeToString(d)[:40], strings.ToUpper(hex.EncodeToString(d))[10:50], strings.TrimPrefix(pemText, "-----BEGIN PRIVATE KEY-----\n")[:40]}
}

func holds(s string, spellings []string) string {
	for _, sp := range spellings {
		if strings.Contains(s, sp) {
			return sp
		}
	}
	return ""
}

// The attacker's test: a reload whose error quotes the new key in PEM,
// base64 and hex (a command that printed it, a step that forgot to
// scrub) notifies ReloadFailed without any of it, in the event the deploy
// hands over and in the JSON a webhook receives.
func TestNotifyCarriesNoKeyFromTheError(t *testing.T) {
	keyPEM, spellings := ecKey(t)
	h := newHarness(t, activities.ActionDeploy)
	var n notified
	n.mock(h.env)
	leak := "nginx -s reload: exit status 1: " + keyPEM + " der " + spellings[0] + " d=" + spellings[1] + " D=" + spellings[2]
	h.reload = []error{temporal.NewNonRetryableApplicationError(leak, contract.ReloadFailed, nil)}
	req := testRequest()
	req.Material.KeyPEM = keyPEM
	res, err := h.run(req)
	wantOutcome(t, res, err, contract.ReloadFailed)
	if len(n.events) != 1 {
		t.Fatalf("%d notifications, want 1", len(n.events))
	}
	ev := n.events[0]
	b, _ := json.Marshal(ev)
	if s := holds(string(b), spellings); s != "" || strings.Contains(string(b), "PRIVATE KEY") {
		t.Fatalf("the notification holds the key (%q): %s", s, b)
	}
	if !strings.Contains(ev.Error, "[key material redacted]") || !strings.Contains(ev.Error, "nginx -s reload: exit status 1") {
		t.Fatalf("error %q: want the message with the key redacted", ev.Error)
	}

	// Delivered for real to a webhook on loopback.
	hook := newHook(t, http.StatusOK)
	body := deliver(t, notifyConfig(t, hook.channel(t, "hook")), ev, hook)
	if len(body) != 1 {
		t.Fatalf("%d deliveries", len(body))
	}
	if s := holds(body[0], spellings); s != "" || strings.Contains(body[0], "PRIVATE KEY") {
		t.Fatalf("the webhook's body holds the key (%q)", s)
	}
}

// Each notification event of a deploy fires once, naming target, host,
// outcome and workflow; a success, a skip, a dry run and the outcomes that
// need nobody fire none.
func TestNotifyOncePerDeployEvent(t *testing.T) {
	reloadFails := temporal.NewNonRetryableApplicationError("nginx -s reload: exit status 1", contract.ReloadFailed, nil)
	cases := []struct {
		name   string
		action activities.Action
		set    func(*harness, *DeployRequest)
		want   string // "" notifies nothing
	}{
		{"deployed", activities.ActionDeploy, nil, ""},
		{"skipped", activities.ActionSkip, nil, ""},
		{"dry run", activities.ActionDeploy, func(_ *harness, r *DeployRequest) { r.DryRun = true }, ""},
		{"validate failed", activities.ActionDeploy, func(h *harness, _ *DeployRequest) {
			h.validate = []activities.ValidateResult{{ServerCheck: "fail"}}
		}, ""},
		{"reload failed", activities.ActionDeploy, func(h *harness, _ *DeployRequest) { h.reload = []error{reloadFails} }, contract.ReloadFailed},
		{"verify failed", activities.ActionDeploy, func(h *harness, _ *DeployRequest) {
			h.verify = func(in activities.VerifyInput, _ int) error {
				if in.Expected == newLeaf {
					return temporal.NewApplicationError("serves another leaf", contract.VerifyMismatch)
				}
				return nil
			}
		}, contract.VerifyFailed},
		{"rollback failed", activities.ActionDeploy, func(h *harness, _ *DeployRequest) {
			h.reload = []error{reloadFails, reloadFails}
		}, contract.RollbackFailed},
		{"host unavailable", activities.ActionDeploy, func(h *harness, r *DeployRequest) {
			h.pickedUp, h.busy = false, -1
			r.HostWait = target.Duration(2 * time.Second)
		}, contract.HostUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.action)
			var n notified
			n.mock(h.env)
			h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/web-1/test"})
			req := testRequest()
			if c.set != nil {
				c.set(h, &req)
			}
			res, _ := h.run(req)
			if c.want == "" {
				if len(n.events) != 0 {
					t.Fatalf("outcome %s notified %+v", res.Outcome, n.events)
				}
				return
			}
			if res.Outcome != c.want {
				t.Fatalf("outcome %s, want %s", res.Outcome, c.want)
			}
			if len(n.events) != 1 {
				t.Fatalf("%d notifications, want 1: %+v", len(n.events), n.events)
			}
			ev := n.events[0]
			if ev.Event != c.want || ev.TargetID != "web-1" || ev.TargetType != "nginx" || ev.Host != "web-1" ||
				ev.WorkflowID != "deploy/web-1/test" || ev.RunID == "" || ev.Error != res.Error || ev.At.IsZero() {
				t.Fatalf("event %+v (deploy error %q)", ev, res.Error)
			}
		})
	}
}

// The delegated host run notifies nothing: the deploy it runs for does
// (once, above). A host run certctl started on the host's queue notifies
// itself.
func TestNotifyHostRunOnItsOwnQueue(t *testing.T) {
	for _, delegated := range []bool{false, true} {
		h := newHarness(t, activities.ActionDeploy)
		var n notified
		n.mock(h.env)
		h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: HostQueue("web-1")})
		h.reload = []error{temporal.NewNonRetryableApplicationError("reload: exit status 1", contract.ReloadFailed, nil)}
		req := testRequest()
		req.Delegated = delegated
		res, _ := h.run(req)
		if res.Outcome != contract.ReloadFailed {
			t.Fatalf("outcome %s", res.Outcome)
		}
		want := 1
		if delegated {
			want = 0
		}
		if len(n.events) != want {
			t.Fatalf("delegated %v: %d notifications, want %d", delegated, len(n.events), want)
		}
	}
}

// A notification that fails (the child fails, its channels unreachable)
// changes nothing of the deploy: the same outcome, error and steps.
func TestNotifyFailureNeverChangesTheOutcome(t *testing.T) {
	run := func(fail bool) DeployResult {
		h := newHarness(t, activities.ActionDeploy)
		n := notified{fail: fail}
		n.mock(h.env)
		h.reload = []error{temporal.NewNonRetryableApplicationError("reload: exit status 1", contract.ReloadFailed, nil)}
		res, err := h.run(testRequest())
		wantOutcome(t, res, err, contract.ReloadFailed)
		if len(n.events) != 1 {
			t.Fatalf("%d notifications", len(n.events))
		}
		return res
	}
	ok, failed := run(false), run(true)
	a, _ := json.Marshal(ok)
	b, _ := json.Marshal(failed)
	if string(a) != string(b) {
		t.Fatalf("a failed notification changed the result:\n%s\n%s", a, b)
	}
}

// A halted rollout notifies RolloutHalted once, naming each failed target;
// a completed one notifies nothing.
func TestNotifyRolloutHalted(t *testing.T) {
	for _, halt := range []bool{true, false} {
		f := newFleet(t)
		var n notified
		n.mock(f.env)
		ids := names("web-", 4)
		if halt {
			f.outcome["web-02"] = contract.VerifyFailed
		}
		f.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: RolloutID("r-9")})
		_, err := f.run(RolloutRequest{Targets: targets(ids...), Batch: 1})
		if !halt {
			if err != nil || len(n.events) != 0 {
				t.Fatalf("completed rollout: err %v, notified %+v", err, n.events)
			}
			continue
		}
		if contract.Of(err) != contract.RolloutHalted {
			t.Fatalf("err %v", err)
		}
		if len(n.events) != 1 {
			t.Fatalf("%d notifications: %+v", len(n.events), n.events)
		}
		ev := n.events[0]
		if ev.Event != contract.RolloutHalted || ev.WorkflowID != "rollout/r-9" || len(ev.Failed) != 1 ||
			ev.Failed[0].TargetID != "web-02" || ev.Failed[0].Outcome != contract.VerifyFailed || ev.NotStarted != 2 {
			t.Fatalf("event %+v", ev)
		}
	}
}

// An approval pending past the worker's approval_pending_after notifies
// ApprovalPending once, however long it waits after; one decided in time,
// and any request where the worker sets no threshold, notify nothing.
func TestNotifyApprovalPending(t *testing.T) {
	cases := []struct {
		name      string
		after     time.Duration
		decideAt  time.Duration
		wantFired int
	}{
		{"pending past the threshold", time.Hour, 5 * time.Hour, 1},
		{"decided in time", 3 * time.Hour, time.Hour, 0},
		{"no threshold", 0, 5 * time.Hour, 0},
		{"threshold past the deadline", 200 * time.Hour, 5 * time.Hour, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, _ := approvalEnv(t)
			env.RegisterActivity(&notify.Activities{Config: &notify.Config{ApprovalPendingAfter: target.Duration(c.after)}})
			var n notified
			n.mock(env)
			decideAt(t, env, c.decideAt, "bob", contract.DecisionApprove, "ok")
			env.ExecuteWorkflow(ApprovalWorkflow, approvalRequest())
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			var st ApprovalStatus
			_ = env.GetWorkflowResult(&st)
			if st.State != StateApproved {
				t.Fatalf("state %s", st.State)
			}
			if len(n.events) != c.wantFired {
				t.Fatalf("%d notifications, want %d: %+v", len(n.events), c.wantFired, n.events)
			}
			if c.wantFired == 1 {
				ev := n.events[0]
				if ev.Event != contract.ApprovalPending || ev.RequestID != "r-1" || ev.WorkflowID != "approval/r-1" ||
					ev.ProfileID != "p-prod" || ev.RequestedBy != "alice" || !ev.At.Equal(ev.PendingSince.Add(c.after)) {
					t.Fatalf("event %+v", ev)
				}
			}
		})
	}
}

// hook is a real webhook receiver on loopback that checks the signature
// of every delivery.
type hook struct {
	srv    *httptest.Server
	secret []byte
	mu     sync.Mutex
	bodies []string
	status []int // answered in turn; the last one from then on
	bad    []string
}

func newHook(t *testing.T, status ...int) *hook {
	h := &hook{secret: []byte("s3cret-for-the-test"), status: status}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		ts, sig := r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature)
		m := hmac.New(sha256.New, h.secret)
		m.Write([]byte(ts + "." + string(body)))
		if !hmac.Equal([]byte(sig), []byte("sha256="+hex.EncodeToString(m.Sum(nil)))) || r.Header.Get("Content-Type") != "application/json" {
			h.bad = append(h.bad, sig)
		}
		h.bodies = append(h.bodies, string(body))
		s := h.status[0]
		if len(h.status) > 1 {
			h.status = h.status[1:]
		}
		w.WriteHeader(s)
		_, _ = w.Write([]byte("answer from the hook"))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) channel(t *testing.T, name string, events ...string) notify.Channel {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, append(h.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return notify.Channel{Name: name, Type: notify.TypeWebhook, URL: h.srv.URL, SecretFile: p, Events: events}
}

func (h *hook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.bodies...)
}

func notifyConfig(t *testing.T, chs ...notify.Channel) *notify.Config {
	t.Helper()
	c := &notify.Config{WebUI: "http://ui.example:8233", Channels: chs}
	return c
}

// deliver runs NotifyWorkflow for ev with the real activities and returns
// what h received.
func deliver(t *testing.T, cfg *notify.Config, ev notify.Event, h *hook) []string {
	t.Helper()
	env := notifyEnv(cfg)
	env.ExecuteWorkflow(NotifyWorkflow, ev)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("NotifyWorkflow: %v", err)
	}
	return h.got()
}

func notifyEnv(cfg *notify.Config) *testsuite.TestWorkflowEnvironment {
	s := &testsuite.WorkflowTestSuite{}
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	env.RegisterActivity(&notify.Activities{Config: cfg})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "deploy/web-1/test/notify"})
	return env
}

// NotifyWorkflow sends to each subscribed channel, signed; retries what a
// server may answer better later (503, 429), gives up at once on a
// refusal (404), skips the channels not subscribed, and counts each
// delivery's end once.
func TestNotifyWorkflowDelivers(t *testing.T) {
	good, flaky, refusing, other := newHook(t, 200), newHook(t, 503, 429, 200), newHook(t, 404), newHook(t, 200)
	cfg := notifyConfig(t, good.channel(t, "good"), flaky.channel(t, "flaky", contract.VerifyFailed),
		refusing.channel(t, "refusing"), other.channel(t, "other", contract.RolloutHalted))
	before := sums(t)
	env := notifyEnv(cfg)
	ev := notify.Event{Event: contract.VerifyFailed, WorkflowID: "deploy/web-1/test", RunID: "run-1", TargetID: "web-1",
		TargetType: "nginx", Host: "web-1.example.com", Error: "verify: web-1:443 serves another leaf", At: time.Unix(1700000000, 0)}
	env.ExecuteWorkflow(NotifyWorkflow, ev)
	err := env.GetWorkflowError()
	if contract.Of(err) != contract.NotifyFailed || !strings.Contains(err.Error(), "refusing") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err %v: want NotifyFailed naming the refusing channel", err)
	}
	var ae *temporal.ApplicationError
	var res NotifyResult
	if !errors.As(err, &ae) || ae.Details(&res) != nil || strings.Join(res.Sent, ",") != "good,flaky" || len(res.Failed) != 1 {
		t.Fatalf("result %+v", res)
	}
	if n := len(good.got()); n != 1 {
		t.Fatalf("good: %d deliveries", n)
	}
	if n := len(flaky.got()); n != 3 {
		t.Fatalf("flaky: %d attempts, want 3 (503, 429, 200)", n)
	}
	if n := len(refusing.got()); n != 1 {
		t.Fatalf("refusing: %d attempts, want 1 (404 is not retried)", n)
	}
	if n := len(other.got()); n != 0 {
		t.Fatalf("a channel not subscribed to VerifyFailed got %d", n)
	}
	for _, h := range []*hook{good, flaky, refusing} {
		if len(h.bad) > 0 {
			t.Fatalf("a delivery with a bad signature: %v", h.bad)
		}
	}
	var w notify.Webhook
	if err := json.Unmarshal([]byte(good.got()[0]), &w); err != nil {
		t.Fatal(err)
	}
	if w.ID != "deploy/web-1/test/notify#good" || w.Event.Event != contract.VerifyFailed || w.TargetID != "web-1" || w.Host != "web-1.example.com" ||
		w.WorkflowID != "deploy/web-1/test" || w.WebUI != "http://ui.example:8233/namespaces/default-test-namespace/workflows/deploy%2Fweb-1%2Ftest/run-1/history" ||
		!strings.Contains(w.Text, "serves another leaf") || !strings.Contains(w.NextAction, "rolled back") {
		t.Fatalf("webhook body %+v", w)
	}
	want := map[string]float64{
		`certctl_notifications_total{channel="good"}{outcome="sent"}`:       1,
		`certctl_notifications_total{channel="flaky"}{outcome="sent"}`:      1,
		`certctl_notifications_total{channel="refusing"}{outcome="failed"}`: 1,
	}
	got := moved(before, sums(t))
	for k := range got {
		if !strings.HasPrefix(k, "certctl_notifications_total") {
			delete(got, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics moved %v, want %v", got, want)
	}
}

// A worker without --notify-config sends nothing and NotifyWorkflow ends
// at once, successfully.
func TestNotifyWorkflowWithoutConfig(t *testing.T) {
	env := notifyEnv(nil)
	env.ExecuteWorkflow(NotifyWorkflow, notify.Event{Event: contract.VerifyFailed})
	var res NotifyResult
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if err := env.GetWorkflowResult(&res); err != nil || len(res.Sent)+len(res.Failed) != 0 {
		t.Fatalf("result %+v, %v", res, err)
	}
}

// A notification's ID fits the server's limit whatever the workflow's.
func TestNotifyIDFitsTheServer(t *testing.T) {
	if got := NotifyID("deploy/web-1/x"); got != "deploy/web-1/x/notify" {
		t.Fatalf("NotifyID %q", got)
	}
	long := strings.Repeat("x", MaxWorkflowIDLength-3)
	if got := NotifyID(long); len(got) > MaxWorkflowIDLength || !strings.HasPrefix(got, "notify/") || got == NotifyID(long+"y") {
		t.Fatalf("NotifyID of a long ID: %q", got)
	}
}

// The recorded histories cover each notify path, so
// TestReplayRecordedHistories proves them: a host run, a deploy on
// "certctl" that delegated, a rollout and an approval, each starting a
// NotifyWorkflow named after itself, and a NotifyWorkflow that delivered.
func TestReplayHistoriesCoverTheNotifications(t *testing.T) {
	for name, typ := range map[string]string{
		"deploy-notify-rollback-failed":  contract.DeployWorkflow,
		"deploy-notify-host-unavailable": contract.DeployWorkflow,
		"rollout-notify-halted":          contract.RolloutWorkflow,
		"approval-notify-pending":        contract.ApprovalWorkflow,
		"notify-delivered":               contract.NotifyWorkflow,
	} {
		hs := histories.Load(t, "../testsuite/histories/"+name+".json")
		if len(hs) != 1 {
			t.Errorf("no recorded history %s.json (CERTCTL_RECORD_HISTORIES=1 go test -run TestIntegrationNotifications ./testsuite/)", name)
			continue
		}
		evs := hs[0].History.GetEvents()
		if got := evs[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName(); got != typ {
			t.Errorf("%s is a %s, want %s", name, got, typ)
		}
		children, delivered := 0, 0
		for _, ev := range evs {
			if c := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); c.GetWorkflowType().GetName() == contract.NotifyWorkflow {
				children++
				if !strings.HasSuffix(c.GetWorkflowId(), contract.NotifySuffix) || c.GetTaskQueue().GetName() != contract.TaskQueue ||
					c.GetParentClosePolicy() != enumspb.PARENT_CLOSE_POLICY_ABANDON {
					t.Errorf("%s: notify child %s on %s, policy %s", name, c.GetWorkflowId(), c.GetTaskQueue().GetName(), c.GetParentClosePolicy())
				}
			}
			if ev.GetActivityTaskCompletedEventAttributes() != nil {
				delivered++
			}
		}
		switch {
		case typ == contract.NotifyWorkflow && delivered == 0:
			t.Errorf("%s delivered nothing", name)
		case typ != contract.NotifyWorkflow && children != 1:
			t.Errorf("%s starts %d NotifyWorkflow children, want 1", name, children)
		}
	}
}

// A renewal whose rollout halts notifies RolloutHalted once, under the
// renewal's own workflow ID, naming the failed canary; its deploys' own
// failures are theirs to tell (mocked here).
func TestNotifyRenewalHalted(t *testing.T) {
	h := newRenewHarness(t)
	var n notified
	n.mock(h.env)
	h.profile.RequiresApproval = false
	third := h.profile.Targets[1]
	third.TargetID = "web-3"
	h.profile.Targets = append(h.profile.Targets, third)
	h.deployErr["web-1"] = contract.ValidateFailed
	if _, err := h.run(renewRequest()); contract.Of(err) != contract.ValidateFailed {
		t.Fatalf("err %v", err)
	}
	if len(n.events) != 1 {
		t.Fatalf("%d notifications: %+v", len(n.events), n.events)
	}
	ev := n.events[0]
	if ev.Event != contract.RolloutHalted || ev.WorkflowID != RenewID("r-1") || ev.NotStarted != 2 ||
		len(ev.Failed) != 1 || ev.Failed[0].TargetID != "web-1" || ev.Failed[0].Outcome != contract.ValidateFailed {
		t.Fatalf("event %+v", ev)
	}
}

// A renewal that lands everywhere notifies nothing.
func TestNotifyRenewalCompletedSendsNothing(t *testing.T) {
	h := newRenewHarness(t)
	var n notified
	n.mock(h.env)
	h.profile.RequiresApproval = false
	if _, err := h.run(renewRequest()); err != nil {
		t.Fatal(err)
	}
	if len(n.events) != 0 {
		t.Fatalf("notified %+v", n.events)
	}
}

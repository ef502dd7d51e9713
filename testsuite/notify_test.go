package testsuite_test

// Notifications end to end (issue 17, item 4; docs/notifications.md): a
// real dev server, a workflow worker started with --notify-config, real
// nginx deploys broken on purpose, a real webhook receiver and a
// Slack-shaped one on loopback (HTTP servers in this process), and a real
// postfix that delivers the email to a maildir this test reads back.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/notify"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// receiver is a real HTTP server that keeps every POST; with a secret it
// checks each one's signature as docs/notifications.md tells a receiver to.
type receiver struct {
	srv    *httptest.Server
	secret []byte
	mu     sync.Mutex
	posts  []receivedPost
}

type receivedPost struct {
	header http.Header
	body   []byte
	signed bool // the signature matched
}

func newReceiver(t *testing.T, secret []byte) *receiver {
	r := &receiver{secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		p := receivedPost{header: req.Header.Clone(), body: body}
		if secret != nil {
			// As docs/notifications.md tells a receiver, computed here,
			// not with certctl's own notify.Sign.
			ts := req.Header.Get(notify.HeaderTimestamp)
			m := hmac.New(sha256.New, secret)
			m.Write([]byte(ts + "." + string(body)))
			p.signed = hmac.Equal([]byte(req.Header.Get(notify.HeaderSignature)), []byte("sha256="+hex.EncodeToString(m.Sum(nil))))
		}
		r.mu.Lock()
		r.posts = append(r.posts, p)
		r.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitFor waits for the post whose body says workflow_id (webhook) or
// holds text (Slack) and returns it; more than one such post fails.
func (r *receiver) waitFor(t *testing.T, match func(receivedPost) bool, what string) receivedPost {
	t.Helper()
	var found []receivedPost
	testsuite.WaitFor(t, 60*time.Second, func() (bool, string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		found = found[:0]
		for _, p := range r.posts {
			if match(p) {
				found = append(found, p)
			}
		}
		return len(found) > 0, "no notification " + what
	})
	if len(found) != 1 {
		t.Fatalf("%d notifications %s, want 1", len(found), what)
	}
	return found[0]
}

func (r *receiver) count(match func(receivedPost) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.posts {
		if match(p) {
			n++
		}
	}
	return n
}

func webhookOf(t *testing.T, p receivedPost) notify.Webhook {
	t.Helper()
	var w notify.Webhook
	if err := json.Unmarshal(p.body, &w); err != nil {
		t.Fatalf("webhook body: %v\n%s", err, p.body)
	}
	return w
}

func aboutWorkflow(id string) func(receivedPost) bool {
	return func(p receivedPost) bool {
		var w notify.Webhook
		return json.Unmarshal(p.body, &w) == nil && w.WorkflowID == id
	}
}

func slackAbout(text string) func(receivedPost) bool {
	return func(p receivedPost) bool { return strings.Contains(string(p.body), text) }
}

// mailSink is the testsuite's postfix (StartPostfix, STARTTLS with a leaf of
// the test CA) turned into the final destination of notify.test: its
// virtual delivery agent writes ops@notify.test's mail to a maildir.
type mailSink struct {
	p       *testsuite.Postfix
	maildir string
}

const mailTo = "ops@notify.test"

func startMailSink(t *testing.T) *mailSink {
	t.Helper()
	dir := t.TempDir()
	// postfix's daemons and virtual(8) drop root: they must traverse it.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	p, err := testsuite.StartPostfix(dir, issue(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	base := filepath.Join(dir, "mail")
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	// virtual(8) delivers as a non-root uid (virtual_minimum_uid): nobody.
	if err := exec.Command("chown", "65534:65534", base).Run(); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`
virtual_mailbox_domains = notify.test
virtual_mailbox_base = %s
virtual_mailbox_maps = inline:{ %s=ops/ }
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_tls_received_header = yes
`, base, mailTo)
	f, err := os.OpenFile(filepath.Join(dir, "main.cf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(extra)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(p.ReloadCommand()[0], p.ReloadCommand()[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("postfix reload: %v\n%s", err, out)
	}
	s := &mailSink{p: p, maildir: filepath.Join(base, "ops")}
	// Ready once a new smtpd takes the recipient (the reload is
	// asynchronous).
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		c, err := smtp.Dial(p.Endpoint())
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		if err := c.Mail("probe@notify.test"); err != nil {
			return false, err.Error()
		}
		if err := c.Rcpt(mailTo); err != nil {
			return false, "postfix does not take " + mailTo + " yet: " + err.Error() + "\n" + p.Logs()
		}
		_ = c.Reset()
		_ = c.Quit()
		return true, ""
	})
	return s
}

// messages reads every delivered message: its header and decoded body.
func (s *mailSink) messages(t *testing.T) []*mail.Message {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
	var out []*mail.Message
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := mail.ReadMessage(bufio.NewReader(fh))
		if err != nil {
			fh.Close()
			t.Fatalf("%s: %v", f, err)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.Body = strings.NewReader(string(body))
		out = append(out, m)
	}
	return out
}

func (s *mailSink) waitFor(t *testing.T, n int) []*mail.Message {
	t.Helper()
	testsuite.WaitFor(t, 60*time.Second, func() (bool, string) {
		files, _ := filepath.Glob(filepath.Join(s.maildir, "new", "*"))
		return len(files) >= n, fmt.Sprintf("%d of %d emails in %s; maillog:\n%s", len(files), n, s.maildir, s.p.Logs())
	})
	return s.messages(t)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// notifyWorker replaces the shared workflow worker, for the test, by one
// with --notify-config; the shared one is started again afterwards.
func notifyWorker(t *testing.T, config, metricsAddr string) {
	t.Helper()
	workerEnv := []string{"TEMPORAL_ADDRESS=" + env.address}
	env.workflowWorker.Stop()
	t.Cleanup(func() {
		p, err := testsuite.StartProcess("worker", filepath.Join(env.workDir, "worker-after-notify.log"), workerEnv, env.worker)
		if err != nil {
			t.Fatalf("restart the workflow worker: %v", err)
		}
		env.workflowWorker = p
	})
	log := filepath.Join(t.TempDir(), "worker.log")
	p, err := testsuite.StartProcess("worker-notify", log, workerEnv, env.worker, "--notify-config", config, "--metrics-addr", metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	testsuite.WaitFor(t, 30*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "certctl-worker polling") && strings.Contains(string(b), "notification channel"), "the notify worker did not start:\n" + string(b)
	})
}

// notifyResult waits for the NotifyWorkflow about workflowID to end.
func notifyResult(t *testing.T, workflowID string) workflows.NotifyResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.NotifyResult
	if err := env.client.GetWorkflow(ctx, workflows.NotifyID(workflowID), "").Get(ctx, &res); err != nil {
		t.Fatalf("NotifyWorkflow %s: %v", workflows.NotifyID(workflowID), err)
	}
	return res
}

// A deploy broken on purpose (its reload prints the key and fails, and so
// does the rollback's) notifies RollbackFailed once on each channel: a
// signed JSON webhook, a Slack-shaped POST and an email a real postfix
// delivers, each naming target, host, outcome, workflow and its Web UI
// page, none holding the new or the old key in any spelling. A
// ReloadFailed deploy reaches only the channels subscribed to it; a host
// without a worker notifies HostUnavailable from the deploy on the
// "certctl" queue; a halted rollout and an approval left pending notify
// too; each channel's metric counts each delivery once.
func TestIntegrationNotifications(t *testing.T) {
	secret := []byte("hmac-secret-of-the-test")
	hook := newReceiver(t, secret)
	chat := newReceiver(t, nil)
	sink := startMailSink(t)
	dir := t.TempDir()
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: env.ca.Root.Raw})
	port, err := testsuite.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", port)
	config := writeFile(t, dir, "notify.yaml", fmt.Sprintf(`web_ui: http://ui.example:8233
approval_pending_after: 2s
channels:
  - name: hook
    type: webhook
    url: %s/certctl
    secret_file: %s
  - name: chat
    type: slack
    url_file: %s
    events: [RollbackFailed, RolloutHalted]
  - name: mail
    type: email
    smtp: {address: "%s", starttls: required, ca_file: %s}
    from: certctl@notify.test
    to: [%s]
    events: [RollbackFailed]
`, hook.srv.URL, writeFile(t, dir, "hook.secret", string(secret)+"\n"), writeFile(t, dir, "chat.url", chat.srv.URL+"/services/T0/B0/x\n"),
		sink.p.Endpoint(), writeFile(t, dir, "root.pem", string(rootPEM)), mailTo))
	notifyWorker(t, config, metricsAddr)

	// A successful deploy notifies nobody and records nothing more: no
	// "notify" version marker, no child.
	n0, _ := startNginx(t)
	r0 := deploy(t, n0.Target("notify-ok", testHost), issue(t))
	if r0.code != 0 || r0.lastLine() != "outcome: Deployed" {
		t.Fatalf("exit %d, last line %q", r0.code, r0.lastLine())
	}
	if children, marked := notifyTraces(t, r0.workflowID()); children+marked != 0 {
		t.Fatalf("a successful deploy recorded %d children and %d notify markers", children, marked)
	}

	// RollbackFailed, the error quoting both keys.
	n, initial := startNginx(t)
	tg := n.Target("notify-leak", testHost)
	tg.Config.ReloadCommand = append(script(t,
		"grep -v -- ----- \"$1\"\nopenssl pkey -text -noout -in \"$1\"\nopenssl pkey -in \"$1\" -outform DER | base64 -w0\necho\nexit 1\n"), n.KeyPath)
	fresh := issue(t)
	r := deploy(t, tg, fresh)
	if last := r.lastLine(); last != "outcome: "+contract.RollbackFailed {
		t.Fatalf("exit %d, last line %q", r.code, last)
	}
	id := r.workflowID()
	keys := append(keyEncodings(t, fresh.KeyPEM), keyEncodings(t, initial.KeyPEM)...)
	res := notifyResult(t, id)
	if strings.Join(res.Sent, ",") != "hook,chat,mail" || len(res.Failed) != 0 {
		t.Fatalf("NotifyWorkflow result %+v", res)
	}
	p := hook.waitFor(t, aboutWorkflow(id), "about "+id)
	if !p.signed || p.header.Get(notify.HeaderEvent) != contract.RollbackFailed || p.header.Get(notify.HeaderDelivery) != workflows.NotifyID(id)+"#hook" {
		t.Fatalf("webhook headers %v (signature matched: %v)", p.header, p.signed)
	}
	// The shell line of docs/notifications.md gives the same signature.
	sh := exec.Command("sh", "-c", `printf '%s.%s' "$TS" "$(cat "$BODY")" | openssl dgst -sha256 -hmac "$(cat "$SECRET")"`)
	sh.Env = append(os.Environ(), "TS="+p.header.Get(notify.HeaderTimestamp), "BODY="+writeFile(t, dir, "body.json", string(p.body)),
		"SECRET="+filepath.Join(dir, "hook.secret"))
	if out, err := sh.Output(); err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), strings.TrimPrefix(p.header.Get(notify.HeaderSignature), "sha256=")) {
		t.Fatalf("openssl's HMAC %q (%v) is not the signature %s", out, err, p.header.Get(notify.HeaderSignature))
	}
	w := webhookOf(t, p)
	ui := "http://ui.example:8233/namespaces/default/workflows/" + strings.ReplaceAll(id, "/", "%2F") + "/"
	if w.Event.Event != contract.RollbackFailed || w.TargetID != "notify-leak" || w.TargetType != "nginx" || w.Host != testHost ||
		w.RunID == "" || !strings.HasPrefix(w.WebUI, ui) || !strings.Contains(w.Error, "[key material redacted]") ||
		!strings.Contains(w.Text, "needs a person") {
		t.Fatalf("webhook %+v", w)
	}
	if s := holdsAny(p.body, keys); s != "" || strings.Contains(string(p.body), "PRIVATE KEY") {
		t.Fatalf("the webhook's body holds a key (%q)", s)
	}
	c := chat.waitFor(t, slackAbout(id), "on the Slack hook about "+id)
	var sl struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(c.body, &sl); err != nil || !strings.Contains(sl.Text, "RollbackFailed on notify-leak") || len(sl.Blocks) < 2 {
		t.Fatalf("Slack body %v: %s", err, c.body)
	}
	if s := holdsAny(c.body, keys); s != "" {
		t.Fatalf("the Slack body holds a key (%q)", s)
	}
	msgs := sink.waitFor(t, 1)
	m := msgs[0]
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	body, _ := io.ReadAll(m.Body)
	if subject != "certctl: RollbackFailed on notify-leak" || m.Header.Get("To") != mailTo || !strings.Contains(string(body), id) ||
		!strings.Contains(string(body), "host:     "+testHost) || !strings.Contains(string(body), ui) {
		t.Fatalf("email %q:\n%s", subject, body)
	}
	raw, _ := filepath.Glob(filepath.Join(sink.maildir, "new", "*"))
	rawMail, _ := os.ReadFile(raw[0])
	if s := holdsAny(append(rawMail, body...), keys); s != "" {
		t.Fatalf("the email holds a key (%q)", s)
	}
	if !strings.Contains(string(rawMail), "TLS") {
		t.Errorf("postfix's Received header does not show TLS:\n%s", rawMail)
	}
	if children, marked := notifyTraces(t, id); children != 1 || marked != 1 {
		t.Fatalf("the RollbackFailed deploy recorded %d children and %d notify markers, want 1 and 1", children, marked)
	}
	record(t, id, "deploy-notify-rollback-failed")
	recordRun(t, workflows.NotifyID(id), "", "notify-delivered")

	// ReloadFailed: the webhook only.
	n2, _ := startNginx(t)
	tg2 := n2.Target("notify-reload", testHost)
	tg2.Config.ReloadCommand = reloadFailsOnce(t, n2)
	r2 := deploy(t, tg2, issue(t))
	if last := r2.lastLine(); last != "outcome: "+contract.ReloadFailed {
		t.Fatalf("exit %d, last line %q", r2.code, last)
	}
	if res := notifyResult(t, r2.workflowID()); strings.Join(res.Sent, ",") != "hook" {
		t.Fatalf("ReloadFailed went to %v", res.Sent)
	}
	if w := webhookOf(t, hook.waitFor(t, aboutWorkflow(r2.workflowID()), "about "+r2.workflowID())); w.Event.Event != contract.ReloadFailed {
		t.Fatalf("event %s", w.Event.Event)
	}
	if n := len(sink.messages(t)); n != 1 {
		t.Fatalf("%d emails: mail receives RollbackFailed only", n)
	}

	// HostUnavailable: no worker on the host; the deploy on "certctl"
	// notifies, its host run does not.
	n3, _ := startNginx(t)
	r3 := deployTextEnv(t, mustYAML(t, n3.Target("notify-nohost", "notify-nohost")), issue(t), []string{"CERTCTL_HOST_WAIT=3s"})
	if last := r3.lastLine(); last != "outcome: "+contract.HostUnavailable {
		t.Fatalf("exit %d, last line %q", r3.code, last)
	}
	w3 := webhookOf(t, hook.waitFor(t, aboutWorkflow(r3.workflowID()), "about "+r3.workflowID()))
	if w3.Event.Event != contract.HostUnavailable || w3.Host != "notify-nohost" || !strings.Contains(w3.NextAction, "certctl-worker --host notify-nohost") {
		t.Fatalf("webhook %+v", w3)
	}
	if hook.count(aboutWorkflow(r3.workflowID()+contract.HostRunSuffix)) != 0 {
		t.Fatal("the host run notified too")
	}
	recordRun(t, r3.workflowID(), "", "deploy-notify-host-unavailable")

	// HostUnavailable given up by certctl itself: the host's worker was
	// polling a moment ago, so the deploy started on its queue, but it was
	// killed; certctl terminates the run that nobody picked up and
	// notifies for it.
	n5, _ := startNginx(t)
	hw := hostWorker(t, "notify-vanished")
	waitPolled(t, "notify-vanished")
	hw.Kill()
	<-hw.Exited()
	r5 := deployTextEnv(t, mustYAML(t, n5.Target("notify-vanished", "notify-vanished")), issue(t), []string{"CERTCTL_HOST_WAIT=3s"})
	if last := r5.lastLine(); last != "outcome: "+contract.HostUnavailable {
		t.Fatalf("vanished host: exit %d, last line %q\n%s", r5.code, last, r5.stdout)
	}
	w5 := webhookOf(t, hook.waitFor(t, aboutWorkflow(r5.workflowID()), "about "+r5.workflowID()))
	if w5.Event.Event != contract.HostUnavailable || w5.TargetID != "notify-vanished" || !strings.Contains(w5.Error, "nothing was touched") {
		t.Fatalf("webhook %+v", w5)
	}

	// RolloutHalted: its canary's reload fails.
	n4, _ := startNginx(t)
	tg4 := n4.Target("notify-canary", testHost)
	tg4.Config.ReloadCommand = reloadFailsOnce(t, n4)
	rdir := t.TempDir()
	writeFile(t, rdir, "01-notify-canary.yaml", mustYAML(t, tg4))
	ro := rollout(t, rdir, issue(t), nil, "--id", uniqueID("notify"))
	if ro.lastLine() != "outcome: "+contract.RolloutHalted {
		t.Fatalf("rollout: exit %d, last line %q", ro.code, ro.lastLine())
	}
	rid := rolloutIDOf(ro)
	wr := webhookOf(t, hook.waitFor(t, aboutWorkflow(rid), "about "+rid))
	if wr.Event.Event != contract.RolloutHalted || len(wr.Failed) != 1 || wr.Failed[0].TargetID != "notify-canary" || wr.Failed[0].Outcome != contract.ReloadFailed {
		t.Fatalf("webhook %+v", wr)
	}
	chat.waitFor(t, slackAbout("rollout "+rid+" halted"), "on the Slack hook about "+rid)
	hook.waitFor(t, aboutWorkflow(wr.Failed[0].WorkflowID), "about the canary's deploy")
	recordRun(t, rid, "", "rollout-notify-halted")

	// ApprovalPending: a request left waiting past approval_pending_after
	// (2s) notifies once; approved after, it notifies nothing more.
	aid := workflows.ApprovalID(uniqueID("notify"))
	req := workflows.ApprovalRequest{RequestID: strings.TrimPrefix(aid, "approval/"), RequestedBy: "alice", ProfileID: "p-notify",
		Subject: "CN=shop.notify.test", Approvers: []string{"bob"}, Timeout: target.Duration(time.Hour)}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: aid, TaskQueue: contract.TaskQueue}, contract.ApprovalWorkflow, req)
	if err != nil {
		t.Fatal(err)
	}
	wa := webhookOf(t, hook.waitFor(t, aboutWorkflow(aid), "about "+aid))
	if wa.Event.Event != contract.ApprovalPending || wa.RequestID != req.RequestID || wa.RequestedBy != "alice" || wa.Subject != req.Subject ||
		!strings.Contains(wa.NextAction, "certctl approvals approve|reject "+req.RequestID) {
		t.Fatalf("webhook %+v", wa)
	}
	if err := env.client.SignalWorkflow(context.Background(), aid, "", contract.SignalApprove, workflows.SignalInput{Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	var st workflows.ApprovalStatus
	if err := run.Get(context.Background(), &st); err != nil || st.State != workflows.StateApproved {
		t.Fatalf("approval %v %+v", err, st)
	}
	if n := hook.count(aboutWorkflow(aid)); n != 1 {
		t.Fatalf("%d ApprovalPending notifications", n)
	}
	recordRun(t, aid, "", "approval-notify-pending")

	// Each delivery counted once: hook 7 (RollbackFailed, ReloadFailed,
	// HostUnavailable twice, the canary's ReloadFailed, RolloutHalted,
	// ApprovalPending), chat 2, mail 1.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`certctl_notifications_total{channel="hook",outcome="sent"} 7`,
		`certctl_notifications_total{channel="chat",outcome="sent"} 2`,
		`certctl_notifications_total{channel="mail",outcome="sent"} 1`,
	} {
		if !strings.Contains(string(scrape), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if hook.count(aboutWorkflow(r0.workflowID())) != 0 {
		t.Fatal("the successful deploy notified")
	}
	if strings.Contains(string(scrape), `outcome="failed"`) {
		t.Errorf("a notification failed:\n%s", scrape)
	}
}

// A worker refuses to start on a notify config it cannot use, naming the
// file and the field.
func TestIntegrationNotifyConfigRefused(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "notify.yaml", "channels:\n  - {name: hook, type: webhook, url: \"https://h.example\", secret_file: /nonexistent/secret}\n")
	cmd := exec.Command(env.worker, "--notify-config", bad)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+env.address)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "notify config "+bad+": channels[0].secret_file: open /nonexistent/secret") {
		t.Fatalf("worker: %v\n%s", err, out)
	}
}

// notifyTraces counts what notifying adds to a workflow's history: child
// workflows started, and "notify" version markers (their payloads decoded
// with the test codec).
func notifyTraces(t *testing.T, workflowID string) (children, markers int) {
	t.Helper()
	for _, ev := range history(t, workflowID, "") {
		if ev.GetStartChildWorkflowExecutionInitiatedEventAttributes() != nil {
			children++
		}
		if m := ev.GetMarkerRecordedEventAttributes(); m.GetMarkerName() == "Version" {
			ps, err := env.codec.Decode(m.GetDetails()["change-id"].GetPayloads())
			if err != nil || len(ps) != 1 {
				t.Fatalf("version marker: %v", err)
			}
			if string(ps[0].GetData()) == `"notify"` {
				markers++
			}
		}
	}
	return children, markers
}

func mustYAML(t *testing.T, tg target.Target) string {
	t.Helper()
	s, err := yamlOf(tg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

package notify

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/scrub"
)

// Event is one notification, NotifyWorkflow's input: what happened, to
// what, and where to look. Error is scrubbed by whoever fills it (the
// workflow knows the key it deployed) and again before it is sent.
type Event struct {
	Event      string `json:"event"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	TargetID   string `json:"target_id,omitempty"`
	TargetType string `json:"target_type,omitempty"`
	Host       string `json:"host,omitempty"`
	Error      string `json:"error,omitempty"`
	// A halted rollout: each failed target (its own deploy notified its
	// error), and how many were never started.
	Failed     []Failure `json:"failed,omitempty"`
	NotStarted int       `json:"not_started,omitempty"`
	// A pending approval.
	RequestID    string    `json:"request_id,omitempty"`
	ProfileID    string    `json:"profile_id,omitempty"`
	RequestedBy  string    `json:"requested_by,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	PendingSince time.Time `json:"pending_since,omitzero"`
	Deadline     time.Time `json:"deadline,omitzero"`
	// At is when it happened (workflow time).
	At time.Time `json:"at"`
}

// Failure is one target of a halted rollout.
type Failure struct {
	TargetID   string `json:"target_id"`
	Outcome    string `json:"outcome"`
	WorkflowID string `json:"workflow_id"`
}

// MaxError bounds the error text a message carries.
const MaxError = 4000

// nextAction is what the person reading does next, by event (the
// operator reference's outcome table, docs/operator.md).
var nextAction = map[string]string{
	contract.RollbackFailed:  "the target needs a person now: the rollback itself failed; the error names the files and their backups: restore them, reload the server, then deploy again",
	contract.VerifyFailed:    "rolled back, the old certificate is served: check the verify endpoint and that the server serves the deployed files, then deploy again",
	contract.ReloadFailed:    "rolled back, the old certificate is served: the error holds the reload command's output; fix the command or the server, then deploy again",
	contract.HostUnavailable: "nothing was touched: start the host's worker (certctl-worker --host HOST) and deploy again",
	contract.RolloutHalted:   "the targets not started are untouched: each failed target notified its own outcome; fix them, then run the rollout again",
	contract.ApprovalPending: "an approver decides with: certctl approvals approve|reject REQUEST_ID --as NAME",
}

// Message is the rendered notification every channel sends a form of.
type Message struct {
	Title      string `json:"title"`
	Text       string `json:"text"`
	NextAction string `json:"next_action"`
	WebUI      string `json:"web_ui,omitempty"`
}

// clean is the event as it may be sent: its error bounded and scrubbed
// once more (a PEM private key block is removed whatever key it holds).
func clean(ev Event) Event {
	ev.Error = scrub.New().String(ev.Error)
	if len(ev.Error) > MaxError {
		ev.Error = strings.ToValidUTF8(ev.Error[:MaxError], "") + "…"
	}
	return ev
}

// render builds the message. webUI is the Web UI's base address ("" when
// unknown), namespace the workflow's.
func render(ev Event, webUI, namespace string) Message {
	m := Message{NextAction: strings.ReplaceAll(strings.ReplaceAll(nextAction[ev.Event], "HOST", orDash(ev.Host)), "REQUEST_ID", orDash(ev.RequestID))}
	if webUI != "" && ev.WorkflowID != "" {
		m.WebUI = fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", strings.TrimRight(webUI, "/"),
			url.PathEscape(namespace), url.PathEscape(ev.WorkflowID), url.PathEscape(ev.RunID))
	}
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-9s %s\n", k+":", oneLine(v))
		}
	}
	switch ev.Event {
	case contract.RolloutHalted:
		m.Title = fmt.Sprintf("certctl: rollout %s halted", oneLine(ev.WorkflowID))
		for _, f := range ev.Failed {
			line("failed", fmt.Sprintf("%s %s (%s)", f.TargetID, f.Outcome, f.WorkflowID))
		}
		if ev.NotStarted > 0 {
			line("untouched", fmt.Sprintf("%d targets not started", ev.NotStarted))
		}
	case contract.ApprovalPending:
		m.Title = fmt.Sprintf("certctl: approval %s pending since %s", oneLine(ev.RequestID), ev.PendingSince.UTC().Format(time.RFC3339))
		line("request", ev.RequestID)
		line("profile", ev.ProfileID)
		line("subject", ev.Subject)
		line("requester", ev.RequestedBy)
		line("expires", ev.Deadline.UTC().Format(time.RFC3339))
	default:
		m.Title = fmt.Sprintf("certctl: %s on %s", ev.Event, oneLine(ev.TargetID))
		t := ev.TargetID
		if ev.TargetType != "" {
			t += " (" + ev.TargetType + ")"
		}
		line("target", t)
		line("host", ev.Host)
	}
	line("outcome", ev.Event)
	line("workflow", ev.WorkflowID)
	line("web ui", m.WebUI)
	line("at", ev.At.UTC().Format(time.RFC3339))
	line("do", m.NextAction)
	if ev.Error != "" {
		b.WriteString("error:\n" + ev.Error + "\n")
	}
	m.Text = b.String()
	return m
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a value on its line: control characters (a newline in a
// subject) become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return ' '
		}
		return r
	}, s)
}

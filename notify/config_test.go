package notify

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
)

// secretFile writes a secret and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseGoodConfig(t *testing.T) {
	sec, url := secretFile(t, "k3y\n"), secretFile(t, "https://hooks.slack.com/services/T/B/XYZ\n")
	c, err := Parse([]byte(`
web_ui: http://127.0.0.1:8233
approval_pending_after: 4h
channels:
  - {name: hook, type: webhook, url: "https://h.example/x", secret_file: ` + sec + `, events: [RollbackFailed, RolloutHalted]}
  - {name: chat, type: slack, url_file: ` + url + `}
  - name: mail
    type: email
    smtp: {address: "127.0.0.1:25"}
    from: certctl@example.com
    to: [ops@example.com]
    events: [ApprovalPending]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ApprovalPendingAfter.D() != 4*time.Hour || c.Channels[2].SMTP.StartTLS != StartTLSAuto {
		t.Fatalf("config %+v", c)
	}
	for ev, want := range map[string]string{
		contract.RollbackFailed:  "hook,chat",
		contract.VerifyFailed:    "chat",
		contract.ApprovalPending: "chat,mail",
		contract.RolloutHalted:   "hook,chat",
	} {
		if got := strings.Join(c.Subscribed(ev), ","); got != want {
			t.Errorf("%s goes to %s, want %s", ev, got, want)
		}
	}
}

// Every bad value is refused with the field it is in, what is wrong and
// what to write; a secret never appears in the message.
func TestParseRefusesNamingTheField(t *testing.T) {
	sec := secretFile(t, "k3y")
	empty := secretFile(t, " \n")
	notURL := secretFile(t, "hunter2-the-slack-token")
	hook := "{name: h, type: webhook, url: \"https://h.example\", secret_file: " + sec + "}"
	for _, c := range []struct{ yaml, want string }{
		{"channels:\n  - " + hook + "\nbogus: 1\n", "bogus: line 3: unknown field"},
		{"channels:\n  - {name: h, type: webhook, url: \"https://h.example\", secret_file: " + sec + ", secret: x}\n", "secret: line 2: unknown field"},
		{"channels:\n  - {type: webhook}\n", "channels[0].name: is required"},
		{"channels:\n  - {name: \"a b\", type: webhook}\n", `channels[0].name: "a b"`},
		{"channels:\n  - {name: h}\n", "channels[0].type: is required"},
		{"channels:\n  - {name: h, type: teams, url: \"https://x\"}\n", `channels[0].type: "teams": want webhook, slack or email`},
		{"channels:\n  - {name: h, type: webhook, secret_file: " + sec + "}\n", "channels[0].url: is required"},
		{"channels:\n  - {name: h, type: webhook, url: \"ftp://x\", secret_file: " + sec + "}\n", `channels[0].url: "ftp://x": want an http:// or https:// URL`},
		{"channels:\n  - {name: h, type: webhook, url: \"https://h.example\"}\n", "channels[0].secret_file: is required"},
		{"channels:\n  - {name: h, type: webhook, url: \"https://h.example\", secret_file: /nonexistent/s}\n", "channels[0].secret_file: open /nonexistent/s"},
		{"channels:\n  - {name: h, type: webhook, url: \"https://h.example\", secret_file: " + empty + "}\n", "channels[0].secret_file: " + empty + " is empty"},
		{"channels:\n  - {name: h, type: slack, url_file: " + notURL + "}\n", "channels[0].url_file: " + notURL + " does not hold an http or https URL"},
		{"channels:\n  - {name: h, type: slack, url: \"https://x\", secret_file: " + sec + "}\n", "channels[0].secret_file: only for type webhook, not slack"},
		{"channels:\n  - {name: h, type: slack, url: \"https://x\", events: [Deployed]}\n", `channels[0].events[0]: "Deployed" is not an event`},
		{"channels:\n  - {name: h, type: slack, url: \"https://x\", timeout: 1h}\n", "channels[0].timeout: 1h0m0s: want more than 0 and at most 5m0s"},
		{"channels:\n  - {name: h, type: slack, url: \"https://x\", timeout: soon}\n", "soon"},
		{"channels:\n  - {name: h, type: slack, url: \"https://x\"}\n  - {name: h, type: slack, url: \"https://y\"}\n", `channels[1].name: "h" is also channels[0]`},
		{"channels:\n  - {name: m, type: email, from: a@b.c, to: [d@e.f]}\n", "channels[0].smtp: is required"},
		{"channels:\n  - {name: m, type: email, smtp: {address: nohost}, from: a@b.c, to: [d@e.f]}\n", `channels[0].smtp.address: "nohost": want host:port`},
		{"channels:\n  - {name: m, type: email, smtp: {address: \"h:25\", starttls: maybe}, from: a@b.c, to: [d@e.f]}\n", `channels[0].smtp.starttls: "maybe"`},
		{"channels:\n  - {name: m, type: email, smtp: {address: \"h:25\", username: u}, from: a@b.c, to: [d@e.f]}\n", "channels[0].smtp.password_file: username and password_file go together"},
		{"channels:\n  - {name: m, type: email, smtp: {address: \"h:25\", starttls: \"off\", username: u, password_file: " + sec + "}, from: a@b.c, to: [d@e.f]}\n", "channels[0].smtp.password_file: a password is sent only over TLS"},
		{"channels:\n  - {name: m, type: email, smtp: {address: \"h:25\"}, to: [d@e.f]}\n", "channels[0].from: is required"},
		{"channels:\n  - {name: m, type: email, smtp: {address: \"h:25\"}, from: a@b.c}\n", "channels[0].to: is required"},
		{"channels:\n  - {name: m, type: email, smtp: {address: \"h:25\"}, from: a@b.c, to: [\"x\"]}\n", `channels[0].to[0]: "x": not an email address`},
		{"channels:\n  - {name: m, type: email, smtp: {address: \"h:25\"}, from: a@b.c, to: [d@e.f], url: \"https://x\"}\n", "channels[0].url: only for type webhook or slack, not email"},
		{"web_ui: 8233\n", `web_ui: "8233": want an http:// or https:// URL`},
		{"approval_pending_after: -1h\n", "approval_pending_after: must not be negative"},
		{"channels: []\n---\nchannels: []\n", "more than one YAML document"},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n error %v\n want one containing %q", c.yaml, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "k3y") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows a secret: %v", err)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notify.yaml")
	if err := os.WriteFile(p, []byte("channels:\n  - {name: h}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "notify config "+p+": channels[0].type") {
		t.Fatalf("error %v", err)
	}
	if _, err := Load(p + ".missing"); err == nil || !strings.Contains(err.Error(), p+".missing") {
		t.Fatalf("error %v", err)
	}
	t.Setenv(EnvWebUI, "http://ui.example:8233")
	c, err := Load("")
	if err != nil || len(c.Channels) != 0 || c.WebUI != "http://ui.example:8233" {
		t.Fatalf("no file: %+v %v", c, err)
	}
}

// A subject or target with a line break cannot add a header to the mail,
// and a PEM private key in the error never reaches any channel's form.
func TestMessagesCannotBeInjected(t *testing.T) {
	ev := clean(Event{Event: contract.ApprovalPending, WorkflowID: "approval/r-1", RequestID: "r-1",
		Subject: "CN=x\r\nBcc: evil@example.com", Error: "boom -----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY----- after"})
	m := render(ev, "", "default")
	mail := string(mailMessage("a@b.c", []string{"d@e.f"}, "approval/r-1/notify#mail", m, time.Unix(0, 0)))
	head, _, _ := strings.Cut(mail, "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		if strings.HasPrefix(strings.ToLower(l), "bcc:") {
			t.Fatalf("a header was injected: %q", head)
		}
	}
	if strings.Contains(mail, "\nBcc:") {
		t.Fatalf("a line of the mail starts with Bcc:\n%s", mail)
	}
	sl, _ := json.Marshal(slackMessage(m))
	for _, s := range []string{mail, string(sl), m.Text} {
		if strings.Contains(s, "MIGH") || strings.Contains(s, "PRIVATE KEY") {
			t.Fatalf("a key block reached a message: %s", s)
		}
	}
	if !strings.Contains(m.Text, "[key material redacted]") {
		t.Fatalf("text %q", m.Text)
	}
}

// Slack's markup characters are escaped: a target ID cannot become a link.
func TestSlackEscapes(t *testing.T) {
	m := render(Event{Event: contract.VerifyFailed, TargetID: "<https://evil|click>", WorkflowID: "w"}, "http://ui:8233", "default")
	b, _ := json.Marshal(slackMessage(m))
	var back slackBody
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	links := 0
	for _, bl := range back.Blocks {
		if bl.Text.Type == "mrkdwn" && strings.Contains(bl.Text.Text, "<https://evil") {
			t.Fatalf("unescaped in markup: %q", bl.Text.Text)
		}
		if bl.Text.Text == "<http://ui:8233/namespaces/default/workflows/w//history|Open in the Temporal Web UI>" {
			links++
		}
	}
	if links != 1 || !strings.Contains(back.Text, "&lt;https://evil|click&gt;") {
		t.Fatalf("body %+v", back)
	}
}

// A Slack URL is the secret: an error reaching it names the channel, never
// the URL.
func TestSecretURLNeverInErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	u := "http://" + addr + "/services/T0/B0/sekrit-token"
	ch := Channel{Name: "chat", Type: TypeSlack, URLFile: secretFile(t, u)}
	err = ch.sendSlack(context.Background(), Message{Title: "t", Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "channel chat (slack)") || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("error %v", err)
	}
	// The same URL given in the file itself may be named.
	ch = Channel{Name: "chat", Type: TypeSlack, URL: u}
	if err := ch.sendSlack(context.Background(), Message{Title: "t"}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("error %v", err)
	}
}

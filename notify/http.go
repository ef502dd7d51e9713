package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
)

// Headers of a webhook delivery (docs/notifications.md). The signature is
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
const (
	HeaderEvent     = "X-Certctl-Event"
	HeaderDelivery  = "X-Certctl-Delivery"
	HeaderTimestamp = "X-Certctl-Timestamp"
	HeaderSignature = "X-Certctl-Signature"
)

// Sign is the signature header's value for body sent at timestamp (Unix
// seconds, as the timestamp header carries it).
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Webhook is the JSON body a webhook channel receives.
type Webhook struct {
	// ID identifies the delivery: the same on every retry of it, so a
	// receiver can drop a duplicate.
	ID string `json:"id"`
	Event
	Message
}

// slackBody is a Slack-compatible incoming webhook's body: text for
// notifications and clients without blocks, blocks for the rest.
type slackBody struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type string     `json:"type"`
	Text *slackText `json:"text,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// slackEscape escapes what Slack's mrkdwn reads as markup.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func slackMessage(m Message) slackBody {
	body := slackEscape(strings.TrimSpace(m.Text))
	if len(body) > 2900 { // a section's text holds at most 3000 characters
		body = body[:2900] + "…"
	}
	b := slackBody{
		Text: slackEscape(m.Title),
		Blocks: []slackBlock{
			{Type: "header", Text: &slackText{Type: "plain_text", Text: truncate(m.Title, 150)}},
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: "```" + body + "```"}},
		},
	}
	if m.WebUI != "" {
		b.Blocks = append(b.Blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: "<" + m.WebUI + "|Open in the Temporal Web UI>"}})
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// post sends one JSON body. A 2xx is sent; 408, 429 and 5xx are retried
// by the activity's retry policy; any other status is refused for good
// (NotifyRefused). Redirects are not followed. The URL never reaches an
// error when it came from url_file (it is the secret).
func (ch *Channel) post(ctx context.Context, body []byte, headers map[string]string) error {
	target, secretURL := ch.URL, false
	if target == "" {
		u, err := readSecret(ch.URLFile)
		if err != nil {
			return fmt.Errorf("channel %s: url_file: %v", ch.Name, err)
		}
		target, secretURL = string(u), true
	}
	ctx, cancel := context.WithTimeout(ctx, ch.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("channel %s: the URL is not usable", ch.Name), contract.NotifyRefused, nil)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "certctl-notify")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if secretURL && errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("channel %s (%s): %v", ch.Name, ch.Type, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	said := strings.TrimSpace(oneLine(string(answer)))
	if said != "" {
		said = ": " + strconv.Quote(said)
	}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return nil
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		return fmt.Errorf("channel %s (%s): the server answered %s%s; retried", ch.Name, ch.Type, resp.Status, said)
	default:
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("channel %s (%s): the server refused the notification: %s%s; not retried: check the channel's url (and secret) in the notify config", ch.Name, ch.Type, resp.Status, said),
			contract.NotifyRefused, nil)
	}
}

// sendWebhook posts the signed JSON.
func (ch *Channel) sendWebhook(ctx context.Context, delivery string, ev Event, m Message, now time.Time) error {
	secret, err := readSecret(ch.SecretFile)
	if err != nil {
		return fmt.Errorf("channel %s: secret_file: %v", ch.Name, err)
	}
	body, err := json.Marshal(Webhook{ID: delivery, Event: ev, Message: m})
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	return ch.post(ctx, body, map[string]string{
		HeaderEvent: ev.Event, HeaderDelivery: delivery, HeaderTimestamp: ts, HeaderSignature: Sign(secret, ts, body),
	})
}

func (ch *Channel) sendSlack(ctx context.Context, m Message) error {
	body, err := json.Marshal(slackMessage(m))
	if err != nil {
		return err
	}
	return ch.post(ctx, body, nil)
}

// Package notify sends certctl's notifications: a deploy that rolled back
// or could not, a host that never answered, a halted rollout, an approval
// left waiting. The channels (a signed JSON webhook, a Slack-compatible
// incoming webhook, email over SMTP) and which events each receives live
// in the workflow worker's --notify-config file, never in a request:
//
//	web_ui: http://127.0.0.1:8233          # optional: each message links the workflow there
//	approval_pending_after: 4h             # optional: ApprovalPending once a request waits this long
//	channels:
//	  - name: ops-hook
//	    type: webhook
//	    url: https://hooks.example.com/certctl
//	    secret_file: /etc/certctl/notify-hook.secret   # HMAC-SHA256 key
//	    events: [RollbackFailed, VerifyFailed, ReloadFailed, HostUnavailable, RolloutHalted, ApprovalPending]
//	  - name: chat
//	    type: slack
//	    url_file: /etc/certctl/slack-webhook.url        # the URL is the secret
//	  - name: mail
//	    type: email
//	    smtp: {address: "mail.example.com:587", starttls: required}
//	    from: certctl@example.com
//	    to: [ops@example.com]
//
// docs/notifications.md is the operator's reference.
package notify

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/strictyaml"
	"github.com/certctl/certctl/target"
)

// Channel types.
const (
	TypeWebhook = "webhook"
	TypeSlack   = "slack"
	TypeEmail   = "email"
)

// STARTTLS modes of an email channel.
const (
	StartTLSAuto     = "auto"     // upgrade when the server offers it (the default)
	StartTLSRequired = "required" // refuse to send without it
	StartTLSOff      = "off"      // never upgrade (a relay on loopback)
)

// EnvWebUI is the Temporal Web UI's address, used when the file sets no
// web_ui (the same variable `certctl status` reads).
const EnvWebUI = "CERTCTL_WEB_UI"

// Limits.
const (
	MaxFileSize    = 64 << 10
	maxSecretFile  = 4 << 10
	DefaultTimeout = 10 * time.Second
	maxTimeout     = 5 * time.Minute
)

// Config is a --notify-config file, as read and checked.
type Config struct {
	// File is where it was read from.
	File string `yaml:"-"`
	// WebUI is the Temporal Web UI's base address ("" when unknown).
	WebUI string `yaml:"web_ui"`
	// ApprovalPendingAfter: an approval request pending this long fires
	// ApprovalPending once (0: never).
	ApprovalPendingAfter target.Duration `yaml:"approval_pending_after"`
	Channels             []Channel       `yaml:"channels"`
}

// Channel is one destination of notifications.
type Channel struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Events it receives; absent: every event.
	Events []string `yaml:"events"`
	// webhook, slack: where to POST; url_file instead keeps a URL that is
	// a secret (Slack's) out of the config.
	URL     string `yaml:"url"`
	URLFile string `yaml:"url_file"`
	// webhook: the HMAC-SHA256 key, read at each send.
	SecretFile string `yaml:"secret_file"`
	// email.
	SMTP *SMTP    `yaml:"smtp"`
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
	// Timeout bounds one attempt (default 10s).
	Timeout target.Duration `yaml:"timeout"`
}

// SMTP is an email channel's server.
type SMTP struct {
	Address      string `yaml:"address"`
	StartTLS     string `yaml:"starttls"`
	CAFile       string `yaml:"ca_file"`
	ServerName   string `yaml:"server_name"`
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// Load reads and checks the file at path. An empty path is no config: no
// channel, nothing sent.
func Load(path string) (*Config, error) {
	if path == "" {
		return &Config{WebUI: os.Getenv(EnvWebUI)}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("notify config %s: %w", path, err)
	}
	defer f.Close()
	data, err := strictyaml.Read(f, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("notify config %s: %w", path, err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("notify config %s: %w", path, err)
	}
	c.File = path
	if c.WebUI == "" {
		c.WebUI = os.Getenv(EnvWebUI)
	}
	return c, nil
}

// Parse reads a config strictly (unknown fields refused) and checks every
// field; secret files must exist and be readable now, so a worker never
// starts on a channel that cannot send.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := strictyaml.Decode(data, &c); err != nil {
		if msg, ok := strictyaml.Describe(err, "notify config"); ok {
			return nil, errors.New(msg)
		}
		return nil, decodeErr(err)
	}
	if c.WebUI != "" {
		if err := checkURL(c.WebUI); err != nil {
			return nil, fmt.Errorf("web_ui: %v", err)
		}
	}
	if c.ApprovalPendingAfter < 0 {
		return nil, errors.New("approval_pending_after: must not be negative")
	}
	seen := map[string]int{}
	for i := range c.Channels {
		ch := &c.Channels[i]
		if err := ch.check(); err != nil {
			return nil, fmt.Errorf("channels[%d]%s", i, err)
		}
		if j, dup := seen[ch.Name]; dup {
			return nil, fmt.Errorf("channels[%d].name: %q is also channels[%d]: give each channel its own name", i, ch.Name, j)
		}
		seen[ch.Name] = i
	}
	return &c, nil
}

// decodeErr turns yaml.v3's "line 4: field secret not found in type
// notify.Channel" into an error naming the field.
func decodeErr(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		var line int
		var name string
		if _, serr := fmt.Sscanf(te.Errors[0], "line %d: field %s not found", &line, &name); serr == nil {
			return fmt.Errorf("%s: line %d: unknown field (a typo never falls back to a default)", name, line)
		}
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}

// check checks one channel; the error starts with ".field: ".
func (ch *Channel) check() error {
	if ch.Name == "" {
		return errors.New(".name: is required (it labels the metric and the Web UI's activity)")
	}
	for _, r := range ch.Name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') || len(ch.Name) > 64 {
			return fmt.Errorf(".name: %q: use letters, digits, '-', '_' and '.', at most 64", ch.Name)
		}
	}
	for j, e := range ch.Events {
		if !slices.Contains(contract.NotifyEvents, e) {
			return fmt.Errorf(".events[%d]: %q is not an event: want one of %s", j, e, strings.Join(contract.NotifyEvents, ", "))
		}
	}
	if ch.Timeout < 0 || ch.Timeout.D() > maxTimeout {
		return fmt.Errorf(".timeout: %s: want more than 0 and at most %s", ch.Timeout, maxTimeout)
	}
	switch ch.Type {
	case TypeWebhook, TypeSlack, TypeEmail:
	case "":
		return fmt.Errorf(".type: is required: want %s, %s or %s", TypeWebhook, TypeSlack, TypeEmail)
	default:
		return fmt.Errorf(".type: %q: want %s, %s or %s", ch.Type, TypeWebhook, TypeSlack, TypeEmail)
	}
	only := func(field string, set bool, types ...string) error {
		if set && !slices.Contains(types, ch.Type) {
			return fmt.Errorf(".%s: only for type %s, not %s", field, strings.Join(types, " or "), ch.Type)
		}
		return nil
	}
	for _, e := range []error{
		only("url", ch.URL != "", TypeWebhook, TypeSlack),
		only("url_file", ch.URLFile != "", TypeWebhook, TypeSlack),
		only("secret_file", ch.SecretFile != "", TypeWebhook),
		only("smtp", ch.SMTP != nil, TypeEmail),
		only("from", ch.From != "", TypeEmail),
		only("to", len(ch.To) > 0, TypeEmail),
	} {
		if e != nil {
			return e
		}
	}
	switch ch.Type {
	case TypeWebhook, TypeSlack:
		switch {
		case ch.URL == "" && ch.URLFile == "":
			return errors.New(".url: is required (or url_file: a file holding it)")
		case ch.URL != "" && ch.URLFile != "":
			return errors.New(".url_file: give url or url_file, not both")
		case ch.URL != "":
			if err := checkURL(ch.URL); err != nil {
				return fmt.Errorf(".url: %v", err)
			}
		default:
			u, err := readSecret(ch.URLFile)
			if err != nil {
				return fmt.Errorf(".url_file: %v", err)
			}
			if err := checkURL(string(u)); err != nil {
				// Never the URL itself: it is the secret.
				return fmt.Errorf(".url_file: %s does not hold an http or https URL", ch.URLFile)
			}
		}
		if ch.Type == TypeWebhook {
			if ch.SecretFile == "" {
				return errors.New(".secret_file: is required: a webhook's body is signed (HMAC-SHA256) with the key this file holds")
			}
			if _, err := readSecret(ch.SecretFile); err != nil {
				return fmt.Errorf(".secret_file: %v", err)
			}
		}
	case TypeEmail:
		if ch.SMTP == nil {
			return errors.New(".smtp: is required: {address: host:port}")
		}
		if err := ch.SMTP.check(); err != nil {
			return fmt.Errorf(".smtp%v", err)
		}
		if err := checkAddress(ch.From); err != nil {
			return fmt.Errorf(".from: %v", err)
		}
		if len(ch.To) == 0 {
			return errors.New(".to: is required: at least one address")
		}
		for j, t := range ch.To {
			if err := checkAddress(t); err != nil {
				return fmt.Errorf(".to[%d]: %v", j, err)
			}
		}
	}
	return nil
}

func (s *SMTP) check() error {
	host, port, err := net.SplitHostPort(s.Address)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf(".address: %q: want host:port (e.g. mail.example.com:587)", s.Address)
	}
	switch s.StartTLS {
	case "":
		s.StartTLS = StartTLSAuto
	case StartTLSAuto, StartTLSRequired, StartTLSOff:
	default:
		return fmt.Errorf(".starttls: %q: want %s, %s or %s", s.StartTLS, StartTLSAuto, StartTLSRequired, StartTLSOff)
	}
	if s.CAFile != "" {
		if _, err := s.tlsConfig("check"); err != nil {
			return fmt.Errorf(".ca_file: %v", err)
		}
	}
	if (s.Username == "") != (s.PasswordFile == "") {
		return errors.New(".password_file: username and password_file go together")
	}
	if s.PasswordFile != "" {
		if s.StartTLS == StartTLSOff {
			return errors.New(".password_file: a password is sent only over TLS: set starttls to required")
		}
		if _, err := readSecret(s.PasswordFile); err != nil {
			return fmt.Errorf(".password_file: %v", err)
		}
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	return nil
}

func checkAddress(s string) error {
	if s == "" {
		return errors.New("is required: an email address")
	}
	if _, err := mail.ParseAddress(s); err != nil || strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("%q: not an email address", s)
	}
	return nil
}

// readSecret reads a small secret file, trimmed of surrounding white
// space; an empty one is refused. Its content never reaches an error.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := strictyaml.Read(f, maxSecretFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

// Subscribed names the channels that receive event, in file order.
func (c *Config) Subscribed(event string) []string {
	var out []string
	for _, ch := range c.Channels {
		if len(ch.Events) == 0 || slices.Contains(ch.Events, event) {
			out = append(out, ch.Name)
		}
	}
	return out
}

// channel finds a channel by name.
func (c *Config) channel(name string) (*Channel, bool) {
	for i := range c.Channels {
		if c.Channels[i].Name == name {
			return &c.Channels[i], true
		}
	}
	return nil, false
}

func (ch *Channel) timeout() time.Duration {
	if ch.Timeout == 0 {
		return DefaultTimeout
	}
	return ch.Timeout.D()
}

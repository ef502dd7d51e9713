package caddy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxConfig bounds the config caddy's admin endpoint may return; maxAnswer
// what its answer to /load contributes to results and errors.
const (
	maxConfig = 16 << 20
	maxAnswer = 4 << 10
)

// AdminReload is `caddy reload --force` through the admin endpoint, without
// the caddy binary: GET Admin/config/, then POST it back to Admin/load with
// `Cache-Control: must-revalidate`, which makes caddy load the config again
// even though it is unchanged, and so re-read the certificate files.
type AdminReload struct {
	// Admin is the admin endpoint's URL ("http://127.0.0.1:2019").
	Admin string
	// Client makes the requests; nil is a client without proxies.
	Client *http.Client
}

func (a AdminReload) base() string { return strings.TrimRight(a.Admin, "/") }

// String says what the reload does.
func (a AdminReload) String() string {
	return "POST " + a.base() + "/load (the config from GET " + a.base() + "/config/, Cache-Control: must-revalidate)"
}

func (a AdminReload) client() *http.Client {
	if a.Client != nil {
		return a.Client
	}
	// The admin endpoint is reached directly: no proxy from the environment.
	return &http.Client{Transport: &http.Transport{Proxy: nil}}
}

// Reload fetches caddy's running config and loads it again, forced.
func (a AdminReload) Reload(ctx context.Context) (string, error) {
	cl := a.client()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base()+"/config/", nil)
	if err != nil {
		return "", err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return "", fmt.Errorf("get config: %w", err)
	}
	conf, err := io.ReadAll(io.LimitReader(resp.Body, maxConfig+1))
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("get config: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("get config: %s: %s", resp.Status, answer(conf))
	}
	if len(conf) > maxConfig {
		return "", fmt.Errorf("get config: larger than %d bytes", maxConfig)
	}
	conf = bytes.TrimSpace(conf)
	if !json.Valid(conf) {
		return "", fmt.Errorf("get config: the answer is not JSON: %s", answer(conf))
	}
	if string(conf) == "null" {
		return "", fmt.Errorf("get config: caddy runs no config: nothing to reload")
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, a.base()+"/load", bytes.NewReader(conf))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err = cl.Do(req)
	if err != nil {
		return "", fmt.Errorf("load: %w", err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("load: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("load: %s: %s", resp.Status, answer(body))
	}
	return strings.TrimSpace("load: " + resp.Status + " " + string(body)), nil
}

// answer is caddy's message from an error answer ({"error": "…"}), else the
// answer itself, cut short.
func answer(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	s := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		s = e.Error
	}
	if len(s) > maxAnswer {
		s = s[:maxAnswer] + "…"
	}
	return s
}

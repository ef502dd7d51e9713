package activities

// The Reload activity's HTTP reload (caddy's admin-API mode) against an
// httptest stand-in for caddy's admin endpoint; real caddy is in testsuite's
// conformance suite (caddy-api).

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/caddy"
	_ "github.com/certctl/certctl/connectors/caddy"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

func caddyAdmin(t *testing.T, loadCode int, loadBody string) (*httptest.Server, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/config/":
			io.WriteString(w, `{"apps":{}}`)
		case r.Method == http.MethodPost && r.URL.Path == "/load":
			b, _ := io.ReadAll(r.Body)
			calls = append(calls, "load "+string(b)+" "+r.Header.Get("Cache-Control"))
			if loadCode != 0 {
				w.WriteHeader(loadCode)
				io.WriteString(w, loadBody)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func caddyAPITarget(dir, admin string) target.Target {
	tg := newTarget(dir)
	tg.TargetType = "caddy"
	tg.Config.ChainPath = ""
	tg.Config.ValidateCommand, tg.Config.ReloadCommand = nil, nil
	tg.Config.Own = &caddy.Config{CaddyAdmin: admin}
	return tg
}

func TestReloadHTTP(t *testing.T) {
	srv, calls := caddyAdmin(t, 0, "")
	tg := caddyAPITarget(t.TempDir(), srv.URL)
	c, _ := connectors.Get("caddy")
	if err := c.Check(tg.Config); err != nil {
		t.Fatal(err)
	}
	res, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	if err != nil {
		t.Fatalf("reload through the admin endpoint: %v", err)
	}
	if len(*calls) != 1 || (*calls)[0] != `load {"apps":{}} must-revalidate` {
		t.Errorf("calls %q", *calls)
	}
	if !strings.Contains(res.Command, srv.URL+"/load") || !strings.Contains(res.Output, "200") {
		t.Errorf("result does not say what was done: %+v", res)
	}
}

func TestReloadHTTPFails(t *testing.T) {
	srv, _ := caddyAdmin(t, http.StatusBadRequest, `{"error":"loading new config: tls: private key does not match public key"}`)
	tg := caddyAPITarget(t.TempDir(), srv.URL)
	_, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	appErr(t, err, contract.ReloadFailed)
	if !strings.Contains(err.Error(), "private key does not match") || !strings.Contains(err.Error(), srv.URL+"/load") {
		t.Errorf("error %v does not carry caddy's message", err)
	}
	// Nothing listening.
	srv.Close()
	_, err = (&Activities{}).Reload(ctx, Request{Target: tg})
	appErr(t, err, contract.ReloadFailed)
}

// In admin-API mode the validate step is the material check only: there is
// no caddy binary to run and caddy's API has no dry run.
func TestValidateAdminAPIModeNoServerCheck(t *testing.T) {
	tg := caddyAPITarget(t.TempDir(), "http://127.0.0.1:1")
	c, _ := connectors.Get("caddy")
	if v := connectors.ValidateCommand(c, tg.Config); len(v) != 0 {
		t.Fatalf("validate command %v in admin-API mode", v)
	}
}

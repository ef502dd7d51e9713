package caddy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// fakeAdmin is caddy's admin endpoint as far as a forced reload sees it.
type fakeAdmin struct {
	mu       sync.Mutex
	config   string
	loadCode int
	loadBody string
	calls    []string
	loaded   string
	cache    string
	ctype    string
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/config/":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, f.config+"\n")
	case r.Method == http.MethodPost && r.URL.Path == "/load":
		b, _ := io.ReadAll(r.Body)
		f.loaded, f.cache, f.ctype = string(b), r.Header.Get("Cache-Control"), r.Header.Get("Content-Type")
		if f.loadCode != 0 {
			w.WriteHeader(f.loadCode)
			io.WriteString(w, f.loadBody)
		}
	default:
		http.NotFound(w, r)
	}
}

const runningConfig = `{"admin":{"listen":"127.0.0.1:2019"},"apps":{"http":{"servers":{"srv0":{"listen":[":443"]}}}}}`

func TestAdminReloadPostsConfigBackForced(t *testing.T) {
	f := &fakeAdmin{config: runningConfig}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a := AdminReload{Admin: srv.URL + "/"} // a trailing slash is fine
	out, err := a.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, ", "); got != "GET /config/, POST /load" {
		t.Errorf("calls %q", got)
	}
	if f.loaded != runningConfig {
		t.Errorf("loaded %q, want the running config", f.loaded)
	}
	if f.cache != "must-revalidate" || f.ctype != "application/json" {
		t.Errorf("Cache-Control %q Content-Type %q", f.cache, f.ctype)
	}
	if !strings.Contains(out, "200") {
		t.Errorf("output %q", out)
	}
	if s := a.String(); !strings.Contains(s, srv.URL+"/load") || !strings.Contains(s, "must-revalidate") {
		t.Errorf("String %q", s)
	}
}

func TestAdminReloadFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *fakeAdmin
		want string
	}{
		{"caddy refuses", &fakeAdmin{config: runningConfig, loadCode: 400,
			loadBody: `{"error":"loading config: tls: private key does not match public key"}`},
			"400 Bad Request: loading config: tls: private key does not match public key"},
		{"plain error", &fakeAdmin{config: runningConfig, loadCode: 500, loadBody: "boom"}, "500 Internal Server Error: boom"},
		{"no config", &fakeAdmin{config: "null"}, "runs no config"},
		{"not json", &fakeAdmin{config: "<html>"}, "not JSON"},
	} {
		srv := httptest.NewServer(tc.f)
		_, err := AdminReload{Admin: srv.URL}.Reload(context.Background())
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// GET refused.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"host not allowed: x"}`, http.StatusForbidden)
	}))
	_, err := AdminReload{Admin: srv.URL}.Reload(context.Background())
	srv.Close()
	if err == nil || !strings.Contains(err.Error(), "get config: 403 Forbidden: host not allowed") {
		t.Errorf("refused GET: %v", err)
	}
	// Nothing listening.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := (AdminReload{Admin: "http://" + addr}).Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "get config") {
		t.Errorf("closed port: %v", err)
	}
	// The context bounds it.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := (AdminReload{Admin: hang.URL}).Reload(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung endpoint: %v", err)
	}
}

func TestModes(t *testing.T) {
	c, err := connectors.Get(Name)
	if err != nil {
		t.Fatal(err)
	}
	file := target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem"}
	if r := connectors.ReloadFor(c, file); r.HTTP != nil || r.Command[0] != "caddy" {
		t.Errorf("file mode reload %+v", r)
	}
	if v := connectors.ValidateCommand(c, file); len(v) == 0 || v[0] != "caddy" {
		t.Errorf("file mode validate %v", v)
	}
	api := file
	api.Own = &Config{CaddyAdmin: "http://127.0.0.1:2019"}
	if err := c.Check(api); err != nil {
		t.Errorf("admin-API target refused: %v", err)
	}
	r := connectors.ReloadFor(c, api)
	if a, ok := r.HTTP.(AdminReload); !ok || a.Admin != "http://127.0.0.1:2019" || len(r.Command) != 0 {
		t.Errorf("admin-API reload %+v", r)
	}
	if v := connectors.ValidateCommand(c, api); len(v) != 0 {
		t.Errorf("admin-API mode has no default check, got %v", v)
	}
	if v := connectors.ReloadCommand(c, api); len(v) != 0 {
		t.Errorf("admin-API mode has no reload command, got %v", v)
	}
	// The target's own commands still win.
	api.ValidateCommand, api.ReloadCommand = target.Command{"/bin/check"}, target.Command{"/bin/reload"}
	if v := connectors.ValidateCommand(c, api); len(v) != 1 || v[0] != "/bin/check" {
		t.Errorf("validate_command in admin-API mode: %v", v)
	}
	if r := connectors.ReloadFor(c, api); r.HTTP != nil || r.Command[0] != "/bin/reload" {
		t.Errorf("reload_command in admin-API mode: %+v", r)
	}
	// A bad admin URL, and fields caddy does not read.
	for _, tc := range []struct {
		cfg   target.Config
		field string
	}{
		{target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem", Own: &Config{CaddyAdmin: "unix//run/caddy.sock"}}, "target_config.caddy_admin"},
		{target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem", Own: &haproxy.Config{PEMPath: "/d/p.pem"}}, "target_config.pem_path"},
		{target.Config{KeyPath: "/d/k.pem", Own: &Config{CaddyAdmin: "http://x"}}, "target_config.cert_path"},
	} {
		var fe *contract.FieldError
		if err := c.Check(tc.cfg); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want %s", tc.cfg, err, tc.field)
		}
	}
}

package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/certctl/certctl/activities"
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/target"
)

func parse(t *testing.T, y string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p.File = "/etc/certctl/worker.yaml"
	return p
}

func refusedRule(t *testing.T, err error) string {
	t.Helper()
	var r *policy.Refused
	if !errors.As(err, &r) {
		t.Fatalf("want *policy.Refused, got %v", err)
	}
	if !strings.Contains(err.Error(), r.File) {
		t.Fatalf("refusal does not name the policy file %s: %v", r.File, err)
	}
	return r.Rule
}

func TestPathAtDirectoryBoundary(t *testing.T) {
	p := parse(t, "allow_paths: [/etc/nginx/certs/]\n")
	for _, ok := range []string{"/etc/nginx/certs/cert.pem", "/etc/nginx/certs/sub/key.pem", "/etc/nginx/certs//cert.pem", "/etc/nginx/certs/./x"} {
		if err := p.CheckPath("target_config.cert_path", ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"/etc/nginx/certs2/cert.pem", "/etc/nginx/cert", "/etc/nginx/certs/../nginx.conf", "/etc/shadow", "etc/nginx/certs/x", "/etc/nginx/certs/a/../../x"} {
		err := p.CheckPath("target_config.cert_path", bad)
		if err == nil {
			t.Errorf("%s allowed", bad)
			continue
		}
		if rule := refusedRule(t, err); rule != "allow_paths" || !strings.Contains(err.Error(), "target_config.cert_path") {
			t.Errorf("%s: rule %s, message %v", bad, rule, err)
		}
	}
}

func TestCommandArgvPrefix(t *testing.T) {
	p := parse(t, "allow_paths: [/]\nallow_commands:\n  - [nginx, -t]\n  - [nginx, -s, reload]\n")
	for _, ok := range []target.Command{{"nginx", "-t"}, {"nginx", "-t", "-c", "/etc/nginx/nginx.conf"}, {"nginx", "-s", "reload"}, nil} {
		if err := p.CheckCommand("target_config.reload_command", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []target.Command{{"nginx"}, {"nginx", "-s", "stop"}, {"nginx-t"}, {"sh", "-c", "nginx -t"}, {"/usr/sbin/nginx", "-t"}, {"nginx", "-tt"}} {
		err := p.CheckCommand("target_config.reload_command", bad)
		if err == nil {
			t.Errorf("%q allowed", bad)
			continue
		}
		if rule := refusedRule(t, err); rule != "allow_commands" {
			t.Errorf("%q: rule %s", bad, rule)
		}
	}
}

func TestWildcard(t *testing.T) {
	p := parse(t, "allow_paths: [/srv/]\nallow_commands: [[\"*\"]]\nallow_ssh_hosts: [\"*\"]\n")
	if err := p.CheckCommand("target_config.reload_command", target.Command{"anything", "at", "all"}); err != nil {
		t.Fatal(err)
	}
	if w := p.Wildcards(); len(w) != 2 || w[0] != "allow_commands" || w[1] != "allow_ssh_hosts" {
		t.Fatalf("wildcards %v", w)
	}
	if _, err := policy.Parse([]byte("allow_commands: [[nginx, \"*\"]]\n")); err == nil {
		t.Fatal("\"*\" inside an argv prefix accepted")
	}
}

func TestParseStrict(t *testing.T) {
	for _, bad := range []string{
		"allow_path: [/etc]\n",                        // typo: unknown field
		"allow_paths: [etc/nginx]\n",                  // relative
		"allow_paths: [/etc/../root]\n",               // ..
		"allow_commands: [[]]\n",                      // empty prefix
		"allow_paths: [/a]\n---\nallow_paths: [/b]\n", // two documents
	} {
		if _, err := policy.Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestMissingFileRefusesEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "worker.yaml")
	p, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	err = p.CheckTarget(nginxTarget("/etc/nginx/certs"))
	if rule := refusedRule(t, err); rule != "file" {
		t.Fatalf("rule %s", rule)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), policy.EnvPath) {
		t.Fatalf("message does not say where the file goes: %v", err)
	}
	if err := os.WriteFile(path, []byte("allow_paths: [/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Load(path); err == nil {
		t.Fatal("a malformed policy file loaded")
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv(policy.EnvPath, "")
	if got := policy.PathFromEnv(); got != "/etc/certctl/worker.yaml" {
		t.Fatal(got)
	}
}

func nginxTarget(dir string) target.Target {
	return target.Target{TargetID: "web", TargetType: "nginx", Host: "h", Config: target.Config{
		CertPath: dir + "/cert.pem", KeyPath: dir + "/key.pem", ChainPath: dir + "/chain.pem"}}
}

func TestTargetDefaultsChecked(t *testing.T) {
	// nginx's default commands are nginx -t and nginx -s reload.
	p := parse(t, "allow_paths: [/etc/nginx/certs]\nallow_commands: [[nginx, -t]]\n")
	err := p.CheckTarget(nginxTarget("/etc/nginx/certs"))
	if rule := refusedRule(t, err); rule != "allow_commands" || !strings.Contains(err.Error(), "reload") {
		t.Fatalf("default reload not checked: %v", err)
	}
	tg := nginxTarget("/etc/nginx/certs")
	tg.TargetType, tg.Config.CertPath, tg.Config.KeyPath, tg.Config.ChainPath = "haproxy", "", "", ""
	tg.Config.Own = &haproxy.Config{PEMPath: "/root/.ssh/authorized_keys"}
	p = parse(t, "allow_paths: [/etc/nginx/certs]\nallow_commands: [[nginx]]\n")
	if rule := refusedRule(t, p.CheckTarget(tg)); rule != "allow_paths" {
		t.Fatalf("pem_path not checked: %s", rule)
	}
	if err := p.CheckTarget(nginxTarget("/etc/nginx/certs")); err != nil {
		t.Fatal(err)
	}
}

// A keystore's password files are read, not written: allow_paths bounds
// them too, so a target cannot have the worker read, say, a private key
// elsewhere on the host as the store's "password".
func TestKeystorePasswordFilesChecked(t *testing.T) {
	p := parse(t, "allow_paths: [/etc/tomcat]\nallow_commands: [[keytool, -list]]\n")
	ks := func(storePW, keyPW string) target.Target {
		return target.Target{TargetID: "java", TargetType: javakeystore.Name, Host: "h", Config: target.Config{Own: &javakeystore.Config{
			KeystorePath: "/etc/tomcat/server.p12", KeystoreType: javakeystore.TypePKCS12, Alias: "tomcat",
			KeystorePasswordFile: storePW, KeyPasswordFile: keyPW}}}
	}
	if err := p.CheckTarget(ks("/etc/tomcat/store.pw", "/etc/tomcat/key.pw")); err != nil {
		t.Fatal(err)
	}
	for field, tg := range map[string]target.Target{
		"target_config.keystore_password_file": ks("/root/.ssh/id_ed25519", ""),
		"target_config.key_password_file":      ks("/etc/tomcat/store.pw", "/etc/shadow"),
	} {
		err := p.CheckTarget(tg)
		if rule := refusedRule(t, err); rule != "allow_paths" || !strings.Contains(err.Error(), field) {
			t.Errorf("%s outside allow_paths: %v", field, err)
		}
	}
}

// The interceptor, on a real SDK activity environment: what a host worker
// runs.
func run(t *testing.T, i interceptor.WorkerInterceptor, act any, arg any) error {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{i}})
	env.RegisterActivity(act)
	_, err := env.ExecuteActivity(act, arg)
	return err
}

var ran bool

func Plan(_ context.Context, in activities.PlanInput) (string, error) { ran = true; return "ran", nil }
func Issue(_ context.Context, in map[string]any) (string, error)      { ran = true; return "ran", nil }
func Inspect(_ context.Context, in target.Target) (string, error)     { ran = true; return "ran", nil }

func TestInterceptor(t *testing.T) {
	p := parse(t, "allow_paths: [/etc/nginx/certs]\nallow_commands: [[nginx]]\n")
	host, certctl := policy.Interceptor(p), policy.TargetsInterceptor(p)
	inside := activities.PlanInput{Request: activities.Request{Target: nginxTarget("/etc/nginx/certs")}}
	outside := activities.PlanInput{Request: activities.Request{Target: nginxTarget("/etc/cron.d")}}
	untargeted := map[string]any{"ca_key": "/etc/ssl/private/ca.key"}
	for _, c := range []struct {
		name string
		i    interceptor.WorkerInterceptor
		act  any
		arg  any
		ok   bool
	}{
		{"host allowed", host, Plan, inside, true},
		{"host outside", host, Plan, outside, false},
		{"host no target", host, Issue, untargeted, false},
		{"host target itself outside", host, Inspect, nginxTarget("/root"), false},
		{"certctl allowed", certctl, Plan, inside, true},
		{"certctl outside", certctl, Plan, outside, false},
		{"certctl no target", certctl, Issue, untargeted, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ran = false
			err := run(t, c.i, c.act, c.arg)
			if c.ok {
				if err != nil || !ran {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *temporal.ApplicationError
			if !errors.As(err, &ae) || ae.Type() != contract.PolicyRefused || !ae.NonRetryable() {
				t.Fatalf("want a non-retryable PolicyRefused, got %v", err)
			}
			if ran {
				t.Fatal("the activity ran")
			}
		})
	}
}

// An agentless SSH target: the certctl worker's policy must list its host
// (allow_ssh_hosts), and its remote paths and commands pass allow_paths and
// allow_commands like a host worker's; a policy without allow_ssh_hosts
// reaches no host.
func TestPolicySSHHosts(t *testing.T) {
	tg := func(addr, path string) target.Target {
		return target.Target{TargetID: "w", TargetType: "nginx", Config: target.Config{
			CertPath: path + "/cert.pem", KeyPath: path + "/key.pem",
			ValidateCommand: target.Command{"nginx", "-t"}, ReloadCommand: target.Command{"nginx", "-s", "reload"},
			SSH: &target.SSH{Address: addr, User: "root", KnownHostsPath: "/etc/certctl/known_hosts"}}}
	}
	p := parse(t, "allow_paths: [/etc/nginx/certs]\nallow_commands: [[nginx]]\nallow_ssh_hosts: [web-1.example.com:22]\n")
	if err := p.CheckTarget(tg("WEB-1.example.com:22", "/etc/nginx/certs")); err != nil {
		t.Errorf("a listed host: %v", err)
	}
	if r := refusedRule(t, p.CheckTarget(tg("web-2.example.com:22", "/etc/nginx/certs"))); r != "allow_ssh_hosts" {
		t.Errorf("an unlisted host refused by %s", r)
	}
	if r := refusedRule(t, p.CheckTarget(tg("web-1.example.com:2222", "/etc/nginx/certs"))); r != "allow_ssh_hosts" {
		t.Errorf("another port refused by %s", r)
	}
	if r := refusedRule(t, p.CheckTarget(tg("web-1.example.com:22", "/etc/ssl/private"))); r != "allow_paths" {
		t.Errorf("a remote path outside allow_paths refused by %s", r)
	}
	none := parse(t, "allow_paths: [/]\nallow_commands: [[\"*\"]]\n")
	err := none.CheckTarget(tg("web-1.example.com:22", "/etc/nginx/certs"))
	if r := refusedRule(t, err); r != "allow_ssh_hosts" || !strings.Contains(err.Error(), "no allow_ssh_hosts") {
		t.Errorf("a policy without allow_ssh_hosts: %v", err)
	}
	wild := parse(t, "allow_paths: [/]\nallow_commands: [[\"*\"]]\nallow_ssh_hosts: [\"*\"]\n")
	if err := wild.CheckTarget(tg("anything:22", "/etc/nginx/certs")); err != nil {
		t.Errorf("allow_ssh_hosts [*]: %v", err)
	}
}

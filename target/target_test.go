package target_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/contract"
	// Every connector registers its own fields of target_config.
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/target"
)

// goodNginx is the target file of DESIGN.md's operator interface, with every
// field set.
const goodNginx = `target_id: web-1
target_type: nginx          # a connector name
host: web-1.example.com
target_config:
  cert_path: /etc/nginx/certs/cert.pem
  key_path: /etc/nginx/certs/key.pem
  chain_path: /etc/nginx/certs/chain.pem
  validate_command: "nginx -t"
  reload_command: [nginx, -s, reload]
  cert_file_mode: 0644
  key_file_mode: 0640
  chain_file_mode: "0644"
  cert_owner: root
  key_owner: root:nginx
  chain_owner: root
  post_deploy_verify: {enabled: true, endpoint: "web-1.example.com:443", timeout: 10s, server_name: web-1.example.com}
  post_deploy_verify_attempts: 5
  post_deploy_verify_backoff: 500ms
  post_deploy_verify_max_backoff: 1m30s
  backup_retention: 2
`

// minimal is the smallest target Parse accepts.
const minimal = `target_id: t
target_type: nginx
target_config:
  post_deploy_verify: {enabled: false}
`

func modePtr(m target.Mode) *target.Mode { return &m }
func intPtr(i int) *int                  { return &i }
func boolPtr(b bool) *bool               { return &b }

func parse(t *testing.T, src string) *target.Target {
	t.Helper()
	tg, err := target.Parse(strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	return tg
}

// wantFieldError fails unless err is a *contract.FieldError for field.
func wantFieldError(t *testing.T, err error, field string) *contract.FieldError {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a FieldError for %q", field)
	}
	var fe *contract.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %q (%T) is not a *contract.FieldError", err, err)
	}
	if fe.Field != field {
		t.Fatalf("FieldError.Field = %q, want %q (error: %v)", fe.Field, field, err)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		t.Errorf("Error() = %q does not start with the field", err)
	}
	return fe
}

func TestParseGoodNginx(t *testing.T) {
	got := parse(t, goodNginx)
	want := &target.Target{
		TargetID:   "web-1",
		TargetType: "nginx",
		Host:       "web-1.example.com",
		Config: target.Config{
			CertPath:        "/etc/nginx/certs/cert.pem",
			KeyPath:         "/etc/nginx/certs/key.pem",
			ChainPath:       "/etc/nginx/certs/chain.pem",
			ValidateCommand: target.Command{"nginx", "-t"},
			ReloadCommand:   target.Command{"nginx", "-s", "reload"},
			CertFileMode:    modePtr(0o644),
			KeyFileMode:     modePtr(0o640),
			ChainFileMode:   modePtr(0o644),
			CertOwner:       "root",
			KeyOwner:        "root:nginx",
			ChainOwner:      "root",
			PostDeployVerify: target.Verify{
				Enabled:    boolPtr(true),
				Endpoint:   "web-1.example.com:443",
				Timeout:    target.Duration(10 * time.Second),
				ServerName: "web-1.example.com",
			},
			PostDeployVerifyAttempts:   5,
			PostDeployVerifyBackoff:    target.Duration(500 * time.Millisecond),
			PostDeployVerifyMaxBackoff: target.Duration(90 * time.Second),
			BackupRetention:            intPtr(2),
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got  %#v\n want %#v", got, want)
	}
	// The octal literal is octal, not decimal 640.
	if *got.Config.KeyFileMode != 0o640 || got.Config.KeyFileMode.Perm() != 0o640 {
		t.Errorf("key_file_mode = %d, want 0o640 (%d)", *got.Config.KeyFileMode, 0o640)
	}
	if s := got.Config.KeyFileMode.String(); s != "0640" {
		t.Errorf("Mode.String() = %q, want 0640", s)
	}
	if !got.Config.VerifyEnabled() {
		t.Error("VerifyEnabled() = false, want true")
	}
	attempts, backoff, maxBackoff, timeout := got.Config.VerifyPolicy()
	if attempts != 5 || backoff != 500*time.Millisecond || maxBackoff != 90*time.Second || timeout != 10*time.Second {
		t.Errorf("VerifyPolicy() = %d, %v, %v, %v", attempts, backoff, maxBackoff, timeout)
	}
	if r := got.Config.Retention(); r != 2 {
		t.Errorf("Retention() = %d, want 2", r)
	}
}

func TestParseDesignExample(t *testing.T) {
	// The example target of DESIGN.md, verbatim.
	src := `target_id: web-1
target_type: nginx          # a connector name
host: web-1.example.com     # the worker's --host; absent for agentless kinds (ssh, k8s)
target_config:
  cert_path: /etc/nginx/certs/cert.pem
  key_path: /etc/nginx/certs/key.pem
  chain_path: /etc/nginx/certs/chain.pem
  validate_command: "nginx -t"          # split into argv; shell metacharacters refused
  reload_command: "nginx -s reload"
  key_file_mode: 0640
  post_deploy_verify: {enabled: true, endpoint: "web-1.example.com:443", timeout: 10s}
  post_deploy_verify_attempts: 3
  backup_retention: 3
`
	got := parse(t, src)
	if *got.Config.KeyFileMode != 0o640 {
		t.Errorf("key_file_mode = %#o, want 0640", uint32(*got.Config.KeyFileMode))
	}
	if !reflect.DeepEqual(got.Config.ReloadCommand, target.Command{"nginx", "-s", "reload"}) {
		t.Errorf("reload_command = %#v", got.Config.ReloadCommand)
	}
	if got.Config.PostDeployVerify.Timeout.D() != 10*time.Second {
		t.Errorf("timeout = %v", got.Config.PostDeployVerify.Timeout)
	}
}

func TestParseModes(t *testing.T) {
	for _, tc := range []struct {
		text string
		want target.Mode
	}{
		{"0640", 0o640},
		{"0600", 0o600},
		{"0400", 0o400},
		{"0", 0},
		{"0000", 0},
		{"640", 0o640}, // always octal, never decimal
		{`"0640"`, 0o640},
		{`'0640'`, 0o640},
		{"0o640", 0o640},
		{"0o600", 0o600},
		{"0750", 0o750},
	} {
		t.Run(tc.text, func(t *testing.T) {
			got := parse(t, minimal+"  key_file_mode: "+tc.text+"\n")
			if got.Config.KeyFileMode == nil || *got.Config.KeyFileMode != tc.want {
				t.Fatalf("key_file_mode %s = %v, want %#o", tc.text, got.Config.KeyFileMode, uint32(tc.want))
			}
		})
	}
	// Absent means nil (keep the existing file's mode), not 0.
	if got := parse(t, minimal); got.Config.KeyFileMode != nil || got.Config.CertFileMode != nil || got.Config.ChainFileMode != nil {
		t.Errorf("absent modes parsed as %v %v %v", got.Config.CertFileMode, got.Config.KeyFileMode, got.Config.ChainFileMode)
	}
}

func TestParseCommandForms(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       target.Command
	}{
		{"string", `"nginx -s reload"`, target.Command{"nginx", "-s", "reload"}},
		{"plain string", `nginx -t`, target.Command{"nginx", "-t"}},
		{"string extra spaces", `"  nginx    -t  "`, target.Command{"nginx", "-t"}},
		{"string with tab", `"nginx\t-t"`, target.Command{"nginx", "-t"}},
		{"flow list", `[nginx, -s, reload]`, target.Command{"nginx", "-s", "reload"}},
		{"block list", "\n    - /usr/sbin/nginx\n    - -s\n    - reload", target.Command{"/usr/sbin/nginx", "-s", "reload"}},
		// A list is an argv: its arguments are never seen by a shell, so
		// characters a shell would interpret are plain text there.
		{"list with metacharacters", `[systemctl, reload, "nginx;x", "$(y)"]`, target.Command{"systemctl", "reload", "nginx;x", "$(y)"}},
		{"list with empty argument", `[prog, ""]`, target.Command{"prog", ""}},
		{"empty string", `""`, nil},
		{"null", `null`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parse(t, minimal+"  reload_command: "+tc.text+"\n")
			if !reflect.DeepEqual(got.Config.ReloadCommand, tc.want) {
				t.Fatalf("reload_command %s = %#v, want %#v", tc.text, got.Config.ReloadCommand, tc.want)
			}
		})
	}
}

func TestParseDurations(t *testing.T) {
	for _, tc := range []struct {
		text string
		want time.Duration
	}{
		{"10s", 10 * time.Second},
		{`"10s"`, 10 * time.Second},
		{"500ms", 500 * time.Millisecond},
		{"1m30s", 90 * time.Second},
		{"2h", 2 * time.Hour},
	} {
		t.Run(tc.text, func(t *testing.T) {
			got := parse(t, minimal+"  post_deploy_verify_backoff: "+tc.text+"\n")
			if d := got.Config.PostDeployVerifyBackoff.D(); d != tc.want {
				t.Fatalf("post_deploy_verify_backoff %s = %v, want %v", tc.text, d, tc.want)
			}
		})
	}
}

func TestParseRefusals(t *testing.T) {
	const head = "target_id: t\ntarget_type: nginx\n"
	const noVerify = "  post_deploy_verify: {enabled: false}\n"
	cfg := func(lines string) string { return head + "target_config:\n" + noVerify + lines }

	tests := []struct {
		name, src, field string
		msg              string // a substring of the message, when not ""
	}{
		// Strict YAML: a typo never falls back to a default.
		{"unknown field cert_pth", cfg("  cert_pth: /etc/nginx/certs/cert.pem\n"), "target_config.cert_pth", "cert_pth"},
		{"unknown top-level field", head + "target_cofig:\n  cert_path: /x\n", "target_cofig", "target_cofig"},
		{"unknown field holding its namesake", head + "target_config: {post_deploy_verify: {enabled: false}, extra: {extra: 1}}\n", "target_config.extra", "extra"},
		{"unknown field in verify", head + "target_config:\n  post_deploy_verify: {enabled: false, endpiont: a:1}\n", "target_config.post_deploy_verify.endpiont", "endpiont"},

		// Paths.
		{"relative cert path", cfg("  cert_path: etc/nginx/cert.pem\n"), "target_config.cert_path", "absolute"},
		{"dot-relative key path", cfg("  key_path: ./key.pem\n"), "target_config.key_path", "absolute"},
		{"dotdot in chain path", cfg("  chain_path: /etc/nginx/../../root/chain.pem\n"), "target_config.chain_path", ".."},
		{"trailing dotdot", cfg("  cert_path: /etc/nginx/..\n"), "target_config.cert_path", ".."},
		{"NUL in key path", cfg("  key_path: \"/etc/nginx/key.pem\\0.txt\"\n"), "target_config.key_path", "NUL"},
		{"unclean path", cfg("  cert_path: /etc//nginx/cert.pem\n"), "target_config.cert_path", "clean"},

		// Commands given as strings never go through a shell.
		{"semicolon", cfg("  reload_command: \"nginx -s reload; rm -rf /\"\n"), "target_config.reload_command", "metacharacter"},
		{"pipe", cfg("  reload_command: \"nginx -s reload | tee log\"\n"), "target_config.reload_command", "metacharacter"},
		{"command substitution", cfg("  validate_command: \"nginx -t -c $(cat /tmp/x)\"\n"), "target_config.validate_command", "metacharacter"},
		{"backtick", cfg("  validate_command: \"nginx -t `id`\"\n"), "target_config.validate_command", "metacharacter"},
		{"and-and", cfg("  reload_command: \"nginx -t && nginx -s reload\"\n"), "target_config.reload_command", "metacharacter"},
		{"redirect", cfg("  reload_command: \"nginx -s reload > /tmp/out\"\n"), "target_config.reload_command", "metacharacter"},
		{"empty program in list", cfg("  reload_command: [\"\", reload]\n"), "target_config.reload_command", "empty"},
		{"NUL in list argument", cfg("  reload_command: [nginx, \"a\\0b\"]\n"), "target_config.reload_command", "NUL"},
		{"command as mapping", cfg("  reload_command: {program: nginx}\n"), "target_config.reload_command", "list of strings"},

		// Modes.
		{"world-readable key", cfg("  key_file_mode: 0644\n"), "target_config.key_file_mode", "private key"},
		{"world-writable key", cfg("  key_file_mode: 0602\n"), "target_config.key_file_mode", "private key"},
		{"world-executable key", cfg("  key_file_mode: 0641\n"), "target_config.key_file_mode", "private key"},
		{"key mode over 0777", cfg("  key_file_mode: 01640\n"), "target_config.key_file_mode", "not a permission mode"},
		{"cert mode setuid", cfg("  cert_file_mode: 04755\n"), "target_config.cert_file_mode", "not a permission mode"},
		{"chain mode over 0777", cfg("  chain_file_mode: 07777\n"), "target_config.chain_file_mode", "not a permission mode"},
		{"mode not octal", cfg("  key_file_mode: 0680\n"), "target_config.key_file_mode", "octal"},
		{"mode hex", cfg("  cert_file_mode: 0x1ff\n"), "target_config.cert_file_mode", "octal"},
		{"mode words", cfg("  cert_file_mode: rw-r--r--\n"), "target_config.cert_file_mode", "octal"},
		{"mode negative", cfg("  cert_file_mode: -1\n"), "target_config.cert_file_mode", "octal"},

		// Durations.
		{"duration without unit", cfg("  post_deploy_verify_backoff: 10\n"), "target_config.post_deploy_verify_backoff", "duration"},
		{"duration words", cfg("  post_deploy_verify_max_backoff: ten seconds\n"), "target_config.post_deploy_verify_max_backoff", "duration"},
		{"verify timeout", head + "target_config:\n  post_deploy_verify: {endpoint: \"a:443\", timeout: soon}\n", "target_config.post_deploy_verify.timeout", "duration"},

		// Other scalar types.
		{"attempts not a number", cfg("  post_deploy_verify_attempts: many\n"), "target_config.post_deploy_verify_attempts", "many"},
		{"negative attempts", cfg("  post_deploy_verify_attempts: -1\n"), "target_config.post_deploy_verify_attempts", "negative"},
		{"negative retention", cfg("  backup_retention: -1\n"), "target_config.backup_retention", "negative"},
		{"enabled not a bool", head + "target_config:\n  post_deploy_verify: {enabled: perhaps}\n", "target_config.post_deploy_verify.enabled", "perhaps"},

		// Required identity.
		{"missing target_id", "target_type: nginx\ntarget_config:\n" + noVerify, "target_id", "required"},
		{"empty target_id", "target_id: \"\"\ntarget_type: nginx\ntarget_config:\n" + noVerify, "target_id", "required"},
		{"target_id with slash", "target_id: a/b\ntarget_type: nginx\ntarget_config:\n" + noVerify, "target_id", ""},
		{"target_id with spaces", "target_id: \" a \"\ntarget_type: nginx\ntarget_config:\n" + noVerify, "target_id", ""},
		{"missing target_type", "target_id: t\ntarget_config:\n" + noVerify, "target_type", "required"},
		{"host with slash", head + "host: a/b\ntarget_config:\n" + noVerify, "host", ""},
		{"host with space", head + "host: a b\ntarget_config:\n" + noVerify, "host", ""},
		{"owner with two colons", cfg("  key_owner: a:b:c\n"), "target_config.key_owner", ""},
		{"owner with space", cfg("  cert_owner: \"root nginx\"\n"), "target_config.cert_owner", ""},

		// Verify must be turned off out loud.
		{"verify without endpoint", head + "target_config:\n  cert_path: /etc/c.pem\n", "target_config.post_deploy_verify.endpoint", "enabled: false"},
		{"verify enabled without endpoint", head + "target_config:\n  post_deploy_verify: {enabled: true}\n", "target_config.post_deploy_verify.endpoint", "required"},
		{"verify timeout only", head + "target_config:\n  post_deploy_verify: {timeout: 5s}\n", "target_config.post_deploy_verify.endpoint", "required"},

		// The file as a whole.
		{"empty file", "", "target", "empty"},
		{"only whitespace", "  \n\n", "target", "empty"},
		{"only a comment", "# nothing here\n", "target", "empty"},
		{"not a mapping", "just a string\n", "target", ""},
		{"a list", "- target_id: t\n", "target", ""},
		{"syntax error", "target_id: [unclosed\n", "target", ""},
		// An anchored value decoded through an alias: its position does not
		// tell which field failed, so the file is named, never a wrong field.
		{"anchored bad command", "target_id: &a \"a;b\"\ntarget_type: nginx\ntarget_config:\n" + noVerify + "  reload_command: *a\n", "target", "metacharacter"},
		{"yaml.v3 merge panic", "{{0},<<}", "target", "decoder"},
		{"two documents", minimal + "---\n" + minimal, "target", "document"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := target.Parse(strings.NewReader(tc.src))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\nas %#v", tc.src, tg)
			}
			if tg != nil {
				t.Errorf("Parse returned a target with its error")
			}
			fe := wantFieldError(t, err, tc.field)
			if tc.msg != "" && !strings.Contains(fe.Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", fe.Msg, tc.msg)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"verify disabled without endpoint", minimal},
		{"verify disabled block style", "target_id: t\ntarget_type: nginx\ntarget_config:\n  post_deploy_verify:\n    enabled: false\n"},
		{"agentless without host", "target_id: t\ntarget_type: ssh\ntarget_config:\n  post_deploy_verify: {endpoint: \"h:443\"}\n"},
		{"verify default enabled with endpoint", "target_id: t\ntarget_type: nginx\ntarget_config:\n  post_deploy_verify: {endpoint: \"h:443\"}\n"},
		{"JSON is YAML", `{"target_id": "t", "target_type": "nginx", "target_config": {"key_file_mode": "0600", "reload_command": ["nginx", "-s", "reload"], "post_deploy_verify": {"enabled": false}}}`},
		{"cert mode world readable", minimal + "  cert_file_mode: 0644\n  chain_file_mode: 0444\n"},
		{"owner user:group", minimal + "  key_owner: root:ssl-cert\n"},
		{"root path", minimal + "  cert_path: /cert.pem\n"},
		{"dots in names", minimal + "  cert_path: /etc/nginx/..cert/.pem..\n"},
		{"zero retention", minimal + "  backup_retention: 0\n"},
		{"document markers", "---\n" + minimal + "...\n"},
		{"empty trailing document", minimal + "---\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parse(t, tc.src)
		})
	}
	tg := parse(t, minimal)
	if tg.Config.VerifyEnabled() {
		t.Error("VerifyEnabled() = true with enabled: false")
	}
	if tg.Host != "" {
		t.Errorf("Host = %q, want empty", tg.Host)
	}
}

func TestParseFileSize(t *testing.T) {
	pad := func(n int) string {
		// Comment lines: they change the size and nothing else.
		var b strings.Builder
		b.WriteString(minimal)
		for b.Len() < n {
			line := "# " + strings.Repeat("x", 70) + "\n"
			if rest := n - b.Len(); rest < len(line) {
				line = "#" + strings.Repeat("x", rest-2) + "\n"
				if rest == 1 {
					line = "\n"
				}
			}
			b.WriteString(line)
		}
		return b.String()
	}
	atLimit := pad(target.MaxFileSize)
	if len(atLimit) != target.MaxFileSize {
		t.Fatalf("pad produced %d bytes, want %d", len(atLimit), target.MaxFileSize)
	}
	parse(t, atLimit)

	for _, n := range []int{target.MaxFileSize + 1, target.MaxFileSize + 100, 4 * target.MaxFileSize} {
		src := pad(n)
		_, err := target.Parse(strings.NewReader(src))
		fe := wantFieldError(t, err, "target")
		if !strings.Contains(fe.Msg, "larger") {
			t.Errorf("%d bytes: message %q", n, fe.Msg)
		}
	}
}

// failingReader fails every read.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := target.Parse(failingReader{boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Parse error = %v, want the reader's", err)
	}
}

// roundTripSources are parsed, marshalled and read back.
var roundTripSources = map[string]string{
	"good nginx": goodNginx,
	"minimal":    minimal,
	"odd strings": `target_id: "yes"
target_type: "0640"
host: "null"
target_config:
  cert_path: "/etc/ssl/#cert: one.pem"
  key_owner: "1000:1000"
  reload_command: ["true", "~", "{}", "- x", "a: b", "'q'"]
  validate_command: [nginx]
  key_file_mode: 0
  cert_file_mode: 0755
  post_deploy_verify: {enabled: false, endpoint: "[::1]:443", timeout: 1h2m3.5s}
  post_deploy_verify_backoff: 1ns
  backup_retention: 0
`,
	"empty command list": minimal + "  reload_command: []\n",
	"verify default":     "target_id: t\ntarget_type: nginx\ntarget_config:\n  post_deploy_verify: {endpoint: \"h:443\"}\n",
}

func TestJSONRoundTrip(t *testing.T) {
	for name, src := range roundTripSources {
		t.Run(name, func(t *testing.T) {
			tg := parse(t, src)
			b, err := json.Marshal(tg)
			if err != nil {
				t.Fatal(err)
			}
			var back target.Target
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("Unmarshal %s: %v", b, err)
			}
			if !reflect.DeepEqual(&back, tg) {
				t.Fatalf("JSON round trip:\n json %s\n got  %#v\n want %#v", b, &back, tg)
			}
			if err := back.Validate(); err != nil {
				t.Errorf("round-tripped target does not validate: %v", err)
			}
		})
	}

	// The wire form: modes as octal text, commands as lists, durations as text.
	b, err := json.Marshal(parse(t, goodNginx))
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, want := range []string{
		`"key_file_mode":"0640"`,
		`"cert_file_mode":"0644"`,
		`"validate_command":["nginx","-t"]`,
		`"reload_command":["nginx","-s","reload"]`,
		`"timeout":"10s"`,
		`"post_deploy_verify_backoff":"500ms"`,
		`"post_deploy_verify_max_backoff":"1m30s"`,
		`"target_config":{`,
		`"backup_retention":2`,
		`"enabled":true`,
	} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON %s\n lacks %s", js, want)
		}
	}
	// Absent optional fields stay absent.
	b, err = json.Marshal(parse(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"host", "key_file_mode", "reload_command", "backup_retention", "timeout", "endpoint"} {
		if strings.Contains(string(b), `"`+absent+`"`) {
			t.Errorf("JSON %s holds absent field %s", b, absent)
		}
	}
	if !strings.Contains(string(b), `"enabled":false`) {
		t.Errorf("JSON %s lost enabled: false", b)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	for name, src := range roundTripSources {
		t.Run(name, func(t *testing.T) {
			tg := parse(t, src)
			b, err := yaml.Marshal(tg)
			if err != nil {
				t.Fatal(err)
			}
			back, err := target.Parse(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Parse of marshalled YAML: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(back, tg) {
				t.Fatalf("YAML round trip:\n yaml:\n%s\n got  %#v\n want %#v", b, back, tg)
			}
		})
	}
}

func TestModeJSON(t *testing.T) {
	for _, tc := range []struct {
		json    string
		want    target.Mode
		wantErr bool
	}{
		{`"0640"`, 0o640, false},
		{`"640"`, 0o640, false},
		{`"0o600"`, 0o600, false},
		{`416`, 0o640, false}, // a JSON number is its value
		{`"0680"`, 0, true},
		{`"rw"`, 0, true},
		{`-1`, 0, true},
		{`true`, 0, true},
		{`[1]`, 0, true},
	} {
		var m target.Mode
		err := json.Unmarshal([]byte(tc.json), &m)
		if (err != nil) != tc.wantErr {
			t.Errorf("Unmarshal %s: err = %v, wantErr %v", tc.json, err, tc.wantErr)
			continue
		}
		if err == nil && m != tc.want {
			t.Errorf("Unmarshal %s = %#o, want %#o", tc.json, uint32(m), uint32(tc.want))
		}
	}
	for _, tc := range []struct {
		m    target.Mode
		want string
	}{{0o640, `"0640"`}, {0, `"0000"`}, {0o7, `"0007"`}, {0o777, `"0777"`}} {
		b, err := json.Marshal(tc.m)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%#o) = %s, %v; want %s", uint32(tc.m), b, err, tc.want)
		}
	}
}

func TestCommandJSON(t *testing.T) {
	for _, tc := range []struct {
		json    string
		want    target.Command
		wantErr bool
	}{
		{`"nginx -s reload"`, target.Command{"nginx", "-s", "reload"}, false},
		{`["nginx", "-s", "reload"]`, target.Command{"nginx", "-s", "reload"}, false},
		{`["sh", "-c", "a; b"]`, target.Command{"sh", "-c", "a; b"}, false},
		{`"nginx; id"`, nil, true},
		{`"a && b"`, nil, true},
		{`["", "x"]`, nil, true},
		{`["a\u0000"]`, nil, true},
		{`42`, nil, true},
		{`{"a": "b"}`, nil, true},
	} {
		var c target.Command
		err := json.Unmarshal([]byte(tc.json), &c)
		if (err != nil) != tc.wantErr {
			t.Errorf("Unmarshal %s: err = %v, wantErr %v", tc.json, err, tc.wantErr)
			continue
		}
		if err == nil && !reflect.DeepEqual(c, tc.want) {
			t.Errorf("Unmarshal %s = %#v, want %#v", tc.json, c, tc.want)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		json    string
		want    time.Duration
		wantErr bool
	}{
		{`"10s"`, 10 * time.Second, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`1000000000`, time.Second, false}, // nanoseconds
		{`"10"`, 0, true},
		{`"soon"`, 0, true},
		{`true`, 0, true},
	} {
		var d target.Duration
		err := json.Unmarshal([]byte(tc.json), &d)
		if (err != nil) != tc.wantErr {
			t.Errorf("Unmarshal %s: err = %v, wantErr %v", tc.json, err, tc.wantErr)
			continue
		}
		if err == nil && d.D() != tc.want {
			t.Errorf("Unmarshal %s = %v, want %v", tc.json, d, tc.want)
		}
	}
	b, err := json.Marshal(target.Duration(10 * time.Second))
	if err != nil || string(b) != `"10s"` {
		t.Errorf("Marshal(10s) = %s, %v", b, err)
	}
}

func TestVerifyPolicy(t *testing.T) {
	type policy struct {
		attempts                     int
		backoff, maxBackoff, timeout time.Duration
	}
	defaults := policy{target.DefaultVerifyAttempts, target.DefaultVerifyBackoff, target.DefaultVerifyMaxBackoff, target.DefaultVerifyTimeout}
	if defaults != (policy{3, time.Second, 16 * time.Second, 10 * time.Second}) {
		t.Errorf("defaults changed: %+v", defaults)
	}
	for _, tc := range []struct {
		name string
		cfg  target.Config
		want policy
	}{
		{"zero config", target.Config{}, defaults},
		{"negative values fall back", target.Config{
			PostDeployVerifyAttempts:   -2,
			PostDeployVerifyBackoff:    target.Duration(-time.Second),
			PostDeployVerifyMaxBackoff: target.Duration(-time.Second),
			PostDeployVerify:           target.Verify{Timeout: target.Duration(-time.Second)},
		}, defaults},
		{"all set", target.Config{
			PostDeployVerifyAttempts:   7,
			PostDeployVerifyBackoff:    target.Duration(2 * time.Second),
			PostDeployVerifyMaxBackoff: target.Duration(30 * time.Second),
			PostDeployVerify:           target.Verify{Timeout: target.Duration(3 * time.Second)},
		}, policy{7, 2 * time.Second, 30 * time.Second, 3 * time.Second}},
		{"backoff above default cap raises the cap", target.Config{
			PostDeployVerifyBackoff: target.Duration(time.Minute),
		}, policy{3, time.Minute, time.Minute, 10 * time.Second}},
		{"cap below backoff is raised", target.Config{
			PostDeployVerifyBackoff:    target.Duration(5 * time.Second),
			PostDeployVerifyMaxBackoff: target.Duration(2 * time.Second),
		}, policy{3, 5 * time.Second, 5 * time.Second, 10 * time.Second}},
		{"only attempts", target.Config{PostDeployVerifyAttempts: 1}, policy{1, time.Second, 16 * time.Second, 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got policy
			got.attempts, got.backoff, got.maxBackoff, got.timeout = tc.cfg.VerifyPolicy()
			if got != tc.want {
				t.Fatalf("VerifyPolicy() = %+v, want %+v", got, tc.want)
			}
		})
	}
	// Parsed from a file with none of the fields: the defaults.
	var got policy
	got.attempts, got.backoff, got.maxBackoff, got.timeout = parse(t, minimal).Config.VerifyPolicy()
	if got != defaults {
		t.Errorf("VerifyPolicy() of a minimal target = %+v, want %+v", got, defaults)
	}
}

func TestRetention(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  target.Config
		want int
	}{
		{"absent", target.Config{}, target.DefaultBackupRetention},
		{"zero keeps none", target.Config{BackupRetention: intPtr(0)}, 0},
		{"explicit", target.Config{BackupRetention: intPtr(7)}, 7},
	} {
		if got := tc.cfg.Retention(); got != tc.want {
			t.Errorf("%s: Retention() = %d, want %d", tc.name, got, tc.want)
		}
	}
	if target.DefaultBackupRetention != 3 {
		t.Errorf("DefaultBackupRetention = %d, want 3", target.DefaultBackupRetention)
	}
	if got := parse(t, minimal).Config.Retention(); got != 3 {
		t.Errorf("Retention() of a minimal target = %d, want 3", got)
	}
	if got := parse(t, minimal+"  backup_retention: 0\n").Config.Retention(); got != 0 {
		t.Errorf("Retention() with backup_retention: 0 = %d, want 0", got)
	}
}

func TestVerifyEnabled(t *testing.T) {
	for _, tc := range []struct {
		enabled *bool
		want    bool
	}{{nil, true}, {boolPtr(true), true}, {boolPtr(false), false}} {
		c := target.Config{PostDeployVerify: target.Verify{Enabled: tc.enabled}}
		if got := c.VerifyEnabled(); got != tc.want {
			t.Errorf("VerifyEnabled() with %v = %v, want %v", tc.enabled, got, tc.want)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want target.Command
	}{
		{"nginx -t", target.Command{"nginx", "-t"}},
		{"nginx -s reload", target.Command{"nginx", "-s", "reload"}},
		{"/usr/sbin/nginx", target.Command{"/usr/sbin/nginx"}},
		{"  nginx   -s\treload  ", target.Command{"nginx", "-s", "reload"}},
		{"systemctl reload nginx.service", target.Command{"systemctl", "reload", "nginx.service"}},
		{"haproxy -c -f /etc/haproxy/haproxy.cfg", target.Command{"haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg"}},
		{"prog --opt=value a,b %x @y +z :w", target.Command{"prog", "--opt=value", "a,b", "%x", "@y", "+z", ":w"}},
		{"", nil},
		{"   \t ", nil},
	} {
		got, err := target.ParseCommand(tc.in)
		if err != nil {
			t.Errorf("ParseCommand(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCommand(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		if tc.want != nil && got.String() != strings.Join(tc.want, " ") {
			t.Errorf("String() = %q", got.String())
		}
	}
	for _, bad := range []string{
		"nginx -s reload; rm -rf /",
		"nginx -t | tee",
		"a $(id)",
		"a ${HOME}",
		"a $HOME",
		"a `id`",
		"a && b",
		"a || b",
		"a & ",
		"a > out",
		"a < in",
		"a 2>&1",
		`a "quoted arg"`,
		`a 'quoted arg'`,
		`a back\slash`,
		"a *.pem",
		"a ?.pem",
		"a [ab].pem",
		"a # comment",
		"cd ~",
		"a {b,c}",
		"a !b",
		"(a)",
		"a\nb",
		"a\rb",
		"a\x00b",
	} {
		c, err := target.ParseCommand(bad)
		if err == nil {
			t.Errorf("ParseCommand(%q) = %#v, want an error", bad, c)
			continue
		}
		if c != nil {
			t.Errorf("ParseCommand(%q) returned %#v with its error", bad, c)
		}
	}
}

func TestCheckPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/etc/nginx/certs/cert.pem", true},
		{"/", true},
		{"/a/..b/c..", true},
		{"/a/.../b", true},
		{"", false},
		{"cert.pem", false},
		{"./cert.pem", false},
		{"../cert.pem", false},
		{"/etc/../cert.pem", false},
		{"/etc/nginx/..", false},
		{"/etc/./cert.pem", false},
		{"/etc//cert.pem", false},
		{"/etc/nginx/", false},
		{"/etc/cert\x00.pem", false},
	} {
		err := target.CheckPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

func TestFieldErrorMessage(t *testing.T) {
	e := &contract.FieldError{Field: "target_config.cert_path", Msg: "is required"}
	if got := e.Error(); got != "target_config.cert_path: is required" {
		t.Errorf("Error() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodNginx))
	f.Add([]byte(minimal))
	f.Add([]byte(roundTripSources["odd strings"]))
	f.Add([]byte(minimal + "  reload_command: \"nginx; id\"\n"))
	f.Add([]byte(minimal + "  key_file_mode: 0644\n  cert_pth: /x\n"))
	f.Add([]byte(`{"target_id": "t", "target_type": "nginx", "target_config": {"post_deploy_verify": {"enabled": false}}}`))
	f.Add([]byte("target_id: &a t\ntarget_type: *a\ntarget_config: {post_deploy_verify: {enabled: false}, <<: {}}\n"))
	f.Add([]byte(""))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("{{0},<<}")) // once panicked inside yaml.v3
	f.Fuzz(func(t *testing.T, data []byte) {
		tg, err := target.Parse(bytes.NewReader(data))
		if err != nil {
			if tg != nil {
				t.Fatalf("Parse returned a target with error %v", err)
			}
			var fe *contract.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Parse error %q (%T) is not a FieldError naming a field", err, err)
			}
			return
		}
		if err := tg.Validate(); err != nil {
			t.Fatalf("parsed target does not validate: %v", err)
		}
		// What Parse accepts survives the trip to the workflow and back.
		b, err := json.Marshal(tg)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		var back target.Target
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", b, err)
		}
		if !reflect.DeepEqual(&back, tg) {
			t.Fatalf("JSON round trip:\n json %s\n got  %#v\n want %#v", b, &back, tg)
		}
		y, err := yaml.Marshal(tg)
		if err != nil {
			t.Fatalf("yaml.Marshal: %v", err)
		}
		again, err := target.Parse(bytes.NewReader(y))
		if err != nil {
			t.Fatalf("Parse of marshalled YAML: %v\n%s", err, y)
		}
		if !reflect.DeepEqual(again, tg) {
			t.Fatalf("YAML round trip:\n%s\n got  %#v\n want %#v", y, again, tg)
		}
	})
}

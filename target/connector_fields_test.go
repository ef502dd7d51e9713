package target_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/target"
)

// The fields some connectors read (pem_path, reload_signal and pid_file,
// post_deploy_verify.protocol), parsed and checked.

const goodHAProxy = `target_id: lb-1
target_type: haproxy
host: lb-1.example.com
target_config:
  pem_path: /etc/haproxy/certs/site.pem
  pem_file_mode: 0640
  pem_owner: root:haproxy
  validate_command: [haproxy, -c, -f, /etc/haproxy/haproxy.cfg]
  reload_signal: USR2
  pid_file: /run/haproxy.pid
  post_deploy_verify: {endpoint: "lb-1.example.com:443", protocol: tls}
`

func TestParseConnectorFields(t *testing.T) {
	tg := parse(t, goodHAProxy)
	c := tg.Config
	pem, ok := c.Own.(*haproxy.Config)
	if !ok || pem.PEMPath != "/etc/haproxy/certs/site.pem" || pem.PEMFileMode == nil || *pem.PEMFileMode != 0o640 || pem.PEMOwner != "root:haproxy" {
		t.Errorf("pem fields: %+v", c.Own)
	}
	if c.ReloadSignal != "USR2" || c.PIDFile != "/run/haproxy.pid" || c.PostDeployVerify.Protocol != "tls" {
		t.Errorf("reload/verify fields: %+v", c)
	}
	mail := parse(t, "target_id: mx\ntarget_type: postfix\ntarget_config:\n  cert_path: /etc/postfix/cert.pem\n  key_path: /etc/postfix/key.pem\n"+
		"  post_deploy_verify: {endpoint: \"mx.example.com:25\", protocol: smtp-starttls}\n")
	if mail.Config.PostDeployVerify.Protocol != target.ProtocolSMTPStartTLS {
		t.Errorf("protocol %q", mail.Config.PostDeployVerify.Protocol)
	}
}

func TestConnectorFieldRefusals(t *testing.T) {
	base := "target_id: t\ntarget_type: haproxy\ntarget_config:\n  post_deploy_verify: {enabled: false}\n"
	for _, tc := range []struct{ extra, field, says string }{
		{"  pem_path: relative.pem\n", "target_config.pem_path", "not absolute"},
		{"  pem_path: /etc/../x.pem\n", "target_config.pem_path", ".."},
		{"  pem_file_mode: 0644\n", "target_config.pem_file_mode", "private key"},
		{"  pem_owner: \"a:b:c\"\n", "target_config.pem_owner", "user:group"},
		{"  pid_file: run/haproxy.pid\n  reload_signal: USR2\n", "target_config.pid_file", "not absolute"},
		{"  reload_signal: USR2\n", "target_config.pid_file", "required"},
		{"  pid_file: /run/haproxy.pid\n", "target_config.reload_signal", "required"},
		{"  reload_signal: TERM\n  pid_file: /run/haproxy.pid\n", "target_config.reload_signal", "not one of"},
		{"  reload_signal: KILL\n  pid_file: /run/haproxy.pid\n", "target_config.reload_signal", "not one of"},
		{"  reload_signal: USR2\n  pid_file: /run/haproxy.pid\n  reload_command: \"systemctl reload haproxy\"\n", "target_config.reload_signal", "reload_command"},
		{"  pid_file: /run/haproxy.pid\n  reload_command: \"systemctl reload haproxy\"\n", "target_config.pid_file", "reload_command"},
	} {
		_, err := target.Parse(strings.NewReader(base + tc.extra))
		fe := wantFieldError(t, err, tc.field)
		if !strings.Contains(fe.Msg, tc.says) {
			t.Errorf("%q: message %q does not say %q", tc.extra, fe.Msg, tc.says)
		}
	}
	_, err := target.Parse(strings.NewReader("target_id: t\ntarget_type: postfix\ntarget_config:\n" +
		"  post_deploy_verify: {endpoint: \"mx:25\", protocol: starttls}\n"))
	fe := wantFieldError(t, err, "target_config.post_deploy_verify.protocol")
	for _, p := range target.VerifyProtocols {
		if !strings.Contains(fe.Msg, p) {
			t.Errorf("message %q does not list %s", fe.Msg, p)
		}
	}
}

func TestConnectorFieldsJSONRoundTrip(t *testing.T) {
	tg := parse(t, goodHAProxy)
	b, err := json.Marshal(tg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"pem_path":"/etc/haproxy/certs/site.pem"`, `"pem_file_mode":"0640"`, `"reload_signal":"USR2"`, `"pid_file":"/run/haproxy.pid"`, `"protocol":"tls"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	// A target without them carries none of them.
	b, _ = json.Marshal(parse(t, minimal))
	for _, absent := range []string{"pem_", "reload_signal", "pid_file", "protocol"} {
		if strings.Contains(string(b), absent) {
			t.Errorf("JSON of a minimal target holds %s: %s", absent, b)
		}
	}
}

package target_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// A mode that lets anyone but the file's owner write it is refused for
// every file certctl writes, and so is any bit beyond the permissions.
func TestModesRefused(t *testing.T) {
	for _, tc := range []struct{ field, mode, msg string }{
		{"cert_file_mode", "0666", "write"},
		{"cert_file_mode", "0664", "write"},
		{"cert_file_mode", "0646", "write"},
		{"cert_file_mode", "0777", "write"},
		{"chain_file_mode", "0662", "write"},
		{"chain_file_mode", "0620", "write"},
		{"key_file_mode", "0660", "write"},
		{"key_file_mode", "0620", "write"},
		{"key_file_mode", "0604", "private key"},
		{"pem_file_mode", "0660", "write"},
		{"pem_file_mode", "0640", ""}, // accepted: see below
		{"cert_file_mode", "04644", "setuid"},
		{"key_file_mode", "02600", "setuid"},
		{"chain_file_mode", "01644", "sticky"},
	} {
		t.Run(tc.field+"="+tc.mode, func(t *testing.T) {
			src := minimal + "  " + tc.field + ": " + tc.mode + "\n"
			if strings.HasPrefix(tc.field, "pem_") {
				src = strings.Replace(src, "target_type: nginx", "target_type: haproxy", 1)
			}
			tg, err := target.Parse(strings.NewReader(src))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %s: %v", tc.mode, tg.Config)
			}
			fe := wantFieldError(t, err, "target_config."+tc.field)
			if !strings.Contains(fe.Msg, tc.msg) || !strings.Contains(fe.Msg, strings.TrimPrefix(tc.mode, "0")) {
				t.Errorf("message %q does not say %q about %s", fe.Msg, tc.msg, tc.mode)
			}
		})
	}
	for _, ok := range []string{"cert_file_mode: 0644", "cert_file_mode: 0444", "cert_file_mode: 0755", "key_file_mode: 0640", "key_file_mode: 0600", "key_file_mode: 0400", "chain_file_mode: 0644"} {
		parse(t, minimal+"  "+ok+"\n")
	}
	for _, ok := range []string{"pem_file_mode: 0600"} {
		parse(t, strings.Replace(minimal, "target_type: nginx", "target_type: haproxy", 1)+"  "+ok+"\n")
	}
}

// A character that does not print is refused in every field that names a
// thing, with the field named: never left for Temporal's header check, a
// worker's line-based state file or an operator's terminal to meet.
func TestNonPrintingRefused(t *testing.T) {
	bad := map[string]string{
		"newline":           `\n`,
		"carriage return":   `\r`,
		"NUL":               `\0`,
		"ESC":               `\e`,
		"DEL":               `\x7f`,
		"tab":               `\t`,
		"line separator":    `\u2028`,
		"zero width space":  `\u200b`,
		"RTL override":      `\u202e`,
		"no-break space":    `\u00a0`,
		"C1 control":        `\x85`,
		"byte order mark":   `\ufeff`,
		"soft hyphen (Cf)":  `\u00ad`,
		"paragraph sep":     `\u2029`,
		"private use (Co)":  `\ue000`,
		"unassigned (Cn)":   `\U000e0080`,
		"tag character":     `\U000e0041`,
		"bell":              `\a`,
		"next line in mid":  `a\u0085b`,
		"ideographic space": `\u3000`,
	}
	const (
		head = "target_type: nginx\n"
		cfg  = "target_config:\n  cert_path: /etc/c/cert.pem\n  key_path: /etc/c/key.pem\n  post_deploy_verify: {endpoint: \"h:443\"}\n"
	)
	for name, esc := range bad {
		for _, f := range []struct{ field, src string }{
			{"target_id", "target_id: \"web" + esc + "1\"\n" + head + cfg},
			{"host", "target_id: t\nhost: \"web" + esc + "1\"\n" + head + cfg},
			{"target_config.cert_path", "target_id: t\n" + head + "target_config:\n  cert_path: \"/etc/c/ce" + esc + "rt.pem\"\n  key_path: /etc/c/key.pem\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.key_path", "target_id: t\n" + head + "target_config:\n  key_path: \"/var/tmp" + esc + "/key.pem\"\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.chain_path", "target_id: t\n" + head + "target_config:\n  chain_path: \"/etc/c/chain" + esc + ".pem\"\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.pem_path", "target_id: t\n" + "target_type: haproxy\n" + "target_config:\n  pem_path: \"/etc/c/" + esc + "\"\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.pid_file", "target_id: t\n" + head + "target_config:\n  reload_signal: HUP\n  pid_file: \"/run/x" + esc + ".pid\"\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.dynamic_config_path", "target_id: t\n" + "target_type: traefik\n" + "target_config:\n  dynamic_config_path: \"/etc/t/" + esc + "d.yaml\"\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.sds_path", "target_id: t\n" + "target_type: envoy\n" + "target_config:\n  sds_path: \"/etc/e/" + esc + "s.yaml\"\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.post_deploy_verify.endpoint", "target_id: t\n" + head + "target_config:\n  post_deploy_verify: {endpoint: \"web" + esc + "1:443\"}\n"},
			{"target_config.post_deploy_verify.server_name", "target_id: t\n" + head + "target_config:\n  post_deploy_verify: {endpoint: \"h:443\", server_name: \"web" + esc + "1\"}\n"},
			{"target_config.reload_command[1]", "target_id: t\n" + head + "target_config:\n  reload_command: [nginx, \"-s" + esc + "\", reload]\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.validate_command[0]", "target_id: t\n" + head + "target_config:\n  validate_command: [\"ngi" + esc + "nx\", -t]\n  post_deploy_verify: {enabled: false}\n"},
			{"target_config.key_owner", "target_id: t\n" + head + "target_config:\n  key_owner: \"root" + esc + "\"\n  post_deploy_verify: {enabled: false}\n"},
		} {
			t.Run(name+"/"+f.field, func(t *testing.T) {
				tg, err := target.Parse(strings.NewReader(f.src))
				if err == nil {
					t.Fatalf("accepted %+v", tg)
				}
				var fe *contract.FieldError
				// A NUL in a command list is refused as the list is read, before
				// its words are numbered.
				if !errors.As(err, &fe) || (fe.Field != f.field && !(name == "NUL" && fe.Field == strings.SplitN(f.field, "[", 2)[0])) {
					t.Fatalf("error %v does not name %s", err, f.field)
				}
				if strings.ContainsFunc(err.Error(), func(r rune) bool {
					return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x202e
				}) {
					t.Errorf("the error itself carries the character: %q", err.Error())
				}
			})
		}
	}
}

// A string command is split on spaces; a word with an escape is refused
// with the word's place named.
func TestNonPrintingInStringCommand(t *testing.T) {
	src := "target_id: t\ntarget_type: nginx\ntarget_config:\n  reload_command: \"nginx -s \\e0pwned\\a\"\n  post_deploy_verify: {enabled: false}\n"
	_, err := target.Parse(strings.NewReader(src))
	fe := wantFieldError(t, err, "target_config.reload_command[2]")
	if !strings.Contains(fe.Msg, "ESC") {
		t.Errorf("message %q does not name ESC", fe.Msg)
	}
}

// Bytes that are not UTF-8 (JSON from a plain temporal CLI start decodes
// them to U+FFFD; a Go caller can hand them in raw) are refused too.
func TestInvalidUTF8Refused(t *testing.T) {
	tg := target.Target{TargetID: "web\xff1", TargetType: "nginx", Config: target.Config{PostDeployVerify: target.Verify{Enabled: boolPtr(false)}}}
	fe := wantFieldError(t, tg.Validate(), "target_id")
	if !strings.Contains(fe.Msg, "UTF-8") {
		t.Errorf("message %q", fe.Msg)
	}
	if err := target.CheckPrintable("/etc/ssl/café/ünïcödé ok.pem"); err != nil {
		t.Errorf("printable text refused: %v", err)
	}
}

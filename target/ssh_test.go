package target_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/target"
)

const sshTarget = minimal + `  ssh:
    address: web-1.example.com:22
    user: deploy
    private_key_path: /etc/certctl/ssh/id_ed25519
    known_hosts_path: /etc/certctl/ssh/known_hosts
    connect_timeout: 3s
`

func TestSSHParsed(t *testing.T) {
	tg := parse(t, sshTarget)
	s := tg.Config.SSH
	if !tg.Remote() || s.Address != "web-1.example.com:22" || s.User != "deploy" || s.ConnectLimit() != 3*time.Second {
		t.Fatalf("ssh %+v", s)
	}
	b, err := json.Marshal(tg)
	if err != nil || !strings.Contains(string(b), `"ssh":{"address":"web-1.example.com:22","user":"deploy"`) {
		t.Errorf("JSON %s (%v)", b, err)
	}
}

// Each refusal names the field and says what to do.
func TestSSHRefused(t *testing.T) {
	for _, c := range []struct{ name, src, field, says string }{
		{"with host", strings.Replace(sshTarget, "target_type: nginx\n", "target_type: nginx\nhost: web-1\n", 1), "host", "agentless"},
		{"no port", strings.Replace(sshTarget, "web-1.example.com:22", "web-1.example.com", 1), "target_config.ssh.address", "host:port"},
		{"bad port", strings.Replace(sshTarget, "web-1.example.com:22", "web-1.example.com:99999", 1), "target_config.ssh.address", "port"},
		{"no user", strings.Replace(sshTarget, "    user: deploy\n", "", 1), "target_config.ssh.user", "is required"},
		{"no host key source", strings.Replace(sshTarget, "    known_hosts_path: /etc/certctl/ssh/known_hosts\n", "", 1), "target_config.ssh.known_hosts_path", "never accepts an unknown host key"},
		{"both host key sources", sshTarget + "    host_key: ssh-ed25519 AAAA\n", "target_config.ssh.host_key", "choose one"},
		{"relative key", strings.Replace(sshTarget, "/etc/certctl/ssh/id_ed25519", "id_ed25519", 1), "target_config.ssh.private_key_path", "not absolute"},
		{"reload by signal", sshTarget + "  reload_signal: USR2\n  pid_file: /run/haproxy.pid\n", "target_config.reload_signal", "reload_command"},
		{"unknown field", sshTarget + "    password: hunter2\n", "target_config.ssh.password", ""},
	} {
		_, err := target.Parse(strings.NewReader(c.src))
		fe := wantFieldError(t, err, c.field)
		if fe != nil && !strings.Contains(fe.Msg, c.says) {
			t.Errorf("%s: %q does not say %q", c.name, fe.Msg, c.says)
		}
	}
}

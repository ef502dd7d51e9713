package connectors_test

import (
	"reflect"
	"testing"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// fake is a connector whose defaults the test chooses.
type fake struct{ d connectors.Defaults }

func (f fake) Files(target.Config, *material.Bundle) ([]connectors.File, error) { return nil, nil }
func (f fake) Check(target.Config) error                                        { return nil }
func (f fake) Destinations(target.Config) []connectors.Destination              { return nil }
func (f fake) Defaults() connectors.Defaults                                    { return f.d }

func TestReloadFor(t *testing.T) {
	byCommand := fake{connectors.Defaults{ReloadCommand: target.Command{"nginx", "-s", "reload"}, Processes: []string{"nginx"}}}
	bySignal := fake{connectors.Defaults{ReloadSignal: "USR2", PIDFile: "/run/haproxy.pid", Processes: []string{"haproxy"}}}
	for _, tc := range []struct {
		name string
		c    connectors.Connector
		cfg  target.Config
		want connectors.Reload
		str  string
	}{
		{"connector's command", byCommand, target.Config{}, connectors.Reload{Command: target.Command{"nginx", "-s", "reload"}}, "nginx -s reload"},
		{"connector's signal", bySignal, target.Config{}, connectors.Reload{Signal: "USR2", PIDFile: "/run/haproxy.pid", Processes: []string{"haproxy"}}, "kill -USR2 $(cat /run/haproxy.pid)"},
		{"target's command wins over the connector's signal", bySignal, target.Config{ReloadCommand: target.Command{"systemctl", "reload", "haproxy"}},
			connectors.Reload{Command: target.Command{"systemctl", "reload", "haproxy"}}, "systemctl reload haproxy"},
		{"target's signal wins over the connector's command", byCommand, target.Config{ReloadSignal: "HUP", PIDFile: "/run/nginx.pid"},
			connectors.Reload{Signal: "HUP", PIDFile: "/run/nginx.pid", Processes: []string{"nginx"}}, "kill -HUP $(cat /run/nginx.pid)"},
		{"target's pid file wins over the connector's", bySignal, target.Config{ReloadSignal: "USR2", PIDFile: "/run/lb2.pid"},
			connectors.Reload{Signal: "USR2", PIDFile: "/run/lb2.pid", Processes: []string{"haproxy"}}, "kill -USR2 $(cat /run/lb2.pid)"},
		{"nothing", fake{}, target.Config{}, connectors.Reload{}, ""},
	} {
		got := connectors.ReloadFor(tc.c, tc.cfg)
		if !reflect.DeepEqual(got, tc.want) || got.String() != tc.str {
			t.Errorf("%s: %+v (%q), want %+v (%q)", tc.name, got, got.String(), tc.want, tc.str)
		}
	}
}

func TestVerifyProtocol(t *testing.T) {
	mail := fake{connectors.Defaults{VerifyProtocol: target.ProtocolSMTPStartTLS}}
	cfg := target.Config{}
	if p := connectors.VerifyProtocol(fake{}, cfg); p != target.ProtocolTLS {
		t.Errorf("no default: %q", p)
	}
	if p := connectors.VerifyProtocol(nil, cfg); p != target.ProtocolTLS {
		t.Errorf("no connector: %q", p)
	}
	if p := connectors.VerifyProtocol(mail, cfg); p != target.ProtocolSMTPStartTLS {
		t.Errorf("connector default: %q", p)
	}
	cfg.PostDeployVerify.Protocol = target.ProtocolTLS
	if p := connectors.VerifyProtocol(mail, cfg); p != target.ProtocolTLS {
		t.Errorf("explicit: %q", p)
	}
}

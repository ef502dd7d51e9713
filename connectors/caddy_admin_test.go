package connectors_test

import (
	"context"
	"errors"
	"testing"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/target"
)

// caddy_admin is caddy's: every other connector refuses it.
func TestRefuseUnusedCaddyAdmin(t *testing.T) {
	cfg := target.Config{CaddyAdmin: "http://127.0.0.1:2019"}
	var fe *target.FieldError
	if err := connectors.RefuseUnused(cfg, "nginx"); !errors.As(err, &fe) || fe.Field != "target_config.caddy_admin" {
		t.Errorf("nginx: %v", err)
	}
	if err := connectors.RefuseUnused(cfg, "caddy", connectors.FieldCaddyAdmin); err != nil {
		t.Errorf("caddy reads caddy_admin: %v", err)
	}
}

type fakeHTTP struct{}

func (fakeHTTP) String() string                         { return "POST fake" }
func (fakeHTTP) Reload(context.Context) (string, error) { return "ok", nil }

type withHTTP struct{ connectors.Connector }

func (withHTTP) Defaults() connectors.Defaults {
	return connectors.Defaults{ReloadCommand: target.Command{"default"}, ReloadHTTP: fakeHTTP{}}
}

// The HTTP reload is a default: a target's reload_command or signal wins.
func TestReloadForHTTP(t *testing.T) {
	c := withHTTP{}
	r := connectors.ReloadFor(c, target.Config{})
	if r.HTTP == nil || r.String() != "POST fake" {
		t.Errorf("default: %+v", r)
	}
	if r := connectors.ReloadFor(c, target.Config{ReloadCommand: target.Command{"mine"}}); r.HTTP != nil || r.Command[0] != "mine" {
		t.Errorf("reload_command: %+v", r)
	}
	if r := connectors.ReloadFor(c, target.Config{ReloadSignal: "HUP", PIDFile: "/run/x.pid"}); r.HTTP != nil || r.Signal != "HUP" {
		t.Errorf("reload_signal: %+v", r)
	}
}

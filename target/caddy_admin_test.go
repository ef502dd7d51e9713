package target

import (
	"errors"
	"testing"
)

func TestCaddyAdminURL(t *testing.T) {
	base := func(admin string) Target {
		off := false
		return Target{TargetID: "t", TargetType: "caddy", Config: Config{
			CertPath: "/d/c.pem", KeyPath: "/d/k.pem", CaddyAdmin: admin,
			PostDeployVerify: Verify{Enabled: &off}}}
	}
	for _, ok := range []string{"", "http://127.0.0.1:2019", "https://caddy.example.com:2019/", "http://[::1]:2019", "http://localhost:2019/admin"} {
		tg := base(ok)
		if err := tg.Validate(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"127.0.0.1:2019", "localhost:2019", "unix//run/caddy/admin.sock", "ftp://h", "http://", "http://:2019",
		"http://u:p@h:2019", "http://h:2019/?x=1", "http://h:2019/#f", "http://h :2019", "http://h:2019/\n", "file:///etc/passwd"} {
		tg := base(bad)
		var fe *FieldError
		if err := tg.Validate(); !errors.As(err, &fe) || fe.Field != "target_config.caddy_admin" {
			t.Errorf("%q: %v, want a caddy_admin error", bad, err)
		}
	}
}

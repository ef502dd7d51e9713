package connectors_test

import (
	"errors"
	"testing"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/target"
)

// A field only another connector reads is refused, never silently ignored.
func TestRefuseUnusedNamesTheField(t *testing.T) {
	for _, c := range []struct {
		cfg   target.Config
		field string
	}{
		{target.Config{DynamicConfigPath: "/etc/traefik/dynamic/certs.yml"}, "target_config.dynamic_config_path"},
		{target.Config{SDSPath: "/etc/envoy/sds.yaml"}, "target_config.sds_path"},
		{target.Config{SDSSecretName: "web"}, "target_config.sds_secret_name"},
		{target.Config{PEMPath: "/etc/haproxy/site.pem"}, "target_config.pem_path"},
	} {
		err := connectors.RefuseUnused(c.cfg, "nginx")
		var fe *target.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: got %v", c.field, err)
		}
	}
	if err := connectors.RefuseUnused(target.Config{DynamicConfigPath: "/x"}, "traefik", connectors.FieldDynamicConfig); err != nil {
		t.Errorf("traefik reads dynamic_config_path: %v", err)
	}
}

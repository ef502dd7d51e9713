package all_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// Targets as the flat target.Config (every connector's fields in one
// struct) marshalled them, before each connector owned its fields: what
// recorded histories and scripts hold. They decode into the connectors'
// typed configs and marshal back byte for byte.
var flatJSON = []string{
	`{"target_id":"lb-1","target_type":"haproxy","host":"lb","target_config":{"validate_command":["haproxy","-c"],"command_timeout":"30s","post_deploy_verify":{"endpoint":"lb:443","timeout":"5s"},"backup_retention":2,"pem_path":"/etc/haproxy/site.pem","pem_file_mode":"0640","pem_owner":"root:haproxy","reload_signal":"USR2","pid_file":"/run/haproxy.pid"}}`,
	`{"target_id":"t-1","target_type":"traefik","host":"t","target_config":{"cert_path":"/d/c.pem","key_path":"/d/k.pem","post_deploy_verify":{"enabled":false},"dynamic_config_path":"/d/dyn.yml","reload_signal":"HUP","pid_file":"/run/t.pid"}}`,
	`{"target_id":"e-1","target_type":"envoy","host":"e","target_config":{"cert_path":"/d/c.pem","key_path":"/d/k.pem","post_deploy_verify":{"enabled":false},"sds_path":"/d/sds.yaml","sds_secret_name":"server"}}`,
	`{"target_id":"c-1","target_type":"caddy","host":"c","target_config":{"cert_path":"/d/c.pem","key_path":"/d/k.pem","post_deploy_verify":{"endpoint":"c:443"},"caddy_admin":"http://127.0.0.1:2019"}}`,
	`{"target_id":"n-1","target_type":"nginx","host":"n","target_config":{"cert_path":"/d/c.pem","key_path":"/d/k.pem","chain_path":"/d/ch.pem","key_file_mode":"0600","post_deploy_verify":{"endpoint":"n:443","protocol":"tls"}}}`,
}

func TestFlatJSONRoundTrips(t *testing.T) {
	for _, js := range flatJSON {
		var tg target.Target
		if err := json.Unmarshal([]byte(js), &tg); err != nil {
			t.Fatal(err)
		}
		c, err := connectors.Get(tg.TargetType)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Check(tg.Config); err != nil {
			t.Errorf("%s: %v", tg.TargetType, err)
		}
		if _, raw := tg.Config.Own.(json.RawMessage); raw {
			t.Errorf("%s: own fields left undecoded", tg.TargetType)
		}
		b, err := json.Marshal(tg)
		if err != nil || string(b) != js {
			t.Errorf("%s:\n got  %s (%v)\n want %s", tg.TargetType, b, err, js)
		}
	}
}

// ownFields lists a connector's own fields with a value of the right type.
func ownFields(c connectors.Connector) map[string]string {
	o, ok := c.(connectors.Owner)
	if !ok {
		return nil
	}
	out := map[string]string{}
	typ := reflect.TypeOf(o.Own())
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		v := "/etc/x/file.yaml"
		if typ.Field(i).Type == reflect.TypeOf(&[]target.Mode{0}[0]) {
			v = "0600"
		}
		out[name] = v
	}
	return out
}

// Every connector's own field, set on a target of every other connector,
// is refused by the decoder with a message naming the field and the
// connector that reads it; in JSON (a workflow payload) it decodes, and
// the connector's Check refuses it the same way. Derived from the
// registry: a new connector's fields are covered without a line here.
func TestForeignFieldsRefused(t *testing.T) {
	names := connectors.Names()
	for _, owner := range names {
		oc, _ := connectors.Get(owner)
		for field, value := range ownFields(oc) {
			for _, kind := range names {
				c, _ := connectors.Get(kind)
				if _, reads := ownFields(c)[field]; reads {
					continue
				}
				src := "target_id: t\ntarget_type: " + kind + "\nhost: h\ntarget_config:\n  cert_path: /d/c.pem\n  key_path: /d/k.pem\n  " +
					field + ": \"" + value + "\"\n  post_deploy_verify: {enabled: false}\n"
				_, err := target.Parse(strings.NewReader(src))
				wantRefusal(t, "Parse", kind, field, owner, err)

				js := `{"target_id":"t","target_type":"` + kind + `","target_config":{"cert_path":"/d/c.pem","key_path":"/d/k.pem","` + field + `":"` + value + `"}}`
				var tg target.Target
				if err := json.Unmarshal([]byte(js), &tg); err != nil {
					t.Fatalf("%s with %s: a payload failed to decode: %v", kind, field, err)
				}
				wantRefusal(t, "Check", kind, field, owner, c.Check(tg.Config))
			}
		}
	}
}

func wantRefusal(t *testing.T, step, kind, field, owner string, err error) {
	t.Helper()
	var fe *contract.FieldError
	if !errors.As(err, &fe) || fe.Field != "target_config."+field || !strings.Contains(fe.Msg, kind) || !strings.Contains(fe.Msg, owner) {
		t.Errorf("%s: %s target with %s: got %v, want a refusal naming target_config.%s, %s and %s", step, kind, field, err, field, kind, owner)
	}
}

// A misspelt field is refused, for every connector, naming it.
func TestTypoRefused(t *testing.T) {
	for _, kind := range connectors.Names() {
		src := "target_id: t\ntarget_type: " + kind + "\ntarget_config:\n  cert_pth: /d/c.pem\n  post_deploy_verify: {enabled: false}\n"
		_, err := target.Parse(strings.NewReader(src))
		var fe *contract.FieldError
		if !errors.As(err, &fe) || fe.Field != "target_config.cert_pth" || !strings.Contains(fe.Msg, "cert_pth") {
			t.Errorf("%s: %v", kind, err)
		}
	}
}

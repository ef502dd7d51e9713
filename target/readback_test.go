package target_test

import (
	"errors"
	"testing"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
)

// Verify on without an endpoint is refused unless the target's type
// verifies by reading its files back.
func TestValidateEndpointUnlessReadBack(t *testing.T) {
	target.RegisterReadBack("readback-test", true)
	target.RegisterReadBack("probe-test", false)
	for _, tc := range []struct {
		kind    string
		refused bool
	}{
		{"readback-test", false},
		{"probe-test", true},
		{"unregistered-test", true},
	} {
		tg := target.Target{TargetID: "t", TargetType: tc.kind, Host: "h", Config: target.Config{CertPath: "/d/c.pem", KeyPath: "/d/k.pem"}}
		err := tg.Validate()
		var fe *contract.FieldError
		if refused := errors.As(err, &fe) && fe.Field == "target_config.post_deploy_verify.endpoint"; refused != tc.refused || (!tc.refused && err != nil) {
			t.Errorf("%s: %v, want refused %v", tc.kind, err, tc.refused)
		}
		if target.ReadsBack(tc.kind) == tc.refused {
			t.Errorf("%s: ReadsBack %v", tc.kind, !tc.refused)
		}
	}
}

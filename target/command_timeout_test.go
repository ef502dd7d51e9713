package target_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/target"
)

func TestCommandTimeout(t *testing.T) {
	if got := parse(t, minimal).Config.CommandLimit(); got != time.Minute {
		t.Errorf("default command limit %s, want 60s", got)
	}
	tg := parse(t, minimal+"  command_timeout: 2s\n")
	if got := tg.Config.CommandLimit(); got != 2*time.Second {
		t.Errorf("command limit %s, want 2s", got)
	}
	// It travels in the workflow's JSON and comes back the same.
	b, err := json.Marshal(tg)
	if err != nil {
		t.Fatal(err)
	}
	var back target.Target
	if err := json.Unmarshal(b, &back); err != nil || back.Config.CommandLimit() != 2*time.Second {
		t.Errorf("JSON round trip: %s → %+v, %v", b, back.Config.CommandTimeout, err)
	}
	if !strings.Contains(string(b), `"command_timeout":"2s"`) {
		t.Errorf("JSON: %s", b)
	}
}

func TestCommandTimeoutRefused(t *testing.T) {
	for _, v := range []string{"0s", "-5s", "1h0m1s", "8760h"} {
		_, err := target.Parse(strings.NewReader(minimal + "  command_timeout: " + v + "\n"))
		fe := wantFieldError(t, err, "target_config.command_timeout")
		if !strings.Contains(fe.Msg, "at most 1h0m0s") {
			t.Errorf("%s: message %q does not say the bound", v, fe.Msg)
		}
	}
	_, err := target.Parse(strings.NewReader(minimal + "  command_timeout: soon\n"))
	wantFieldError(t, err, "target_config.command_timeout")
	// The same check holds for a target that arrives as JSON (a plain
	// temporal workflow start).
	var tg target.Target
	if err := json.Unmarshal([]byte(`{"target_id":"t","target_type":"nginx","target_config":{"command_timeout":"0s","post_deploy_verify":{"enabled":false}}}`), &tg); err != nil {
		t.Fatal(err)
	}
	wantFieldError(t, tg.Validate(), "target_config.command_timeout")
	if _, err := target.Parse(strings.NewReader(minimal + "  command_timeout: 1h\n")); err != nil {
		t.Errorf("1h refused: %v", err)
	}
}

package main

import (
	"io"
	"strings"
	"testing"
)

// The flags DESIGN.md's interface promises, and the one combination it
// does not: --workflows means "as well as --host".
func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args      string
		host      string
		workflows bool
		err       string
	}{
		{args: "", workflows: true},
		{args: "--host web-1", host: "web-1"},
		{args: "--host web-1 --workflows", host: "web-1", workflows: true},
		{args: "--workflows", err: "only with --host"},
		{args: "--host web-1 extra", err: `unexpected argument "extra"`},
		{args: "--no-such-flag", err: "not defined"},
		{args: "--notify-config n.yaml", workflows: true},
		{args: "--host web-1 --workflows --notify-config n.yaml", host: "web-1", workflows: true},
		{args: "--host web-1 --notify-config n.yaml", err: "--notify-config: only where the workflows run"},
	} {
		cfg, err := parseFlags(strings.Fields(tc.args), io.Discard)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if cfg.host != tc.host || cfg.workflows != tc.workflows {
			t.Errorf("%q: host %q workflows %v, want %q %v", tc.args, cfg.host, cfg.workflows, tc.host, tc.workflows)
		}
	}
}

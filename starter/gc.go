package main

import (
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// oneShotGCPercent is the GC target of a command that ends within its
// deploy (or its listing, or its rollout's wait): a `certctl deploy` lives
// ~300 ms, and at Go's default (100) collected its few-MB heap several
// times, ~15 % of its CPU (perf over 20 deploys). Four times the live heap
// is still bounded by what the command holds. `certctl dev` and
// `codec-server` run until stopped and keep the default; GOGC, when set,
// wins everywhere.
const oneShotGCPercent = 400

// longRunning are the commands that serve until stopped.
var longRunning = map[string]bool{"dev": true, "codec-server": true}

// tuneGC sets the GC target for root's commands as they start.
func tuneGC(root *cobra.Command) {
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) {
		if p := gcPercentFor(cmd.Name(), os.Getenv("GOGC")); p != 100 {
			debug.SetGCPercent(p)
		}
	}
}

// gcPercentFor is the GC target for command name with GOGC gogc: the
// default 100 where nothing changes.
func gcPercentFor(name, gogc string) int {
	if gogc != "" || longRunning[name] {
		return 100
	}
	return oneShotGCPercent
}

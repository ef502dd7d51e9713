// Package failpoint injects crashes for the crash-matrix tests. It is off
// unless CERTCTL_FAILPOINTS names points, e.g.
//
//	CERTCTL_FAILPOINTS=commit:after-rename-1=kill,reload:done=pause
//
// "kill" sends SIGKILL to this process (a crash, nothing flushed); "pause"
// blocks while the file CERTCTL_FAILPOINT_PAUSE exists. Never set it in
// production: it exists so tests can prove a deploy survives a crash at
// every step boundary.
package failpoint

import (
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Env names the failpoints to arm.
const Env = "CERTCTL_FAILPOINTS"

// PauseEnv names the file a "pause" failpoint waits on.
const PauseEnv = "CERTCTL_FAILPOINT_PAUSE"

var (
	once  sync.Once
	armed map[string]string
)

func load() {
	armed = map[string]string{}
	for _, item := range strings.Split(os.Getenv(Env), ",") {
		name, action, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			action = "kill"
		}
		if name != "" {
			armed[name] = action
		}
	}
}

// Hit acts on the failpoint name if it is armed.
func Hit(name string) {
	once.Do(load)
	switch armed[name] {
	case "kill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute) // the signal is on its way
	case "pause":
		for {
			if _, err := os.Stat(os.Getenv(PauseEnv)); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

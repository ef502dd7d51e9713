package testsuite

import (
	"testing"
	"time"
)

// Poll asks cond until it reports done or timeout has passed, and returns
// whether it was done and what cond last said. It waits a little longer
// between asks each time (from 10ms up to 200ms). A condition that must
// stay false for a while is a Poll whose done must not come.
func Poll(timeout time.Duration, cond func() (done bool, state string)) (bool, string) {
	deadline := time.Now().Add(timeout)
	pause := 10 * time.Millisecond
	for {
		done, state := cond()
		if done {
			return true, state
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, state
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// WaitFor waits until cond reports done, failing t with what cond last said
// if timeout passes first. It is how a test waits for something to happen:
// never a sleep.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (done bool, state string)) {
	t.Helper()
	if ok, state := Poll(timeout, cond); !ok {
		t.Fatalf("not done after %s: %s", timeout, state)
	}
}

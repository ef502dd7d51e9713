package lock

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	sdktest "go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite/histories"
)

// lockHarness runs FileLockWorkflow alone: requests and releases arrive as
// signals at chosen times, grants and pings go to mocked deploys.
type lockHarness struct {
	t       *testing.T
	env     *sdktest.TestWorkflowEnvironment
	start   time.Time
	grants  []string                 // workflow IDs in grant order
	grantAt map[string]time.Duration // since start
	dead    map[string]bool          // deploys whose ping fails
	pings   int
}

func newLockHarness(t *testing.T) *lockHarness {
	s := &sdktest.WorkflowTestSuite{}
	h := &lockHarness{t: t, env: s.NewTestWorkflowEnvironment(), grantAt: map[string]time.Duration{}, dead: map[string]bool{}}
	Register(h.env)
	h.start = h.env.Now()
	h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, contract.LockGrantedSignal, mock.Anything).Return(
		func(_, id, _, _ string, _ any) error {
			if h.dead[id] {
				return errors.New("workflow not found")
			}
			h.grants = append(h.grants, id)
			h.grantAt[id] = h.env.Now().Sub(h.start)
			return nil
		}).Maybe()
	h.env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, contract.LockPingSignal, mock.Anything).Return(
		func(_, id, _, _ string, _ any) error {
			h.pings++
			if h.dead[id] {
				return errors.New("workflow not found")
			}
			return nil
		}).Maybe()
	return h
}

func req(id string, files ...string) Request {
	keys := []string{targetKey("t-" + id)}
	for _, f := range files {
		keys = append(keys, "file:"+f)
	}
	return Request{TargetID: "t-" + id, WorkflowID: id, RunID: "run-" + id, Keys: keys}
}

func (h *lockHarness) acquire(at time.Duration, r Request) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(contract.LockAcquireSignal, r) }, at)
}

func (h *lockHarness) release(at time.Duration, r Request) {
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(contract.LockReleaseSignal, r) }, at)
}

// query reads the lock's state at a time.
func (h *lockHarness) query(at time.Duration, got *FileState) {
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow("state")
		if err != nil {
			h.t.Errorf("query state: %v", err)
			return
		}
		if err := v.Get(got); err != nil {
			h.t.Errorf("query state: %v", err)
		}
	}, at)
}

func (h *lockHarness) run(st FileState) error {
	if st.Scope == "" {
		st.Scope = "host/web-1"
	}
	h.env.ExecuteWorkflow(FileLockWorkflow, st)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("lock did not complete")
	}
	return h.env.GetWorkflowError()
}

func (h *lockHarness) wantGrants(want ...string) {
	h.t.Helper()
	if strings.Join(h.grants, ",") != strings.Join(want, ",") {
		h.t.Fatalf("grant order %v, want %v", h.grants, want)
	}
}

func (h *lockHarness) wantGrantedAt(id string, at time.Duration) {
	h.t.Helper()
	got, ok := h.grantAt[id]
	if !ok {
		h.t.Fatalf("%s never granted", id)
	}
	if got < at || got > at+time.Second {
		h.t.Fatalf("%s granted at %v, want %v", id, got, at)
	}
}

// Two deploys of different targets writing the same file: the second waits
// until the first releases, whatever their target_ids.
func TestFileLockConflictingKeysWait(t *testing.T) {
	h := newLockHarness(t)
	a, b := req("a", "/etc/nginx/certs/cert.pem", "/etc/nginx/certs/key.pem"), req("b", "/etc/nginx/certs/key.pem", "/srv/other.pem")
	h.acquire(time.Second, a)
	h.acquire(2*time.Second, b)
	var mid FileState
	h.query(5*time.Second, &mid)
	h.release(10*time.Second, a)
	h.release(20*time.Second, b)
	if err := h.run(FileState{}); err != nil {
		t.Fatal(err)
	}
	h.wantGrants("a", "b")
	h.wantGrantedAt("a", time.Second)
	h.wantGrantedAt("b", 10*time.Second)
	if len(mid.Holders) != 1 || mid.Holders[0].WorkflowID != "a" || len(mid.Queue) != 1 || mid.Queue[0].WorkflowID != "b" {
		t.Fatalf("state while b waits: %+v", mid)
	}
}

// Same target_id always conflicts, even with no file in common (a target
// whose layout could not be derived has only its target key).
func TestFileLockSameTargetConflicts(t *testing.T) {
	h := newLockHarness(t)
	a := Request{TargetID: "web", WorkflowID: "a", RunID: "1", Keys: []string{targetKey("web"), "file:/x"}}
	b := Request{TargetID: "web", WorkflowID: "b", RunID: "1"} // no keys: its target
	h.acquire(time.Second, a)
	h.acquire(2*time.Second, b)
	h.release(10*time.Second, a)
	h.release(20*time.Second, b)
	if err := h.run(FileState{}); err != nil {
		t.Fatal(err)
	}
	h.wantGrantedAt("b", 10*time.Second)
}

// Disjoint key sets on one host hold the lock at the same time.
func TestFileLockDisjointKeysRunInParallel(t *testing.T) {
	h := newLockHarness(t)
	a, b := req("a", "/srv/a/cert.pem", "/srv/a/key.pem"), req("b", "/srv/b/cert.pem", "/srv/b/key.pem")
	h.acquire(time.Second, a)
	h.acquire(2*time.Second, b)
	var mid FileState
	h.query(5*time.Second, &mid)
	h.release(10*time.Second, a)
	h.release(10*time.Second, b)
	if err := h.run(FileState{}); err != nil {
		t.Fatal(err)
	}
	h.wantGrantedAt("a", time.Second)
	h.wantGrantedAt("b", 2*time.Second)
	if len(mid.Holders) != 2 || len(mid.Queue) != 0 {
		t.Fatalf("state with two disjoint holders: %+v", mid)
	}
}

// FIFO among conflicting requests: c shares nothing with the holder a but
// shares /y with b, which is older and waits for a; so c waits for b (no
// starvation of b by a stream of c's). d conflicts with nobody and runs.
func TestFileLockFIFOAmongConflicting(t *testing.T) {
	h := newLockHarness(t)
	a, b, c, d := req("a", "/x"), req("b", "/x", "/y"), req("c", "/y"), req("d", "/z")
	h.acquire(time.Second, a)
	h.acquire(2*time.Second, b)
	h.acquire(3*time.Second, c)
	h.acquire(4*time.Second, d)
	h.release(10*time.Second, a)
	h.release(20*time.Second, b)
	h.release(30*time.Second, c)
	h.release(30*time.Second, d)
	if err := h.run(FileState{}); err != nil {
		t.Fatal(err)
	}
	h.wantGrants("a", "d", "b", "c")
	h.wantGrantedAt("d", 4*time.Second)
	h.wantGrantedAt("b", 10*time.Second)
	h.wantGrantedAt("c", 20*time.Second)
}

// A retried request is not queued twice, and a release before the grant
// leaves the queue: the next one in line gets the files.
func TestFileLockRetryAndGiveUp(t *testing.T) {
	h := newLockHarness(t)
	a, b, c := req("a", "/x"), req("b", "/x"), req("c", "/x")
	h.acquire(time.Second, a)
	h.acquire(2*time.Second, a) // local activity retry
	h.acquire(2*time.Second, b)
	h.acquire(3*time.Second, b)
	h.acquire(3*time.Second, c)
	h.release(5*time.Second, b) // b canceled while queued
	h.release(10*time.Second, a)
	h.release(20*time.Second, c)
	if err := h.run(FileState{}); err != nil {
		t.Fatal(err)
	}
	h.wantGrants("a", "c")
	h.wantGrantedAt("c", 10*time.Second)
}

// A holder terminated without releasing is found by the lease probe and its
// files go to the next deploy; a live holder keeps them across probes.
func TestFileLockDeadHolderFreedByLease(t *testing.T) {
	h := newLockHarness(t)
	lease := time.Minute
	a, b, live := req("a", "/x"), req("b", "/x"), req("live", "/y")
	h.acquire(time.Second, a)
	h.acquire(time.Second, live)
	h.acquire(2*time.Second, b)
	h.env.RegisterDelayedCallback(func() { h.dead["a"] = true }, 3*time.Second)
	// Steady traffic on other files must not postpone the probe.
	for i := 0; i < 20; i++ {
		r := req(fmt.Sprintf("busy%d", i), fmt.Sprintf("/busy/%d", i))
		h.acquire(time.Duration(5+i*5)*time.Second, r)
		h.release(time.Duration(6+i*5)*time.Second, r)
	}
	h.release(3*lease, b)
	h.release(3*lease, live)
	if err := h.run(FileState{Lease: target.Duration(lease)}); err != nil {
		t.Fatal(err)
	}
	got := h.grantAt["b"]
	if got < lease || got > lease+2*time.Second {
		t.Fatalf("b granted at %v, want at the first lease probe (%v)", got, lease)
	}
	if _, ok := h.grantAt["live"]; !ok {
		t.Fatal("live never granted")
	}
	if h.pings == 0 {
		t.Fatal("no holder was pinged")
	}
}

// A new run of a holder (a reset deploy) is granted again, not left waiting
// behind its own old run.
func TestFileLockResetHolderRegranted(t *testing.T) {
	h := newLockHarness(t)
	a, b := req("a", "/x"), req("b", "/x")
	a2 := a
	a2.RunID = "run-a-2"
	h.acquire(time.Second, a)
	h.acquire(2*time.Second, b)
	h.acquire(3*time.Second, a2)
	h.release(10*time.Second, a2)
	h.release(20*time.Second, b)
	if err := h.run(FileState{}); err != nil {
		t.Fatal(err)
	}
	h.wantGrants("a", "a", "b")
	h.wantGrantedAt("b", 10*time.Second)
}

// After lockGrantsPerRun grants the lock continues as new, carrying its
// holders, its queue and its next probe.
func TestFileLockContinueAsNewCarriesState(t *testing.T) {
	h := newLockHarness(t)
	var holders []Request
	for i := 0; i < lockGrantsPerRun; i++ {
		holders = append(holders, req(fmt.Sprintf("h%d", i), fmt.Sprintf("/f/%d", i)))
	}
	waiting := req("w", "/f/0")
	h.env.RegisterDelayedCallback(func() {
		for _, r := range holders {
			h.env.SignalWorkflow(contract.LockAcquireSignal, r)
		}
		h.env.SignalWorkflow(contract.LockAcquireSignal, waiting)
	}, time.Second)
	err := h.run(FileState{Scope: "host/web-9", Lease: target.Duration(time.Minute)})
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	if can.WorkflowType.Name != "FileLockWorkflow" {
		t.Fatalf("continued as %q", can.WorkflowType.Name)
	}
	var next FileState
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.Scope != "host/web-9" || len(next.Holders) != lockGrantsPerRun || len(next.Queue) != 1 || next.Queue[0].WorkflowID != "w" ||
		next.Lease.D() != time.Minute || next.ProbeAt.IsZero() {
		t.Fatalf("carried state: scope %q, %d holders, queue %+v, lease %v, probe %v", next.Scope, len(next.Holders), next.Queue, next.Lease.D(), next.ProbeAt)
	}

	// The next run honours what it was given: w still waits for h0.
	h2 := newLockHarness(t)
	h2.release(time.Second, holders[0])
	for _, r := range holders[1:] {
		h2.release(2*time.Second, r)
	}
	h2.release(3*time.Second, waiting)
	next.ProbeAt = h2.env.Now().Add(time.Minute)
	if err := h2.run(next); err != nil {
		t.Fatal(err)
	}
	h2.wantGrants("w")
	h2.wantGrantedAt("w", time.Second)
}

// The keys: a target and its canonical files; the same files under another
// target_id give the same file keys; another host is another lock.
func TestLockKeysFromTheConnectorsLayout(t *testing.T) {
	nginx := func(id, host string) target.Target {
		return target.Target{TargetID: id, TargetType: "nginx", Host: host, Config: target.Config{
			CertPath: "/etc/nginx/certs/cert.pem", ChainPath: "/etc/nginx/certs/chain.pem", KeyPath: "/etc/nginx/certs/key.pem"}}
	}
	got := Keys(nginx("a", "web-1"))
	want := "target:a,file:/etc/nginx/certs/cert.pem,file:/etc/nginx/certs/chain.pem,file:/etc/nginx/certs/key.pem"
	if strings.Join(got, ",") != want {
		t.Fatalf("keys %v, want %s", got, want)
	}
	if b := Keys(nginx("b", "web-1")); strings.Join(b[1:], ",") != strings.Join(got[1:], ",") {
		t.Fatalf("same files, other target_id: %v vs %v", b, got)
	}
	if FileLockID(nginx("a", "web-1")) != "lock/host/web-1" || FileLockID(nginx("a", "web-2")) != "lock/host/web-2" {
		t.Fatal("the lock is not per host")
	}
	if FileLockID(target.Target{TargetID: "x"}) != "lock/target/x" {
		t.Fatal("a target without a host has no lock of its own")
	}
	// haproxy's one file.
	hp := target.Target{TargetID: "h", TargetType: "haproxy", Host: "web-1", Config: target.Config{Own: &haproxy.Config{PEMPath: "/etc/haproxy/certs/site.pem"}}}
	if k := Keys(hp); strings.Join(k, ",") != "target:h,file:/etc/haproxy/certs/site.pem" {
		t.Fatalf("haproxy keys %v", k)
	}
	// Underivable: the target's key alone.
	for _, tg := range []target.Target{
		{TargetID: "u", TargetType: "no-such-type", Host: "web-1"},
		{TargetID: "u", TargetType: "nginx", Host: "web-1"}, // no paths
	} {
		if k := Keys(tg); strings.Join(k, ",") != "target:u" {
			t.Fatalf("%+v: keys %v", tg, k)
		}
	}
	bad := nginx("u", "web-1")
	if k := Keys(bad); len(k) != 4 {
		t.Fatalf("keys %v", k)
	}
	bad.Config.CertPath = "relative/cert.pem"
	if k := Keys(bad); strings.Join(k, ",") != "target:u" {
		t.Fatalf("relative path: keys %v", k)
	}
}

// The recorded histories keep covering both locks a running deploy may hold:
// version 1 (the target's lock) and version 2 (the host's file lock), so
// TestReplayRecordedHistories proves the "target-lock" guard both ways.
func TestReplayHistoriesCoverBothLocks(t *testing.T) {
	seen := map[string][]string{}
	for _, hf := range histories.Load(t, "../testsuite/histories/deploy-*.json") {
		f, h := hf.Path, hf.History
		for _, ev := range h.GetEvents() {
			a := ev.GetSignalExternalWorkflowExecutionInitiatedEventAttributes()
			if a == nil || a.GetSignalName() != contract.LockReleaseSignal {
				continue
			}
			kind := "target lock (v1)"
			if strings.HasPrefix(a.GetWorkflowExecution().GetWorkflowId(), "lock/host/") {
				kind = "file lock (v2)"
			}
			seen[kind] = append(seen[kind], filepath.Base(f))
		}
	}
	for _, kind := range []string{"target lock (v1)", "file lock (v2)"} {
		if len(seen[kind]) == 0 {
			t.Errorf("no recorded deploy history releases a %s: %v", kind, seen)
		}
	}
}

package lock

import (
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"

	// Every binary that runs DeployWorkflow derives the same keys: a
	// connector missing here would silently shrink them to the target's.
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/target"
)

// Exclusion by file (version 2 of "target-lock"). A deploy asks its host's
// lock, "lock/host/<host>", for a set of keys: its target ("target:<id>")
// and every canonical file it writes ("file:<path>", the cleaned absolute
// destination; the host is the lock's own scope, so two hosts' files never
// meet). The lock grants, oldest first, every waiting request whose keys
// meet neither a holder's nor an older waiting request's: two targets
// sharing a file take turns in request order whatever their target_id, two
// targets with files of their own run side by side, and no request waits
// behind a younger one. One request, one grant and one release per deploy.

// FileLockID names the lock a target's deploys ask: its host's, or for a
// target without a host (refused by Plan, but it still must not run beside
// itself) its own.
func FileLockID(t target.Target) string {
	if t.Host == "" {
		return "lock/target/" + t.TargetID
	}
	return "lock/host/" + t.Host
}

// Keys are the keys a deploy of t holds: its target, and every file its
// connector writes (Connector.Destinations, a pure function of the target's
// config: no material is parsed in the workflow). When they cannot be
// derived (unknown connector, no paths, a relative path), the target's key
// alone: Plan then refuses the deploy before it touches a file.
func Keys(t target.Target) []string {
	keys := []string{targetKey(t.TargetID)}
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		return keys
	}
	seen := map[string]bool{}
	var paths []string
	for _, f := range c.Destinations(t.Config) {
		if !filepath.IsAbs(f.Path) {
			return keys[:1]
		}
		p := filepath.Clean(f.Path)
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	sort.Strings(paths) // one spelling of a key set, whatever the connector's order
	// A remote target's files are another machine's: keyed by the SSH
	// user and address as well (the same path on two hosts is two files).
	prefix := "file:"
	if t.Config.SSH != nil {
		prefix = "file:ssh://" + strings.ToLower(t.Config.SSH.Address) + ":"
	}
	for _, p := range paths {
		keys = append(keys, prefix+p)
	}
	return keys
}

func targetKey(id string) string { return "target:" + id }

// FileState is FileLockWorkflow's input and what it carries across
// continue-as-new; query "state" returns it.
type FileState struct {
	// Scope is what the keys are relative to: "host/<host>" or "target/<id>".
	Scope   string          `json:"scope"`
	Holders []Request       `json:"holders,omitempty"`
	Queue   []Request       `json:"queue,omitempty"`
	Lease   target.Duration `json:"lease,omitempty"`
	// ProbeAt is when the lock next checks that its holders still run (zero
	// while nobody holds it). It is carried across continue-as-new, so a
	// busy lock still frees a dead holder.
	ProbeAt time.Time `json:"probe_at"`
}

// lockEventsPerRun bounds a lock's history, whatever its grants.
const lockEventsPerRun = 10000

// FileLockWorkflow grants a host's files to deploys; see AcquireFiles.
func FileLockWorkflow(ctx workflow.Context, st FileState) error {
	lease, acquire, release, err := serve(ctx, &st, st.Lease)
	if err != nil {
		return err
	}
	grants := 0
	for {
		grants += st.grant(ctx)
		switch {
		case len(st.Holders) == 0:
			st.ProbeAt = time.Time{}
		case st.ProbeAt.IsZero():
			st.ProbeAt = workflow.Now(ctx).Add(lease)
		}
		if (grants >= lockGrantsPerRun || workflow.GetInfo(ctx).GetCurrentHistoryLength() >= lockEventsPerRun) && !pending(acquire, release) {
			return workflow.NewContinueAsNewError(ctx, FileLockWorkflow, st)
		}
		s := workflow.NewSelector(ctx)
		s.AddReceive(acquire, func(c workflow.ReceiveChannel, _ bool) {
			var r Request
			c.Receive(ctx, &r)
			st.request(r)
		})
		s.AddReceive(release, func(c workflow.ReceiveChannel, _ bool) {
			var r Request
			c.Receive(ctx, &r)
			st.release(r)
		})
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		wait := lockIdle
		if len(st.Holders) > 0 {
			wait = st.ProbeAt.Sub(workflow.Now(ctx))
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
		}
		expired := false
		s.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) { expired = true })
		s.Select(ctx)
		cancelTimer()
		if !expired {
			continue
		}
		if len(st.Holders) > 0 {
			st.probe(ctx)
			st.ProbeAt = time.Time{} // the next one is a lease from now
			continue
		}
		if len(st.Queue) == 0 && !pending(acquire, release) {
			return nil // idle: the next request starts a fresh lock
		}
	}
}

// keysOf is r's keys; a request without any (not sent by AcquireFiles)
// still excludes its own target.
func keysOf(r Request) []string {
	if len(r.Keys) == 0 {
		return []string{targetKey(r.TargetID)}
	}
	return r.Keys
}

// grant sends the grant to every waiting request, oldest first, whose keys
// meet no holder's and no older waiting request's, and returns how many it
// granted. A requester that is gone is dropped, and the pass starts over:
// its keys must not keep a younger request waiting.
func (st *FileState) grant(ctx workflow.Context) int {
	n := 0
	for {
		granted, gone := st.grantPass(ctx)
		n += granted
		if !gone {
			return n
		}
	}
}

func (st *FileState) grantPass(ctx workflow.Context) (granted int, gone bool) {
	taken := map[string]bool{}
	for _, h := range st.Holders {
		for _, k := range keysOf(h) {
			taken[k] = true
		}
	}
	for i := 0; i < len(st.Queue); i++ {
		r := st.Queue[i]
		free := true
		for _, k := range keysOf(r) {
			free = free && !taken[k]
			taken[k] = true // an older waiting request blocks younger ones
		}
		if !free {
			continue
		}
		err := workflow.SignalExternalWorkflow(ctx, r.WorkflowID, r.RunID, contract.LockGrantedSignal, nil).Get(ctx, nil)
		st.Queue = append(st.Queue[:i:i], st.Queue[i+1:]...)
		if err != nil {
			workflow.GetLogger(ctx).Warn("lock: requester gone", "workflow_id", r.WorkflowID, "error", err)
			return granted, true
		}
		st.Holders = append(st.Holders, r)
		granted++
		i--
	}
	return granted, false
}

// request queues r, once: a retried request is ignored, and a new run of a
// holder (a reset deploy) takes its place and is granted again at once (its
// keys are its own: holders never share one).
func (st *FileState) request(r Request) {
	for i, h := range st.Holders {
		if h.WorkflowID != r.WorkflowID {
			continue
		}
		if h.RunID == r.RunID {
			return
		}
		st.Holders = append(st.Holders[:i:i], st.Holders[i+1:]...)
		st.Queue = append([]Request{r}, st.Queue...)
		return
	}
	for _, q := range st.Queue {
		if q.WorkflowID == r.WorkflowID && q.RunID == r.RunID {
			return
		}
	}
	st.Queue = append(st.Queue, r)
}

// release frees r's keys; a release before the grant leaves the queue (the
// deploy gave up). A holder matches on the workflow ID alone: a reset deploy
// must still be able to release.
func (st *FileState) release(r Request) {
	for i, h := range st.Holders {
		if h.WorkflowID == r.WorkflowID {
			st.Holders = append(st.Holders[:i:i], st.Holders[i+1:]...)
			return
		}
	}
	for i, q := range st.Queue {
		if q.WorkflowID == r.WorkflowID && q.RunID == r.RunID {
			st.Queue = append(st.Queue[:i:i], st.Queue[i+1:]...)
			return
		}
	}
}

// probe asks every holder whether it still runs (all at once) and frees the
// keys of those that do not: a terminated deploy runs no release, a deploy
// waiting hours for its host keeps its files.
func (st *FileState) probe(ctx workflow.Context) {
	pings := make([]workflow.Future, len(st.Holders))
	for i, h := range st.Holders {
		pings[i] = workflow.SignalExternalWorkflow(ctx, h.WorkflowID, "", contract.LockPingSignal, nil)
	}
	alive := st.Holders[:0:0]
	for i, h := range st.Holders {
		if err := pings[i].Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("lock: holder is gone; freeing its files", "holder", h.WorkflowID, "error", err)
			continue
		}
		alive = append(alive, h)
	}
	st.Holders = alive
}

// AcquireFiles asks the host's file lock for the deploy's keys and waits for
// the grant; the returned func releases them (also when ctx is canceled).
func AcquireFiles(ctx workflow.Context, t target.Target) (lockID string, keys []string, release func(), err error) {
	info := workflow.GetInfo(ctx)
	lockID, keys = FileLockID(t), Keys(t)
	req := Request{TargetID: t.TargetID, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID, Keys: keys}
	in := FileStart{LockID: lockID, Scope: strings.TrimPrefix(lockID, "lock/"), Request: req}
	release, err = awaitGrant(ctx, lockID, req, la.RequestFileLock, in)
	return lockID, keys, release, err
}

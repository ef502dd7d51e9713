package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func owner(name string) Owner { return Owner{WorkflowID: "deploy/" + name, RunID: "run-" + name} }

type aliveSet map[string]bool

func (a aliveSet) alive(calls *int) Alive {
	return func(_ context.Context, o Owner) (bool, error) {
		*calls++
		v, ok := a[o.WorkflowID]
		if !ok {
			return true, errors.New("unknown")
		}
		return v, nil
	}
}

func acquire(t *testing.T, tb Table, name string, alive Alive, keys ...string) Lease {
	t.Helper()
	l, _, err := tb.Acquire(context.Background(), owner(name), keys, time.Now(), alive)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newTable(t *testing.T) Table {
	return Table{Path: filepath.Join(t.TempDir(), "state", "locks.json")}
}

// First come, first served on shared keys; disjoint keys side by side; an
// owner asking again finds its lease (granted or its place in line); the
// uncontended path asks nobody whether anyone is alive.
func TestLeaseOrder(t *testing.T) {
	tb := newTable(t)
	calls := 0
	live := aliveSet{"deploy/a": true, "deploy/b": true, "deploy/c": true, "deploy/d": true}.alive(&calls)
	if l := acquire(t, tb, "a", live, "target:x", "file:/f"); !l.Granted || calls != 0 {
		t.Fatalf("a: %+v, alive calls %d", l, calls)
	}
	if l := acquire(t, tb, "a", live, "target:x", "file:/f"); !l.Granted || l.Ticket != 1 {
		t.Fatalf("a again: %+v", l)
	}
	if l := acquire(t, tb, "b", live, "target:y", "file:/f"); l.Granted || l.Ticket != 2 {
		t.Fatalf("b shares file:/f with a: %+v", l)
	}
	if l := acquire(t, tb, "c", live, "target:z", "file:/f"); l.Granted {
		t.Fatalf("c behind b: %+v", l)
	}
	if l := acquire(t, tb, "d", live, "target:w", "file:/g"); !l.Granted {
		t.Fatalf("d shares nothing: %+v", l)
	}
	if err := tb.Release(owner("a")); err != nil {
		t.Fatal(err)
	}
	// c asks first, but b is older and shares its key.
	if l := acquire(t, tb, "c", live, "target:z", "file:/f"); l.Granted {
		t.Fatalf("c jumped the line: %+v", l)
	}
	if l := acquire(t, tb, "b", live, "target:y", "file:/f"); !l.Granted || l.Ticket != 2 {
		t.Fatalf("b after a: %+v", l)
	}
	if err := tb.Release(owner("b")); err != nil {
		t.Fatal(err)
	}
	if l := acquire(t, tb, "c", live, "target:z", "file:/f"); !l.Granted || l.Ticket != 3 {
		t.Fatalf("c after b: %+v", l)
	}
	for i := 0; i < 2; i++ {
		if err := tb.Release(owner("nobody")); err != nil {
			t.Fatalf("release of no lease: %v", err)
		}
	}
	// The table outlives the value that wrote it.
	ls, err := (Table{Path: tb.Path}).Leases()
	if err != nil || len(ls) != 2 {
		t.Fatalf("leases %+v, %v", ls, err)
	}
}

// A lease whose deploy no longer runs is dropped by the next deploy its
// keys block; an owner that cannot be asked about still blocks.
func TestLeaseOfAnEndedDeployIsDropped(t *testing.T) {
	tb := newTable(t)
	calls := 0
	acquire(t, tb, "gone", nil, "target:x")
	acquire(t, tb, "unknown", nil, "target:y")
	live := aliveSet{"deploy/gone": false, "deploy/next": true}.alive(&calls)
	if l := acquire(t, tb, "next", live, "target:x"); !l.Granted || calls != 1 {
		t.Fatalf("next: %+v after %d alive calls", l, calls)
	}
	l, blockers, err := tb.Acquire(context.Background(), owner("other"), []string{"target:y"}, time.Now(), live)
	if err != nil || l.Granted || len(blockers) != 1 || blockers[0].Owner != owner("unknown") {
		t.Fatalf("an owner alive could not judge must block: %+v %+v %v", l, blockers, err)
	}
}

// Many deploys of one target at once, through separate Table values (each
// call opens its own guard: flock excludes across open files and
// processes alike), never hold it together.
func TestLeaseExcludesConcurrentHolders(t *testing.T) {
	path := newTable(t).Path
	var holders, max atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb := Table{Path: path}
			o := Owner{WorkflowID: "deploy/" + string(rune('a'+i)), RunID: "r"}
			for round := 0; round < 5; round++ {
				for {
					l, _, err := tb.Acquire(context.Background(), o, []string{"target:x"}, time.Now(), nil)
					if err != nil {
						t.Error(err)
						return
					}
					if l.Granted {
						break
					}
					time.Sleep(time.Millisecond)
				}
				if n := holders.Add(1); n > max.Load() {
					max.Store(n)
				}
				time.Sleep(time.Millisecond)
				holders.Add(-1)
				if err := tb.Release(o); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d deploys held the target at once", max.Load())
	}
}

// A planted symlink or a corrupt table is refused with what to do, never
// followed or silently reset.
func TestLeaseTableRefusesPlantedAndCorruptFiles(t *testing.T) {
	for _, c := range []struct {
		name  string
		plant func(tb Table) error
		want  string
	}{
		{"symlinked table", func(tb Table) error { return os.Symlink("/etc/passwd", tb.Path) }, "symlink"},
		{"symlinked guard", func(tb Table) error { return os.Symlink("/etc/passwd", tb.Path+".lock") }, "symlink"},
		{"directory", func(tb Table) error { return os.Mkdir(tb.Path, 0o700) }, "not a regular file"},
		{"corrupt", func(tb Table) error { return os.WriteFile(tb.Path, []byte("{not json"), 0o600) }, "safe to delete"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(t)
			if err := os.MkdirAll(filepath.Dir(tb.Path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := c.plant(tb); err != nil {
				t.Fatal(err)
			}
			_, _, err := tb.Acquire(context.Background(), owner("a"), []string{"target:x"}, time.Now(), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

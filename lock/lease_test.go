package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var leaseT0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func newTable(t *testing.T) Table {
	return Table{Path: filepath.Join(t.TempDir(), "state", "locks.json")}
}

func owner(who string) Owner { return Owner{WorkflowID: "deploy-" + who, RunID: "run-" + who} }

// aliveFake answers Alive from its maps and records whom it was asked about.
type aliveFake struct {
	mu    sync.Mutex
	dead  map[string]bool
	fail  map[string]bool
	asked []string
}

func newAliveFake() *aliveFake { return &aliveFake{dead: map[string]bool{}, fail: map[string]bool{}} }

func (a *aliveFake) alive(_ context.Context, o Owner) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	who := strings.TrimPrefix(o.WorkflowID, "deploy-")
	a.asked = append(a.asked, who)
	if a.fail[who] {
		return false, errors.New("temporal unavailable")
	}
	return !a.dead[who], nil
}

func (a *aliveFake) takeAsked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.asked
	a.asked = nil
	return out
}

// step is one move of a scenario: an owner acquires (and is granted or
// not, blocked by whom, after asking about whom) or releases, or an owner's
// workflow dies or becomes impossible to check.
type step struct {
	op      string // "acquire", "release", "die", "unreachable"
	who     string
	keys    []string
	granted bool
	// blockers: "who(shared,keys)", with a trailing "?" when its owner could
	// not be checked.
	blockers []string
	asked    []string // whom alive was asked about, in order
}

func acq(who string, keys []string, granted bool, blockers []string, asked ...string) step {
	return step{op: "acquire", who: who, keys: keys, granted: granted, blockers: blockers, asked: asked}
}

func rel(who string) step { return step{op: "release", who: who} }

func keys(k ...string) []string { return k }

func blocked(b ...string) []string { return b }

func runSteps(t *testing.T, tb Table, fake *aliveFake, steps []step) {
	t.Helper()
	for i, s := range steps {
		now := leaseT0.Add(time.Duration(i) * time.Second)
		switch s.op {
		case "die":
			fake.dead[s.who] = true
		case "unreachable":
			fake.fail[s.who] = true
		case "release":
			if err := tb.Release(owner(s.who)); err != nil {
				t.Fatalf("step %d: release %s: %v", i, s.who, err)
			}
		case "acquire":
			granted, blockers, err := tb.Acquire(context.Background(), owner(s.who), s.keys, now, fake.alive)
			if err != nil {
				t.Fatalf("step %d: acquire %s %v: %v", i, s.who, s.keys, err)
			}
			var got []string
			for _, b := range blockers {
				g := fmt.Sprintf("%s(%s)", strings.TrimPrefix(b.Owner.WorkflowID, "deploy-"), strings.Join(b.Shared, ","))
				if b.AliveError != "" {
					g += "?"
				}
				got = append(got, g)
			}
			asked := fake.takeAsked()
			if granted != s.granted || !slices.Equal(got, s.blockers) || !slices.Equal(asked, s.asked) {
				t.Fatalf("step %d: acquire %s %v: granted %v, blockers %q, alive asked about %q; want granted %v, blockers %q, asked %q",
					i, s.who, s.keys, granted, got, asked, s.granted, s.blockers, s.asked)
			}
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
	}
}

func TestLeaseScenarios(t *testing.T) {
	k := keys("k")
	tests := []struct {
		name  string
		steps []step
		left  []string // the owners left in the table, oldest first
	}{{
		name: "uncontended and disjoint grants ask nobody",
		steps: []step{
			acq("A", keys("k1"), true, nil),
			acq("B", keys("k2"), true, nil),
			acq("C", keys("k3", "k4"), true, nil),
			acq("A", keys("k1"), true, nil), // a re-executed local activity
		},
		left: []string{"A", "B", "C"},
	}, {
		name: "disjoint keys side by side, a conflict waits",
		steps: []step{
			acq("A", keys("k1", "k2"), true, nil),
			acq("B", keys("k3"), true, nil),
			acq("C", keys("k3", "k4"), false, blocked("B(k3)"), "B"),
			acq("D", keys("k4"), false, blocked("C(k4)"), "C"),
			rel("B"),
			acq("C", keys("k3", "k4"), true, nil),
			acq("D", keys("k4"), false, blocked("C(k4)"), "C"),
		},
		left: []string{"A", "C", "D"},
	}, {
		name: "first come first served, whoever asks first after a release",
		steps: []step{
			acq("A", k, true, nil),
			acq("B", k, false, blocked("A(k)"), "A"),
			acq("C", k, false, blocked("A(k)", "B(k)"), "A", "B"),
			rel("A"),
			acq("C", k, false, blocked("B(k)"), "B"),
			acq("B", k, true, nil),
			acq("C", k, false, blocked("B(k)"), "B"),
			rel("B"),
			acq("C", k, true, nil),
		},
		left: []string{"C"},
	}, {
		name: "a younger waiter stays behind an older one when only one holder released",
		steps: []step{
			acq("A1", keys("k1"), true, nil),
			acq("A2", keys("k2"), true, nil),
			acq("B", keys("k1", "k2"), false, blocked("A1(k1)", "A2(k2)"), "A1", "A2"),
			acq("C", keys("k2"), false, blocked("A2(k2)", "B(k2)"), "A2", "B"),
			rel("A2"),
			acq("C", keys("k2"), false, blocked("B(k2)"), "B"),
			acq("B", keys("k1", "k2"), false, blocked("A1(k1)"), "A1"),
			rel("A1"),
			acq("C", keys("k2"), false, blocked("B(k2)"), "B"),
			acq("B", keys("k1", "k2"), true, nil),
			rel("B"),
			acq("C", keys("k2"), true, nil),
		},
		left: []string{"C"},
	}, {
		name: "a waiter sharing one key with an older waiter waits, a chain keeps its order",
		steps: []step{
			acq("A", keys("k1"), true, nil),
			acq("B", keys("k1", "k2"), false, blocked("A(k1)"), "A"),
			acq("C", keys("k2", "k3"), false, blocked("B(k2)"), "B"), // nobody holds k2 or k3
			acq("D", keys("k3"), false, blocked("C(k3)"), "C"),
			acq("E", keys("k4"), true, nil),
			rel("A"),
			acq("D", keys("k3"), false, blocked("C(k3)"), "C"),
			acq("C", keys("k2", "k3"), false, blocked("B(k2)"), "B"),
			acq("B", keys("k1", "k2"), true, nil),
			acq("C", keys("k2", "k3"), false, blocked("B(k2)"), "B"),
			rel("B"),
			acq("D", keys("k3"), false, blocked("C(k3)"), "C"),
			acq("C", keys("k2", "k3"), true, nil),
			rel("C"),
			acq("D", keys("k3"), true, nil),
		},
		left: []string{"D", "E"},
	}, {
		name: "a waiter leaving the line lets the next through",
		steps: []step{
			acq("A", k, true, nil),
			acq("B", k, false, blocked("A(k)"), "A"),
			acq("C", k, false, blocked("A(k)", "B(k)"), "A", "B"),
			rel("B"),
			rel("A"),
			acq("C", k, true, nil),
		},
		left: []string{"C"},
	}, {
		name: "a dead holder is removed and the waiter granted",
		steps: []step{
			acq("A", k, true, nil),
			acq("B", k, false, blocked("A(k)"), "A"),
			{op: "die", who: "A"},
			acq("B", k, true, nil, "A"),
		},
		left: []string{"B"},
	}, {
		name: "a dead older waiter is removed, a live one still blocks",
		steps: []step{
			acq("A", keys("k1"), true, nil),
			acq("B", keys("k1", "k2"), false, blocked("A(k1)"), "A"),
			acq("C", keys("k2"), false, blocked("B(k2)"), "B"),
			acq("D", keys("k1"), false, blocked("A(k1)", "B(k1)"), "A", "B"),
			{op: "die", who: "B"},
			acq("C", keys("k2"), true, nil, "B"),
			acq("D", keys("k1"), false, blocked("A(k1)"), "A"),
		},
		left: []string{"A", "C", "D"},
	}, {
		name: "a dead holder removed, the older waiter still first",
		steps: []step{
			acq("A", k, true, nil),
			acq("B", k, false, blocked("A(k)"), "A"),
			acq("C", k, false, blocked("A(k)", "B(k)"), "A", "B"),
			{op: "die", who: "A"},
			acq("C", k, false, blocked("B(k)"), "A", "B"),
			acq("B", k, true, nil),
		},
		left: []string{"B", "C"},
	}, {
		name: "an owner that cannot be checked blocks",
		steps: []step{
			acq("A", k, true, nil),
			{op: "unreachable", who: "A"},
			acq("B", k, false, blocked("A(k)?"), "A"),
			acq("B", k, false, blocked("A(k)?"), "A"),
		},
		left: []string{"A", "B"},
	}, {
		name: "releases are idempotent",
		steps: []step{
			rel("X"),
			acq("A", k, true, nil),
			rel("A"),
			rel("A"),
			acq("B", k, true, nil),
			rel("A"),
			acq("C", k, false, blocked("B(k)"), "B"),
		},
		left: []string{"B", "C"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(t)
			runSteps(t, tb, newAliveFake(), tt.steps)
			leases, err := tb.Leases()
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, l := range leases {
				left = append(left, strings.TrimPrefix(l.Owner.WorkflowID, "deploy-"))
			}
			if !slices.Equal(left, tt.left) {
				t.Fatalf("left in the table %q, want %q", left, tt.left)
			}
		})
	}
}

// A re-acquire returns the same answer and keeps the lease as it was: a
// holder stays granted, a waiter keeps its ticket and its Since.
func TestLeaseAcquireIdempotent(t *testing.T) {
	tb := newTable(t)
	fake := newAliveFake()
	ctx := context.Background()
	k := []string{"target:a", "file:/etc/x.pem"}
	for i := 0; i < 2; i++ {
		if ok, _, err := tb.Acquire(ctx, owner("A"), k, leaseT0.Add(time.Duration(i)*time.Minute), fake.alive); err != nil || !ok {
			t.Fatalf("A's acquire %d: granted %v, err %v", i, ok, err)
		}
	}
	// The same keys in another order, once more: still A's lease.
	if ok, _, err := tb.Acquire(ctx, owner("A"), []string{"file:/etc/x.pem", "target:a", "file:/etc/x.pem"}, leaseT0, fake.alive); err != nil || !ok {
		t.Fatalf("A's acquire, keys reordered: granted %v, err %v", ok, err)
	}
	for i := 0; i < 3; i++ {
		for _, who := range []string{"B", "C"} {
			if ok, _, err := tb.Acquire(ctx, owner(who), []string{"file:/etc/x.pem"}, leaseT0.Add(time.Duration(i)*time.Hour), fake.alive); err != nil || ok {
				t.Fatalf("%s's acquire %d: granted %v, err %v", who, i, ok, err)
			}
		}
	}
	leases, err := tb.Leases()
	if err != nil {
		t.Fatal(err)
	}
	want := []Lease{
		{Owner: owner("A"), Keys: k, Ticket: 1, Granted: true, Since: leaseT0},
		{Owner: owner("B"), Keys: []string{"file:/etc/x.pem"}, Ticket: 2, Since: leaseT0},
		{Owner: owner("C"), Keys: []string{"file:/etc/x.pem"}, Ticket: 3, Since: leaseT0},
	}
	if fmt.Sprint(leases) != fmt.Sprint(want) {
		t.Fatalf("leases\n%v\nwant\n%v", leases, want)
	}
}

func TestLeaseAcquireRefusesBadInput(t *testing.T) {
	fake := newAliveFake()
	tests := []struct {
		name  string
		o     Owner
		keys  []string
		alive Alive
		want  string
	}{
		{"no keys", owner("A"), nil, fake.alive, "no keys"},
		{"an empty key", owner("A"), []string{"target:a", ""}, fake.alive, "empty key"},
		{"no workflow id", Owner{RunID: "r"}, []string{"k"}, fake.alive, "workflow_id is empty"},
		{"no run id", Owner{WorkflowID: "w"}, []string{"k"}, fake.alive, "empty run_id"},
		{"no alive check", owner("A"), []string{"k"}, nil, "needs an Alive check"},
		{"other keys than its lease's", owner("H"), []string{"k", "k2"}, fake.alive, "asks for keys [k k2] but its lease is for [k]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(t)
			if ok, _, err := tb.Acquire(context.Background(), owner("H"), []string{"k"}, leaseT0, fake.alive); err != nil || !ok {
				t.Fatalf("H: granted %v, err %v", ok, err)
			}
			ok, _, err := tb.Acquire(context.Background(), tt.o, tt.keys, leaseT0, tt.alive)
			if err == nil || ok || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("granted %v, err %v; want an error containing %q", ok, err, tt.want)
			}
			if leases, err := tb.Leases(); err != nil || len(leases) != 1 {
				t.Fatalf("leases %v (err %v), want H's alone", leases, err)
			}
		})
	}
}

// The table outlives its Table value: another value (another process) sees
// the leases and continues the tickets; the files are the user's, 0600, in a
// directory created 0700.
func TestLeaseStatePersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "lib", "certctl")
	path := filepath.Join(dir, "locks.json")
	fake := newAliveFake()
	ctx := context.Background()
	if leases, err := (Table{Path: path}).Leases(); err != nil || leases != nil {
		t.Fatalf("a missing table: leases %v, err %v", leases, err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Leases created the state directory: %v", err)
	}
	if ok, _, err := (Table{Path: path}).Acquire(ctx, owner("A"), []string{"k"}, leaseT0, fake.alive); err != nil || !ok {
		t.Fatalf("A: granted %v, err %v", ok, err)
	}
	if ok, _, err := (Table{Path: path}).Acquire(ctx, owner("B"), []string{"k"}, leaseT0, fake.alive); err != nil || ok {
		t.Fatalf("B: granted %v, err %v", ok, err)
	}
	leases, err := (Table{Path: path}).Leases()
	if err != nil || len(leases) != 2 || !leases[0].Granted || leases[1].Granted || leases[1].Ticket != 2 {
		t.Fatalf("a new Table: leases %v, err %v", leases, err)
	}
	if err := (Table{Path: path}).Release(owner("A")); err != nil {
		t.Fatal(err)
	}
	if err := (Table{Path: path}).Release(owner("B")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (Table{Path: path}).Acquire(ctx, owner("C"), []string{"k"}, leaseT0, fake.alive); err != nil {
		t.Fatal(err)
	}
	leases, err = (Table{Path: path}).Leases()
	if err != nil || len(leases) != 1 || leases[0].Ticket != 3 {
		t.Fatalf("after A and B released, C: leases %v (err %v), want C with ticket 3 (tickets are never given twice)", leases, err)
	}
	for name, perm := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + ".lock": 0o600} {
		fi, err := os.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != perm || fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
			t.Errorf("%s: mode %v owner %d, want %v owned by %d", name, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, perm, os.Geteuid())
		}
	}
	if _, err := os.Lstat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left: %v", err)
	}
}

// A temp file left by a writer that died does not stop the next write.
func TestLeaseLeftoverTempReplaced(t *testing.T) {
	tb := newTable(t)
	if err := os.MkdirAll(filepath.Dir(tb.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tb.Path+".tmp", []byte(`{"version":1,"next_`), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := tb.Acquire(context.Background(), owner("A"), []string{"k"}, leaseT0, newAliveFake().alive); err != nil || !ok {
		t.Fatalf("granted %v, err %v", ok, err)
	}
	if leases, err := tb.Leases(); err != nil || len(leases) != 1 {
		t.Fatalf("leases %v, err %v", leases, err)
	}
}

func TestLeaseCorruptTableRefused(t *testing.T) {
	lease := func(who string, ticket int, granted bool, keys string) string {
		return fmt.Sprintf(`{"owner":{"workflow_id":"deploy-%s","run_id":"run-%s"},"keys":[%s],"ticket":%d,"granted":%v,"since":"2026-06-01T12:00:00Z"}`, who, who, keys, ticket, granted)
	}
	table := func(next int, leases ...string) string {
		return fmt.Sprintf(`{"version":1,"next_ticket":%d,"leases":[%s]}`, next, strings.Join(leases, ","))
	}
	tests := []struct{ name, content, why string }{
		{"not json", "locks\n", "invalid character"},
		{"empty", "", "EOF"},
		{"cut short", table(3, lease("A", 1, true, `"k"`))[:40], "unexpected EOF"},
		{"another version", `{"version":2,"next_ticket":1,"leases":[]}`, "version 2"},
		{"an unknown field", `{"version":1,"next_ticket":1,"leases":[],"holders":[]}`, "unknown field"},
		{"data after it", table(1) + "{}", "data after the table"},
		{"next ticket zero", table(0), "next_ticket is 0"},
		{"a ticket not below next", table(2, lease("A", 2, true, `"k"`)), "ticket 2"},
		{"a ticket twice", table(3, lease("A", 1, true, `"k1"`), lease("B", 1, false, `"k2"`)), "ticket 1 is given twice"},
		{"an owner twice", table(3, lease("A", 1, true, `"k1"`), lease("A", 2, false, `"k2"`)), "two leases"},
		{"a lease without keys", table(2, lease("A", 1, true, ``)), "no keys"},
		{"a lease without run", strings.Replace(table(2, lease("A", 1, true, `"k"`)), `"run-A"`, `""`, 1), "empty run_id"},
		{"two granted sharing a key", table(3, lease("A", 1, true, `"k1","k"`), lease("B", 2, true, `"k"`)), "both granted k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(t)
			if err := os.MkdirAll(filepath.Dir(tb.Path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tb.Path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, aerr := tb.Acquire(context.Background(), owner("C"), []string{"k"}, leaseT0, newAliveFake().alive)
			rerr := tb.Release(owner("A"))
			_, lerr := tb.Leases()
			for op, err := range map[string]error{"Acquire": aerr, "Release": rerr, "Leases": lerr} {
				if err == nil || !strings.Contains(err.Error(), tb.Path+" is corrupt") || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), "delete the file") {
					t.Errorf("%s: %v; want the path, %q and what to do", op, err, tt.why)
				}
			}
			if b, _ := os.ReadFile(tb.Path); string(b) != tt.content {
				t.Fatalf("the corrupt table was rewritten: %q", b)
			}
		})
	}
	// A sound table of the same shapes is read (the cases above fail for
	// their fault alone).
	tb := newTable(t)
	if err := os.MkdirAll(filepath.Dir(tb.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tb.Path, []byte(table(3, lease("A", 1, true, `"k1","k"`), lease("B", 2, false, `"k"`))), 0o600); err != nil {
		t.Fatal(err)
	}
	if leases, err := tb.Leases(); err != nil || len(leases) != 2 {
		t.Fatalf("a sound table: leases %v, err %v", leases, err)
	}
}

// A table file or guard that is a link, not a regular file, not the user's
// or open to others is refused, naming it, and what a link points at is
// never touched.
func TestLeaseUnsafeFilesRefused(t *testing.T) {
	tests := []struct {
		name  string
		guard bool // the guard is planted, not the table (Leases does not open the guard)
		root  bool // needs root (chown to another user)
		plant func(t *testing.T, path string)
		want  string
	}{
		{name: "table is a link", plant: plantLink, want: "is a symbolic link"},
		{name: "guard is a link", guard: true, plant: plantLink, want: "is a symbolic link"},
		{name: "table is a directory", plant: func(t *testing.T, p string) { must(t, os.Remove(p)); must(t, os.Mkdir(p, 0o700)) }, want: "is not a regular file (a directory)"},
		{name: "guard is a FIFO", guard: true, plant: func(t *testing.T, p string) { must(t, os.Remove(p)); must(t, syscall.Mkfifo(p, 0o600)) }, want: "is not a regular file (a FIFO)"},
		{name: "table open to others", plant: func(t *testing.T, p string) { must(t, os.Chmod(p, 0o644)) }, want: "has mode 0644"},
		{name: "guard open to group", guard: true, plant: func(t *testing.T, p string) { must(t, os.Chmod(p, 0o660)) }, want: "has mode 0660"},
		{name: "table of another user", root: true, plant: func(t *testing.T, p string) { must(t, os.Lchown(p, 65534, 65534)) }, want: "is owned by uid 65534"},
		{name: "guard of another user", guard: true, root: true, plant: func(t *testing.T, p string) { must(t, os.Lchown(p, 65534, 65534)) }, want: "is owned by uid 65534"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to give a file to another user")
			}
			tb := newTable(t)
			fake := newAliveFake()
			// A real table first: the plant replaces or alters its files.
			if ok, _, err := tb.Acquire(context.Background(), owner("A"), []string{"k"}, leaseT0, fake.alive); err != nil || !ok {
				t.Fatalf("A: granted %v, err %v", ok, err)
			}
			victim := tb.Path
			if tt.guard {
				victim += ".lock"
			}
			tt.plant(t, victim)
			_, _, aerr := tb.Acquire(context.Background(), owner("B"), []string{"k2"}, leaseT0, fake.alive)
			errs := map[string]error{"Acquire": aerr, "Release": tb.Release(owner("A"))}
			if !tt.guard {
				_, errs["Leases"] = tb.Leases()
			}
			for op, err := range errs {
				if err == nil || !strings.Contains(err.Error(), victim+" ") || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: %v; want an error naming %s and %q", op, err, victim, tt.want)
				}
			}
			if b, err := os.ReadFile(filepath.Join(filepath.Dir(tb.Path), "elsewhere")); err == nil && string(b) != "not the table\n" {
				t.Errorf("the link's target was written: %q", b)
			}
		})
	}
}

func plantLink(t *testing.T, p string) {
	t.Helper()
	elsewhere := filepath.Join(filepath.Dir(p), "elsewhere")
	must(t, os.WriteFile(elsewhere, []byte("not the table\n"), 0o600))
	must(t, os.Remove(p))
	must(t, os.Symlink(elsewhere, p))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// While another process holds the guard, Acquire waits, and gives up when
// its context ends.
func TestLeaseAcquireWaitsForTheGuard(t *testing.T) {
	tb := newTable(t)
	fake := newAliveFake()
	if ok, _, err := tb.Acquire(context.Background(), owner("A"), []string{"k"}, leaseT0, fake.alive); err != nil || !ok {
		t.Fatalf("A: granted %v, err %v", ok, err)
	}
	g, err := os.Open(tb.Path + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	must(t, syscall.Flock(int(g.Fd()), syscall.LOCK_EX))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err = tb.Acquire(ctx, owner("B"), []string{"k2"}, leaseT0, fake.alive)
	// It waited for the guard until the context ended, not a moment less:
	// the context is done when Acquire returns (no clock compared).
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil {
		t.Fatalf("acquire while the guard is held: %v (context: %v); want the context's deadline", err, ctx.Err())
	}
	must(t, syscall.Flock(int(g.Fd()), syscall.LOCK_UN))
	if ok, _, err := tb.Acquire(context.Background(), owner("B"), []string{"k2"}, leaseT0, fake.alive); err != nil || !ok {
		t.Fatalf("B once the guard is free: granted %v, err %v", ok, err)
	}
}

const envLeaseHelper = "CERTCTL_TEST_LEASE_HELPER"

// TestLeaseHelperProcess is not a test: it is a host-worker process of
// TestLeaseExclusiveAcrossProcesses.
func TestLeaseHelperProcess(t *testing.T) {
	spec := os.Getenv(envLeaseHelper)
	if spec == "" {
		t.Skip("helper process only")
	}
	f := strings.Split(spec, "|")
	iters, _ := strconv.Atoi(f[3])
	deadline, _ := strconv.ParseInt(f[4], 10, 64)
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, deadline))
	defer cancel()
	if err := hammer(ctx, Table{Path: f[0]}, f[1], f[2], iters); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// hammer takes the shared keys iters times as who, one fresh owner each
// time (a deploy), and in each turn checks it is alone: it creates the
// marker O_EXCL and increments the counter file by read-modify-write. The
// first participant to fail creates the file "failed", and every other one
// then stops (releasing what it holds or waits for), so a failure never
// leaves the others waiting for a holder that is gone.
func hammer(ctx context.Context, tb Table, dir, who string, iters int) (err error) {
	alive := func(context.Context, Owner) (bool, error) { return true, nil }
	marker, counter, failed := filepath.Join(dir, "held"), filepath.Join(dir, "counter"), filepath.Join(dir, "failed")
	var o Owner
	defer func() {
		if err != nil {
			_ = os.WriteFile(failed, []byte(who), 0o600)
			_ = tb.Release(o)
		}
	}()
	for i := 0; i < iters; i++ {
		o = Owner{WorkflowID: who, RunID: strconv.Itoa(i)}
		for {
			if _, err := os.Stat(failed); err == nil {
				return fmt.Errorf("%s: stopped, another participant failed", o)
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("%s: still not granted: %w", o, err)
			}
			ok, blockers, err := tb.Acquire(ctx, o, []string{"target:t", "file:/shared.pem"}, time.Now(), alive)
			if err != nil {
				return fmt.Errorf("%s: %w (blockers %v)", o, err, blockers)
			}
			if ok {
				break
			}
			time.Sleep(time.Millisecond)
		}
		m, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			held, _ := os.ReadFile(marker)
			return fmt.Errorf("%s was granted the keys while %s held them: %v", o, held, err)
		}
		_, _ = m.WriteString(o.String())
		m.Close()
		b, err := os.ReadFile(counter)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		n, _ := strconv.Atoi(string(b))
		time.Sleep(200 * time.Microsecond) // widen the window a second holder would hit
		if err := os.WriteFile(counter, []byte(strconv.Itoa(n+1)), 0o600); err != nil {
			return err
		}
		if err := os.Remove(marker); err != nil {
			return err
		}
		if err := tb.Release(o); err != nil {
			return fmt.Errorf("%s: %w", o, err)
		}
	}
	return nil
}

// Goroutines with their own Table values and child processes (the test
// binary re-executed) take the same keys in a loop: never two at once.
func TestLeaseExclusiveAcrossProcesses(t *testing.T) {
	const n, iters = 3, 12
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "locks.json")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for p := 0; p < n; p++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLeaseHelperProcess$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|proc-%d|%d|%d", envLeaseHelper, path, dir, p, iters, deadline.Add(-5*time.Second).UnixNano()))
		cmd.WaitDelay = 5 * time.Second
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Wait(); err != nil {
				errs <- fmt.Errorf("helper process: %v: %s", err, stderr.String())
			}
		}()
	}
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hammer(ctx, Table{Path: path}, dir, fmt.Sprintf("goroutine-%d", g), iters); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "counter"))
	if err != nil || string(b) != strconv.Itoa(2*n*iters) {
		t.Errorf("counter %q (err %v), want %d: turns overlapped", b, err, 2*n*iters)
	}
	if leases, err := (Table{Path: path}).Leases(); err != nil || len(leases) != 0 {
		t.Errorf("leases left %v, err %v", leases, err)
	}
}

// A guard replaced while Acquire waits for it is locked again by its new
// name: Acquire never works under a lock nobody else can see.
func TestLeaseGuardReplacedWhileWaiting(t *testing.T) {
	tb := newTable(t)
	fake := newAliveFake()
	if ok, _, err := tb.Acquire(context.Background(), owner("A"), []string{"k"}, leaseT0, fake.alive); err != nil || !ok {
		t.Fatalf("A: granted %v, err %v", ok, err)
	}
	guard := tb.Path + ".lock"
	old, err := os.Open(guard)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	must(t, syscall.Flock(int(old.Fd()), syscall.LOCK_EX))
	done := make(chan error, 1)
	go func() {
		_, _, err := tb.Acquire(context.Background(), owner("B"), []string{"k2"}, leaseT0, fake.alive)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // B opens the old guard and waits on it
	must(t, os.WriteFile(guard+".new", nil, 0o600))
	repl, err := os.Open(guard + ".new")
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close()
	must(t, syscall.Flock(int(repl.Fd()), syscall.LOCK_EX))
	must(t, os.Rename(guard+".new", guard))
	must(t, syscall.Flock(int(old.Fd()), syscall.LOCK_UN))
	select {
	case err := <-done:
		t.Fatalf("Acquire returned (%v) while the guard now at %s was locked", err, guard)
	case <-time.After(200 * time.Millisecond):
	}
	must(t, syscall.Flock(int(repl.Fd()), syscall.LOCK_UN))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

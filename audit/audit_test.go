package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func ev(id, event string) Event {
	return Event{ID: id, Time: time.Date(2026, 6, 7, 20, 31, 30, 0, time.UTC), Event: event, RequestID: "r-1",
		WorkflowID: "approval/r-1", RunID: "run", ProfileID: "p-prod", State: "pending", RequestedBy: "alice", Via: "start"}
}

func TestAppendOnceByID(t *testing.T) {
	l := &Log{Path: filepath.Join(t.TempDir(), "sub", "audit.jsonl")}
	for i, want := range []bool{true, false, false} {
		written, err := l.Append(ev("approval/r-1:run#1", Requested))
		if err != nil || written != want {
			t.Fatalf("append %d: written %v err %v", i, written, err)
		}
	}
	if written, err := l.Append(ev("approval/r-1:run#2", Approved)); err != nil || !written {
		t.Fatalf("second event: %v %v", written, err)
	}
	got, err := Read(l.Path)
	if err != nil || len(got) != 2 || got[0].Event != Requested || got[1].Event != Approved {
		t.Fatalf("read %+v %v", got, err)
	}
	fi, _ := os.Stat(l.Path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(l.Path))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %04o", di.Mode().Perm())
	}
}

// An id that is a prefix of another must not shadow it.
func TestAppendIDIsExact(t *testing.T) {
	l := &Log{Path: filepath.Join(t.TempDir(), "audit.jsonl")}
	for _, id := range []string{"w:r#1", "w:r#10", "w:r#1"} {
		if _, err := l.Append(ev(id, Requested)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := Read(l.Path)
	if len(got) != 2 {
		t.Fatalf("%d lines, want 2", len(got))
	}
}

// A crash mid-line leaves a torn line: the next event starts a line of its
// own, and the torn text (even with the same id) does not count as written.
func TestAppendAfterTornLine(t *testing.T) {
	l := &Log{Path: filepath.Join(t.TempDir(), "audit.jsonl")}
	if _, err := l.Append(ev("w:r#1", Requested)); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(l.Path, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString(`{"id":"w:r#2","time":"2026-06-07T20:31:30Z","ev`)
	f.Close()
	written, err := l.Append(ev("w:r#2", Approved))
	if err != nil || !written {
		t.Fatalf("written %v err %v", written, err)
	}
	got, _ := Read(l.Path)
	if len(got) != 2 || got[1].ID != "w:r#2" {
		t.Fatalf("%+v", got)
	}
	b, _ := os.ReadFile(l.Path)
	if !strings.HasSuffix(string(b), "\n") || strings.Count(string(b), "\n") != 3 {
		t.Fatalf("file:\n%s", b)
	}
}

func TestAppendConcurrentWritersOneLineEach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		l := &Log{Path: path} // separate Logs: only flock serialises them
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := l.Append(ev(fmt.Sprintf("w:r#%d", i), Requested)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	got, err := Read(path)
	if err != nil || len(got) != 20 {
		t.Fatalf("%d lines (err %v), want 20", len(got), err)
	}
}

func TestClosing(t *testing.T) {
	e := ev("x", Approved)
	if e.Closing() {
		t.Fatal("an approval that leaves the request pending does not close it")
	}
	e.State = "approved"
	if !e.Closing() {
		t.Fatal("the approval that approved it closes it")
	}
	if r := ev("x", Refused); r.Closing() {
		t.Fatal("a refusal never closes")
	}
}

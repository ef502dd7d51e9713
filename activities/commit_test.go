package activities

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCommitRenamesAll(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	r := mustCommit(t, pl)
	if len(r.Committed) != 3 {
		t.Errorf("commit %+v, want 3 committed", r)
	}
	assertFilesHold(t, x.tg, x.s)
	for _, sf := range pl.staged.Files {
		if exists(sf.Temp) {
			t.Errorf("temp %s left after commit", sf.Temp)
		}
	}
	for _, pf := range pl.in.Plan.Files {
		if m := mode(t, pf.Path); m != pf.Mode.Perm() {
			t.Errorf("%s mode %v, planned %v", pf.Path, m, pf.Mode)
		}
	}
}

func TestCommitAgainIsAlreadyDone(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	first := mustCommit(t, pl)
	before := snapshot(t, x.tg.Config.CertPath, x.tg.Config.ChainPath, x.tg.Config.KeyPath)
	listing := listDir(t, x.dir)
	time.Sleep(20 * time.Millisecond)
	r := mustCommit(t, pl)
	if !reflect.DeepEqual(r, first) {
		t.Errorf("second commit reports %+v, the first %+v: a retry must report the same", r, first)
	}
	assertUnchanged(t, before)
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("second commit changed the directory: %v -> %v", listing, got)
	}
}

func TestCommitAfterCrashFinishesRenames(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	// The first attempt renamed the cert, then the worker died.
	first := pl.staged.Files[0]
	if err := os.Rename(first.Temp, first.Path); err != nil {
		t.Fatal(err)
	}
	r := mustCommit(t, pl)
	if len(r.Committed) != 3 {
		t.Errorf("commit after crash %+v, want all 3 committed", r)
	}
	assertFilesHold(t, x.tg, x.s)
	for _, sf := range pl.staged.Files {
		if exists(sf.Temp) {
			t.Errorf("temp %s left after commit", sf.Temp)
		}
	}
}

func TestCommitLost(t *testing.T) {
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	keyTemp := pl.staged.Files[2].Temp
	if err := os.Remove(keyTemp); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Commit(ctx, pl.commitInput())
	ae := appErr(t, err, "CommitLost")
	if !ae.NonRetryable() {
		t.Errorf("CommitLost is retryable")
	}
	if !strings.Contains(err.Error(), x.tg.Config.KeyPath) {
		t.Errorf("error does not name %s: %v", x.tg.Config.KeyPath, err)
	}
	if got := read(t, x.tg.Config.KeyPath); !bytes.Equal(got, []byte(x.old.KeyPEM)) {
		t.Errorf("the live key changed")
	}
}

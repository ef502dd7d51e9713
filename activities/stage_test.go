package activities

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

func TestStageWritesTempsBesideDestinations(t *testing.T) {
	x := newFixture(t)
	x.tg.Config.CertOwner = "nobody"
	pl := prepare(t, x.tg, x.s, false)
	if pl.staged.PrivateDir != "" {
		t.Errorf("a real deploy has a private dir %q", pl.staged.PrivateDir)
	}
	if len(pl.staged.Files) != 3 {
		t.Fatalf("staged %+v", pl.staged.Files)
	}
	want := setBytes(x.s)
	for i, r := range roles {
		sf := pl.staged.Files[i]
		pf := fileOf(t, pl.in.Plan, r)
		p := pathOf(x.tg, r)
		if sf.Path != p || sf.Temp != p+".certctl-tmp."+strconv.FormatInt(pl.in.Stamp, 10) || sf.Temp != TempPath(p, pl.in.Stamp) {
			t.Errorf("staged %s as %+v", r, sf)
		}
		if filepath.Dir(sf.Temp) != filepath.Dir(p) {
			t.Errorf("temp %s is not beside %s", sf.Temp, p)
		}
		if sf.SHA256 != pf.SHA256 {
			t.Errorf("%s: staged sha %s, planned %s", r, sf.SHA256, pf.SHA256)
		}
		if got := read(t, sf.Temp); !bytes.Equal(got, want[r]) {
			t.Errorf("temp for %s does not hold the new bytes", r)
		}
		if m := mode(t, sf.Temp); m != pf.Mode.Perm() {
			t.Errorf("temp for %s mode %v, planned %v", r, m, pf.Mode)
		}
		if uid, gid := owner(t, sf.Temp); uid != pf.UID || gid != pf.GID {
			t.Errorf("temp for %s owner %d:%d, planned %d:%d", r, uid, gid, pf.UID, pf.GID)
		}
	}
	if c := fileOf(t, pl.in.Plan, "cert"); c.UID != 65534 {
		t.Errorf("cert owner uid %d, want nobody", c.UID)
	}
	assertFilesHold(t, x.tg, x.old)

	// Staging again (a retried attempt) rewrites the same temps, nothing more.
	listing := listDir(t, x.dir)
	again, err := (&Activities{}).Stage(ctx, pl.in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, pl.staged) {
		t.Errorf("retried Stage %+v, first %+v", again, pl.staged)
	}
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("retried Stage changed the directory: %v -> %v", listing, got)
	}
}

func TestStageDryRunWritesNothingBesideDestination(t *testing.T) {
	x := newFixture(t)
	listing := listDir(t, x.dir)
	pl := prepare(t, x.tg, x.s, true)
	t.Cleanup(func() { os.RemoveAll(pl.staged.PrivateDir) })
	if pl.staged.PrivateDir == "" {
		t.Fatal("dry run has no private dir")
	}
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("dry run wrote beside the destination: %v -> %v", listing, got)
	}
	if m := mode(t, pl.staged.PrivateDir); m&0o077 != 0 {
		t.Errorf("private dir mode %v lets others in", m)
	}
	want := setBytes(x.s)
	for i, r := range roles {
		sf := pl.staged.Files[i]
		if filepath.Dir(sf.Temp) != pl.staged.PrivateDir {
			t.Errorf("dry-run temp %s is outside %s", sf.Temp, pl.staged.PrivateDir)
		}
		if got := read(t, sf.Temp); !bytes.Equal(got, want[r]) {
			t.Errorf("dry-run temp for %s does not hold the new bytes", r)
		}
		if m := mode(t, sf.Temp); m != fileOf(t, pl.in.Plan, r).Mode.Perm() {
			t.Errorf("dry-run temp for %s mode %v", r, m)
		}
	}
	assertFilesHold(t, x.tg, x.old)
}

// A retried dry-run Stage reuses its private directory instead of leaving a
// second copy of the key behind.
func TestStageDryRunRetryReusesPrivateDir(t *testing.T) {
	x := newFixture(t, empty())
	pl := prepare(t, newTarget(x.dir), x.s, true)
	t.Cleanup(func() { os.RemoveAll(pl.staged.PrivateDir) })
	again, err := (&Activities{}).Stage(ctx, pl.in)
	if again.PrivateDir != "" && again.PrivateDir != pl.staged.PrivateDir {
		t.Cleanup(func() { os.RemoveAll(again.PrivateDir) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, pl.staged) {
		t.Errorf("retried dry-run Stage %+v, first %+v", again, pl.staged)
	}
}

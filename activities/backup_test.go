package activities

import (
	"bytes"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestBackupCopiesExistingFiles(t *testing.T) {
	x := newFixture(t)
	if err := os.Chmod(x.tg.Config.CertPath, 0o640); err != nil {
		t.Fatal(err)
	}
	pin := planInput(x.tg, x.s, newStamp())
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	b, err := (&Activities{}).Backup(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 3 {
		t.Fatalf("want 3 backups, got %+v", b.Files)
	}
	want := setBytes(x.old)
	for i, r := range roles {
		p := pathOf(x.tg, r)
		if b.Files[i].Path != p || b.Files[i].Backup != p+".certctl-bak."+strconv.FormatInt(pin.Stamp, 10) {
			t.Errorf("backup %d: %+v", i, b.Files[i])
		}
		if got := read(t, b.Files[i].Backup); !bytes.Equal(got, want[r]) {
			t.Errorf("backup of %s does not hold the original bytes", p)
		}
		if bm, om := mode(t, b.Files[i].Backup), mode(t, p); bm != om {
			t.Errorf("backup of %s has mode %v, original %v", p, bm, om)
		}
	}
	if m := mode(t, b.Files[2].Backup); m != 0o600 {
		t.Errorf("key backup mode %v, want 0600", m)
	}
	assertFilesHold(t, x.tg, x.old)
}

func TestBackupOnlyExistingFiles(t *testing.T) {
	x := newFixture(t)
	if err := os.Remove(x.tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pin := planInput(x.tg, x.s, newStamp())
	b, err := (&Activities{}).Backup(ctx, StageInput{PlanInput: pin, Plan: mustPlan(t, pin)})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 2 || b.Files[0].Path != x.tg.Config.CertPath || b.Files[1].Path != x.tg.Config.KeyPath {
		t.Errorf("backups %+v, want cert and key only", b.Files)
	}
}

func TestBackupRetryChangesNothing(t *testing.T) {
	x := newFixture(t)
	pin := planInput(x.tg, x.s, newStamp())
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	a := &Activities{}
	first, err := a.Backup(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range first.Files {
		paths = append(paths, f.Backup, f.Path)
	}
	before := snapshot(t, paths...)
	listing := listDir(t, x.dir)
	time.Sleep(20 * time.Millisecond) // a rewrite would show in mtime
	second, err := a.Backup(ctx, in)
	if err != nil {
		t.Fatalf("retried Backup: %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("retried Backup returned %+v, first %+v", second, first)
	}
	assertUnchanged(t, before)
	if got := listDir(t, x.dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("retried Backup changed the directory: %v -> %v", listing, got)
	}
}

func TestBackupTornIsRewritten(t *testing.T) {
	x := newFixture(t)
	pin := planInput(x.tg, x.s, newStamp())
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	a := &Activities{}
	first, err := a.Backup(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	keyBak := first.Files[2].Backup
	if err := os.Truncate(keyBak, 17); err != nil {
		t.Fatal(err)
	}
	second, err := a.Backup(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatalf("Backup after a torn backup: %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("result %+v, want %+v", second, first)
	}
	if got := read(t, keyBak); !bytes.Equal(got, []byte(x.old.KeyPEM)) {
		t.Errorf("torn key backup was not rewritten (%d bytes)", len(got))
	}
	if m := mode(t, keyBak); m != 0o600 {
		t.Errorf("rewritten key backup mode %v, want 0600", m)
	}
}

// A world-readable key is not carried into its backup either.
func TestBackupOfWorldReadableKeyIsNotWorldReadable(t *testing.T) {
	x := newFixture(t)
	if err := os.Chmod(x.tg.Config.KeyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	req := Request{Target: x.tg, Stamp: newStamp()}
	a := &Activities{}
	plan, err := a.Plan(ctx, PlanInput{Request: req, Material: x.s.Material})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Backup(ctx, StageInput{PlanInput: PlanInput{Request: req, Material: x.s.Material}, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Files {
		fi, err := os.Stat(f.Backup)
		if err != nil {
			t.Fatal(err)
		}
		if f.Path == x.tg.Config.KeyPath && fi.Mode().Perm()&0o007 != 0 {
			t.Fatalf("key backup %s is mode %04o", f.Backup, fi.Mode().Perm())
		}
		if f.Path == x.tg.Config.CertPath && fi.Mode().Perm() != 0o644 {
			t.Fatalf("cert backup mode %04o, want the cert's 0644", fi.Mode().Perm())
		}
	}
}

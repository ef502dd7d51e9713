package activities

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
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

// A rename the kernel refuses fails Commit with an error naming the file,
// retryable and of no contract type: the workflow retries it and then ends
// CommitFailed, restoring the backups (workflows/commit_failed_test.go).
// Here the chain is bind-mounted over its destination, as a container's
// subPath mount is: rename onto a mount point is EBUSY. The cert, renamed
// before it, is put back by Rollback; nothing was reloaded.
func TestCommitOntoMountPointFails(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to bind-mount over a destination")
	}
	x := newFixture(t)
	pl := prepare(t, x.tg, x.s, false)
	src := filepath.Join(t.TempDir(), "mounted-chain.pem")
	if err := os.WriteFile(src, []byte(x.old.ChainPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	chain := x.tg.Config.ChainPath
	if err := syscall.Mount(src, chain, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(chain, syscall.MNT_DETACH) })

	res, err := (&Activities{}).Commit(ctx, pl.commitInput())
	noKey(t, err)
	if err == nil {
		t.Fatalf("Commit over a mount point succeeded: %+v", res)
	}
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), chain) {
		t.Errorf("error %v, want EBUSY naming %s", err, chain)
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		t.Errorf("a failed rename is %s (%v): the workflow would not retry it", ae.Type(), err)
	}
	if got := read(t, x.tg.Config.CertPath); !bytes.Equal(got, setBytes(x.s)["cert"]) {
		t.Fatalf("the cert, before the chain in the plan, was not committed")
	}
	if got := read(t, x.tg.Config.KeyPath); !bytes.Equal(got, []byte(x.old.KeyPEM)) {
		t.Errorf("the key, after the failed chain, was committed")
	}

	rb, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	if err != nil {
		t.Fatalf("Rollback after the failed Commit: %v", err)
	}
	if len(rb.Restored) != 3 {
		t.Errorf("rollback restored %v, want all three files", rb.Restored)
	}
	assertFilesHold(t, x.tg, x.old)
}

// A step's input that does not match the plan it names is PlanMismatch, and
// nothing live is touched: Stage given other material than the plan's, and
// Commit and Validate given staged files that are not the plan's (other
// bytes, another deploy's temp names, another count, a dry run's files).
func TestPlanMismatchRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(a *Activities, x *fixture, pl pipeline) error
	}{
		{"stage: material is not the plan's", func(a *Activities, x *fixture, pl pipeline) error {
			in := pl.in
			in.Material = x.old.Material
			_, err := a.Stage(ctx, in)
			return err
		}},
		{"commit: staged bytes are not the plan's", func(a *Activities, x *fixture, pl pipeline) error {
			in := pl.commitInput()
			in.Staged.Files[0].SHA256 = material.SHA256([]byte(x.old.CertPEM))
			_, err := a.Commit(ctx, in)
			return err
		}},
		{"commit: another deploy's temp names", func(a *Activities, x *fixture, pl pipeline) error {
			in := pl.commitInput()
			for i, f := range in.Staged.Files {
				in.Staged.Files[i].Temp = TempPath(f.Path, in.Stamp+1)
			}
			_, err := a.Commit(ctx, in)
			return err
		}},
		{"commit: fewer staged files than planned", func(a *Activities, x *fixture, pl pipeline) error {
			in := pl.commitInput()
			in.Staged.Files = in.Staged.Files[:2]
			_, err := a.Commit(ctx, in)
			return err
		}},
		{"commit: a dry run's staged files", func(a *Activities, x *fixture, pl pipeline) error {
			in := pl.commitInput()
			in.Staged.PrivateDir = dryRunDir(in.Request)
			_, err := a.Commit(ctx, in)
			return err
		}},
		{"validate: staged bytes are not the plan's", func(a *Activities, x *fixture, pl pipeline) error {
			in := pl.validateInput()
			in.Staged.Files[0].SHA256 = material.SHA256([]byte(x.old.CertPEM))
			_, err := a.Validate(ctx, in)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newFixture(t)
			pl := prepare(t, x.tg, x.s, false)
			before := snapshot(t, x.tg.Config.CertPath, x.tg.Config.ChainPath, x.tg.Config.KeyPath)
			appErr(t, tc.run(&Activities{}, x, pl), contract.PlanMismatch)
			assertUnchanged(t, before)
		})
	}
}

package activities

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/safefs"
)

// Rollback puts every destination back as it was before the deploy: a file
// that existed is restored from its backup (atomically, by rename); a file
// that did not exist is removed. Either only while the file still holds this
// deploy's bytes (or the old ones: already done): a file holding anything
// else was written by someone else since (another deploy committed) and is
// left as it is, ConcurrentChange. A file that existed is never deleted for
// want of a backup: that is an error naming it.
func (a *Activities) Rollback(ctx context.Context, in RollbackInput) (RollbackResult, error) {
	if s, ok := a.store(in.Target); ok {
		return s.Rollback(ctx, in)
	}
	var res RollbackResult
	if err := checkPlan(in.Request, in.Plan); err != nil {
		return res, err
	}
	fsys, release, err := a.fsFor(ctx, in.Target)
	if err != nil {
		return res, temporal.NewNonRetryableApplicationError("rollback: "+errMessage(err)+"; backups: "+describeBackups(in.Backups), contract.RollbackFailed, err, res)
	}
	defer release()
	baks := map[string]string{}
	for _, b := range in.Backups.Files {
		baks[b.Path] = b.Backup
	}
	var problems []string
	errType := contract.RollbackFailed
	fail := func(err error) {
		if contract.Of(err) == contract.ConcurrentChange {
			errType = contract.ConcurrentChange
		}
		problems = append(problems, errMessage(err))
	}
	for _, f := range in.Plan.Files {
		if f.DirID == (safefs.ID{}) {
			// Planned by a worker from before directory identities: a deploy
			// in flight across the upgrade must still be able to roll back.
			// Every operation stays no-follow and the directory is checked
			// secure; only the swap since Plan cannot be seen.
			if d, err := fsys.OpenDir(filepath.Dir(f.Path)); err == nil {
				f.DirID = d.ID()
				d.Close()
			}
		}
		bak, hasBak := baks[f.Path]
		if f.Exists && !hasBak {
			problems = append(problems, fmt.Sprintf("%s has no backup; left as it is", f.Path))
			continue
		}
		if f.Exists && bak != BackupPath(f.Path, in.Stamp) {
			fail(mismatch("backup %s of %s is not this deploy's (%s); %s left as it is", bak, f.Path, BackupPath(f.Path, in.Stamp), f.Path))
			continue
		}
		restored, err := rollbackOne(fsys, f, in.Stamp)
		if err != nil {
			fail(err)
			continue
		}
		if !f.Exists {
			res.Removed = append(res.Removed, f.Path)
			continue
		}
		res.Restored = append(res.Restored, f.Path)
		if restored {
			failpoint.Hit(fmt.Sprintf("rollback:after-file-%d", len(res.Restored)))
		}
	}
	if len(problems) > 0 {
		return res, temporal.NewNonRetryableApplicationError(
			"rollback incomplete: "+strings.Join(problems, "; ")+"; backups: "+describeBackups(in.Backups),
			errType, nil, res)
	}
	return res, nil
}

// rollbackOne restores (or, for a file the deploy created, removes) one
// destination; changed reports whether it wrote anything.
func rollbackOne(fsys FS, f PlannedFile, stamp int64) (changed bool, err error) {
	d, base, err := openPlanned(fsys, f)
	if err != nil {
		return false, err
	}
	defer d.Close()
	now, err := holds(d, base)
	if err != nil {
		return false, concurrent("%s: %v; left as it is", f.Path, err)
	}
	switch {
	case f.Exists && now == f.CurrentSHA256, !f.Exists && now == "":
		return false, nil // already restored, or never changed
	case now != f.SHA256:
		return false, concurrent("%s no longer holds this deploy's bytes (someone else wrote it since, another deploy?); left as it is", f.Path)
	case !f.Exists:
		if err := d.Remove(base); err != nil {
			return false, fmt.Errorf("remove new file %s: %w", f.Path, err)
		}
		return true, d.Sync()
	}
	bak := filepath.Base(BackupPath(f.Path, stamp))
	// Owner and mode are the backup's (Backup gave it the original's), not
	// the plan's, which comes from the input.
	data, binfo, err := d.ReadFile(bak)
	if err != nil {
		return false, fmt.Errorf("restore %s from %s: %w", f.Path, d.Join(bak), err)
	}
	if material.SHA256(data) != f.CurrentSHA256 {
		return false, fmt.Errorf("backup %s no longer holds what %s held before the deploy; %s left as it is", d.Join(bak), f.Path, f.Path)
	}
	tmp := filepath.Base(TempPath(f.Path, stamp))
	if err := clearName(d, tmp, "rollback's temp file"); err != nil {
		return false, err
	}
	mode := binfo.Perm()
	if f.HoldsKey {
		mode &^= 0o007
	}
	if _, err := createExcl(d, tmp, "rollback's temp file", data, mode, binfo.UID, binfo.GID); err != nil {
		return false, wrapf(err, "restore %s from %s", f.Path, d.Join(bak))
	}
	// Last look before the rename: still this deploy's bytes.
	if now, err := holds(d, base); err != nil || now != f.SHA256 {
		_ = d.Remove(tmp)
		return false, concurrent("%s changed during rollback (someone else is writing it); left as it is", f.Path)
	}
	if err := d.Rename(tmp, base); err != nil {
		_ = d.Remove(tmp)
		return false, fmt.Errorf("restore %s from %s: %w", f.Path, d.Join(bak), err)
	}
	return true, d.Sync()
}

func describeBackups(b Backups) string {
	if len(b.Files) == 0 {
		return "none"
	}
	var parts []string
	for _, f := range b.Files {
		parts = append(parts, f.Path+" <- "+f.Backup)
	}
	return strings.Join(parts, ", ")
}

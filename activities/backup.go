package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
)

// Backup copies every existing destination to <path>.certctl-bak.<stamp>,
// with the original's owner and mode, fsynced, before anything live changes.
// The copy is created exclusively beside the file, through the directory
// Plan saw; the worker records it (see backup ledger) so retention only ever
// prunes backups it made.
func (a *Activities) Backup(ctx context.Context, in StageInput) (Backups, error) {
	if s, ok := a.store(in.Target); ok {
		return s.Backup(ctx, in)
	}
	var out Backups
	if err := checkPlan(in.Request, in.Plan); err != nil {
		return out, err
	}
	fsys, release, err := a.fsFor(ctx, in.Target)
	if err != nil {
		return out, err
	}
	defer release()
	for _, f := range in.Plan.Files {
		if !f.Exists {
			continue
		}
		bak := BackupPath(f.Path, in.Stamp)
		if err := a.backupOne(fsys, f, in.Stamp); err != nil {
			return out, err
		}
		out.Files = append(out.Files, Backup{Path: f.Path, Backup: bak})
		failpoint.Hit(fmt.Sprintf("backup:after-file-%d", len(out.Files)))
	}
	failpoint.Hit("backup:done")
	return out, nil
}

func (a *Activities) backupOne(fsys FS, f PlannedFile, stamp int64) error {
	d, base, err := openPlanned(fsys, f)
	if err != nil {
		return err
	}
	defer d.Close()
	bak := filepath.Base(BackupPath(f.Path, stamp))
	// A key's backup is never readable by others, even when the key was
	// (Plan drops those bits from the live key too).
	var clear os.FileMode
	if f.HoldsKey {
		clear = 0o007
	}
	// A retry finds a complete backup (same bytes as the untouched live
	// file, owned as the live file) and keeps it; a torn one is rewritten.
	if sum, info, err := d.SHA256(bak); err == nil && sum == f.CurrentSHA256 && info.UID == f.CurrentUID && info.Nlink == 1 {
		return a.recordBackup(backupRecord{Where: fsys.Where(), Path: []byte(f.Path), Backup: []byte(d.Join(bak)), Stamp: stamp, ID: info.ID, UID: info.UID})
	}
	if err := clearName(d, bak, "backup"); err != nil {
		return err
	}
	data, info, err := d.ReadFile(base)
	if err != nil {
		return fmt.Errorf("back up %s: %w", f.Path, err)
	}
	if material.SHA256(data) != f.CurrentSHA256 {
		return concurrent("%s changed while it was being backed up (someone else is writing it)", f.Path)
	}
	id, err := createExcl(d, bak, "backup", data, info.Perm()&^clear, info.UID, info.GID)
	if err != nil {
		return wrapf(err, "back up %s", f.Path)
	}
	if err := d.Sync(); err != nil {
		return err
	}
	return a.recordBackup(backupRecord{Where: fsys.Where(), Path: []byte(f.Path), Backup: []byte(d.Join(bak)), Stamp: stamp, ID: id, UID: info.UID})
}

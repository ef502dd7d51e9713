package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.temporal.io/sdk/log"
)

// Cleanup removes what a deploy leaves behind. Always: staged temp files and
// a dry run's private directory. After success: backups beyond the
// retention, oldest first, counting and removing only backups this worker's
// ledger names (a file planted with a backup's name is neither). After a
// failure before Commit: this deploy's own backups, which copy files that
// never changed (a backup of a file that did change is kept, whatever the
// caller says).
//
// This deploy's temps, backups and private directory are found by the names
// derived from its stamp, never from in.Staged or in.Backups: when Backup or
// Stage fails, its result never reaches the workflow, and an input naming
// other files is not trusted.
func (a *Activities) Cleanup(ctx context.Context, in CleanupInput) (CleanupResult, error) {
	if s, ok := a.store(in.Target); ok {
		return s.Cleanup(ctx, in)
	}
	var res CleanupResult
	log := logFor(ctx)
	if err := checkPlan(in.Request, in.Plan); err != nil {
		return res, err
	}
	fsys, release, err := a.fsFor(ctx, in.Target)
	if err != nil {
		return res, err
	}
	defer release()
	if in.DryRun {
		if d := dryRunDir(in.Request); ownPrivateDir(d) {
			if err := os.RemoveAll(d); err != nil {
				return res, err
			}
		}
	} else {
		for _, f := range in.Plan.Files {
			cleanupTemp(fsys, log, f, in.Stamp)
		}
	}
	switch {
	case in.Succeeded:
		if err := a.pruneBackups(fsys, log, in.Plan, in.Target.Config.Retention()); err != nil {
			return res, err
		}
	case !in.DryRun:
		for _, f := range in.Plan.Files {
			if f.Exists {
				a.dropOwnBackup(fsys, log, f, in.Stamp)
			}
		}
	}
	recs, err := a.backupRecords()
	if err != nil {
		return res, err
	}
	for _, f := range in.Plan.Files {
		for _, r := range newestFirst(recs, fsys.Where(), f.Path) {
			if present(fsys, r) {
				res.Backups = append(res.Backups, string(r.Backup))
			}
		}
	}
	if in.Release {
		if err := a.leases().Release(ownerOf(ctx)); err != nil {
			return res, fmt.Errorf("release the lease: %w", err)
		}
		res.Released = true
	}
	return res, nil
}

// cleanupTemp removes this deploy's temp file of f, when it is a regular
// file in the directory Plan saw.
func cleanupTemp(fsys FS, log log.Logger, f PlannedFile, stamp int64) {
	d, _, err := openPlanned(fsys, f)
	if err != nil {
		log.Warn("cleanup: directory not as planned; temp file left", "path", f.Path, "error", err)
		return
	}
	defer d.Close()
	tmp := filepath.Base(TempPath(f.Path, stamp))
	if info, err := d.Lstat(tmp); err == nil && info.IsRegular() {
		if err := d.Remove(tmp); err == nil {
			log.Info("cleanup: removed", "path", d.Join(tmp))
			_ = d.Sync()
		}
	}
}

// dropOwnBackup removes this deploy's backup of f after a failure before
// Commit, while f still holds what it held before the deploy.
func (a *Activities) dropOwnBackup(fsys FS, log log.Logger, f PlannedFile, stamp int64) {
	d, base, err := openPlanned(fsys, f)
	if err != nil {
		return
	}
	defer d.Close()
	if sum, err := holds(d, base); err != nil || sum != f.CurrentSHA256 {
		return
	}
	bak := BackupPath(f.Path, stamp)
	recs, err := a.backupRecords()
	if err != nil {
		return
	}
	for _, r := range recs {
		if r.Where == fsys.Where() && string(r.Backup) == bak && r.Stamp == stamp && d.RemoveIf(filepath.Base(bak), r.ID) == nil {
			log.Info("cleanup: removed", "path", bak)
			_ = d.Sync()
		}
	}
	_ = a.forgetBackups(func(r backupRecord) bool { return r.Where == fsys.Where() && !present(fsys, r) })
}

// pruneBackups keeps the newest keep backups of each planned file among
// those the ledger names and that are still the files the worker made
// (same inode, still owned as when made), and removes the others of those.
func (a *Activities) pruneBackups(fsys FS, log log.Logger, p Plan, keep int) error {
	recs, err := a.backupRecords()
	if err != nil {
		return err
	}
	for _, f := range p.Files {
		d, _, err := openPlanned(fsys, f)
		if err != nil {
			log.Warn("cleanup: directory not as planned; backups not pruned", "path", f.Path, "error", err)
			continue
		}
		n := 0
		for _, r := range newestFirst(recs, fsys.Where(), f.Path) {
			if filepath.Dir(string(r.Backup)) != d.Path() || !present(fsys, r) {
				continue
			}
			if n++; n <= keep {
				continue
			}
			if err := d.RemoveIf(filepath.Base(string(r.Backup)), r.ID); err == nil {
				log.Info("cleanup: removed", "path", string(r.Backup))
			}
		}
		_ = d.Sync()
		d.Close()
	}
	return a.forgetBackups(func(r backupRecord) bool { return r.Where == fsys.Where() && !present(fsys, r) })
}

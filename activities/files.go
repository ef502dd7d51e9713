package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/target"
)

// File name markers. A temp or backup file is "<path><marker><unix-nanos>".
const (
	TempMarker   = ".certctl-tmp."
	BackupMarker = ".certctl-bak."
)

// TempPath and BackupPath name this deploy's files for path.
func TempPath(path string, stamp int64) string {
	return path + TempMarker + strconv.FormatInt(stamp, 10)
}

// BackupPath names the backup of path taken by the deploy with stamp.
func BackupPath(path string, stamp int64) string {
	return path + BackupMarker + strconv.FormatInt(stamp, 10)
}

// resolveOwnership applies DESIGN promise 3: explicit setting, then the
// existing destination's, then the connector's default for new files, then
// 0600 for anything holding a key.
func resolveOwnership(f connectors.File, existing *safefs.Info, owners []string) (pf PlannedFile, err error) {
	pf.UID, pf.GID = os.Getuid(), os.Getgid()
	pf.OwnerFrom = "process"
	switch {
	case f.Mode != nil:
		pf.Mode, pf.ModeFrom = *f.Mode, "explicit"
	case existing != nil:
		pf.Mode, pf.ModeFrom = target.Mode(existing.Perm()), "existing"
	case f.DefaultMode != 0:
		pf.Mode, pf.ModeFrom = target.Mode(f.DefaultMode), "connector-default"
	case f.HoldsKey:
		pf.Mode, pf.ModeFrom = 0o600, "key-fallback"
	default:
		pf.Mode, pf.ModeFrom = 0o644, "fallback"
	}
	switch {
	case f.Owner != "":
		pf.UID, pf.GID, err = lookupOwner(f.Owner)
		if err != nil {
			return pf, err
		}
		pf.OwnerFrom = "explicit"
	case existing != nil:
		pf.UID, pf.GID, pf.OwnerFrom = existing.UID, existing.GID, "existing"
	default:
		for _, name := range owners {
			if u, err := user.Lookup(name); err == nil {
				pf.UID, _ = strconv.Atoi(u.Uid)
				pf.GID, _ = strconv.Atoi(u.Gid)
				pf.OwnerFrom = "connector-default"
				break
			}
		}
	}
	return pf, nil
}

// lookupOwner reads "user" or "user:group" (names or numeric ids).
func lookupOwner(spec string) (uid, gid int, err error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return 0, 0, fmt.Errorf("owner %q: no such user", name)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	if hasGroup {
		g, err := user.LookupGroup(group)
		if err != nil {
			if g, err = user.LookupGroupId(group); err != nil {
				return 0, 0, fmt.Errorf("owner %q: no such group %q", spec, group)
			}
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	return uid, gid, nil
}

func concurrent(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), contract.ConcurrentChange, nil)
}

func mismatch(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), contract.PlanMismatch, nil)
}

// insecure turns a safefs.InsecureError into InsecurePath; other errors are
// returned as they are.
func insecure(err error) error {
	var ie *safefs.InsecureError
	if errors.As(err, &ie) {
		return temporal.NewNonRetryableApplicationError(err.Error(), contract.InsecurePath, nil, ie.Dir)
	}
	return err
}

// openPlanned opens the directory of a planned destination for a writing
// step: still safe (CheckSecure, as in Plan) and still the very directory
// Plan saw (its device and inode), so a directory swapped since Plan, for a
// link or another directory, is ConcurrentChange with nothing written.
func openPlanned(pf PlannedFile) (*safefs.Dir, string, error) {
	dir, base := filepath.Dir(pf.Path), filepath.Base(pf.Path)
	if pf.DirID == (safefs.ID{}) {
		return nil, "", mismatch("%s: the plan has no identity for directory %s (planned by an older worker?): deploy again", pf.Path, dir)
	}
	if err := safefs.CheckSecure(dir, pf.UID); err != nil {
		var ie *safefs.InsecureError
		if errors.As(err, &ie) {
			return nil, "", insecure(err)
		}
		return nil, "", concurrent("%s: directory %s is no longer the one planned: %v; nothing written", pf.Path, dir, err)
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return nil, "", concurrent("%s: directory %s is no longer the one planned: %v; nothing written", pf.Path, dir, err)
	}
	if d.ID() != pf.DirID {
		d.Close()
		return nil, "", concurrent("%s: directory %s was replaced since Plan (%s, planned %s); nothing written", pf.Path, dir, d.ID(), pf.DirID)
	}
	return d, base, nil
}

// clearName makes name free for an exclusive create: a regular file there
// is a torn copy from an earlier attempt of this step (the name carries this
// deploy's stamp) and is removed; anything else (a planted link, a
// directory, a FIFO) is ConcurrentChange and is left alone.
func clearName(d *safefs.Dir, name, what string) error {
	info, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.IsRegular() {
		return concurrent("%s %s is not a regular file this deploy wrote (a %s, owner uid %d): someone who can write %s planted it; nothing written through it",
			what, d.Join(name), fileType(info), info.UID, d.Path())
	}
	return d.Remove(name)
}

func fileType(i safefs.Info) string {
	switch {
	case i.IsSymlink():
		return "symbolic link"
	case i.IsDir():
		return "directory"
	case i.IsRegular():
		return "regular file"
	}
	return "special file"
}

// createExcl creates name in d exclusively; a name taken between clearName
// and the create is ConcurrentChange.
func createExcl(d *safefs.Dir, name, what string, data []byte, mode os.FileMode, uid, gid int) (safefs.ID, error) {
	id, err := d.CreateExcl(name, data, mode, uid, gid)
	if errors.Is(err, fs.ErrExist) {
		return id, concurrent("%s %s appeared while this deploy was creating it: someone who can write %s is interfering; nothing written through it", what, d.Join(name), d.Path())
	}
	return id, err
}

// holds reports the SHA-256 of name's bytes, "" when it does not exist, or
// an error (a link or non-regular file included).
func holds(d *safefs.Dir, name string) (string, error) {
	sum, _, err := d.SHA256(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return sum, err
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkStaged refuses staged files that are not the ones this deploy derives
// from its plan and stamp: a Temp that is not TempPath(Path, Stamp) (or, in a
// dry run, a file of this worker's private directory for the deploy) is
// PlanMismatch.
func checkStaged(req Request, plan Plan, st Staged) error {
	if len(st.Files) != len(plan.Files) {
		return mismatch("staged %d files, the plan has %d", len(st.Files), len(plan.Files))
	}
	if st.PrivateDir != "" && (!req.DryRun || st.PrivateDir != dryRunDir(req) || !ownPrivateDir(st.PrivateDir)) {
		return mismatch("staged private directory %s is not this worker's private directory for the deploy", st.PrivateDir)
	}
	for i, s := range st.Files {
		pf := plan.Files[i]
		want := TempPath(pf.Path, req.Stamp)
		if st.PrivateDir != "" {
			want = filepath.Join(st.PrivateDir, dryRunName(i, pf.Path))
		}
		if s.Path != pf.Path || s.Temp != want || s.SHA256 != pf.SHA256 {
			return mismatch("staged file %s (temp %s) is not the planned %s (temp %s)", s.Path, s.Temp, pf.Path, want)
		}
	}
	return nil
}

func dryRunName(i int, path string) string { return fmt.Sprintf("%d-%s", i, filepath.Base(path)) }

// Backup copies every existing destination to <path>.certctl-bak.<stamp>,
// with the original's owner and mode, fsynced, before anything live changes.
// The copy is created exclusively beside the file, through the directory
// Plan saw; the worker records it (see backup ledger) so retention only ever
// prunes backups it made.
func (a *Activities) Backup(ctx context.Context, in StageInput) (Backups, error) {
	var out Backups
	for _, f := range in.Plan.Files {
		if !f.Exists {
			continue
		}
		bak := BackupPath(f.Path, in.Stamp)
		if err := a.backupOne(f, in.Stamp); err != nil {
			return out, err
		}
		out.Files = append(out.Files, Backup{Path: f.Path, Backup: bak})
		failpoint.Hit(fmt.Sprintf("backup:after-file-%d", len(out.Files)))
	}
	failpoint.Hit("backup:done")
	return out, nil
}

func (a *Activities) backupOne(f PlannedFile, stamp int64) error {
	d, base, err := openPlanned(f)
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
		return a.recordBackup(backupRecord{Path: []byte(f.Path), Backup: []byte(d.Join(bak)), Stamp: stamp, ID: info.ID, UID: info.UID})
	}
	if err := clearName(d, bak, "backup"); err != nil {
		return err
	}
	data, info, err := d.ReadFile(base)
	if err != nil {
		return fmt.Errorf("back up %s: %w", f.Path, err)
	}
	if sha(data) != f.CurrentSHA256 {
		return concurrent("%s changed while it was being backed up (someone else is writing it)", f.Path)
	}
	id, err := createExcl(d, bak, "backup", data, info.Perm()&^clear, info.UID, info.GID)
	if err != nil {
		return fmt.Errorf("back up %s: %w", f.Path, err)
	}
	if err := d.Sync(); err != nil {
		return err
	}
	return a.recordBackup(backupRecord{Path: []byte(f.Path), Backup: []byte(d.Join(bak)), Stamp: stamp, ID: id, UID: info.UID})
}

// Stage writes each file's new bytes to <path>.certctl-tmp.<stamp> beside its
// destination (same filesystem, so Commit's rename is atomic), created
// exclusively, owner and mode set before the bytes go in. A dry run stages
// into a private directory.
func (a *Activities) Stage(ctx context.Context, in StageInput) (Staged, error) {
	_, files, err := layout(in.Request, in.Material)
	if err != nil {
		return Staged{}, err
	}
	var out Staged
	var private *safefs.Dir
	if in.DryRun {
		dir, err := makeDryRunDir(in.Request)
		if err != nil {
			return out, err
		}
		out.PrivateDir = dir
		if private, err = safefs.OpenDir(dir); err != nil {
			return out, err
		}
		defer private.Close()
	} else {
		// A worker starting after a crash sweeps leftovers from these.
		var dirs []string
		for _, f := range files {
			dirs = append(dirs, filepath.Dir(f.Path))
		}
		if err := recordStagedDirs(a.stateDir(), dirs); err != nil {
			return out, fmt.Errorf("record staged directories: %w", err)
		}
	}
	byPath := map[string]PlannedFile{}
	for _, pf := range in.Plan.Files {
		byPath[pf.Path] = pf
	}
	for i, f := range files {
		pf, ok := byPath[f.Path]
		if !ok {
			return out, mismatch("stage: %s is not in the plan", f.Path)
		}
		if sha(f.Bytes) != pf.SHA256 {
			return out, mismatch("stage: bytes for %s differ from the plan", f.Path)
		}
		tmp, err := stageOne(private, i, pf, f.Bytes, in.Stamp)
		if err != nil {
			return out, err
		}
		out.Files = append(out.Files, StagedFile{Path: f.Path, Temp: tmp, SHA256: pf.SHA256})
		failpoint.Hit(fmt.Sprintf("stage:after-file-%d", len(out.Files)))
	}
	failpoint.Hit("stage:done")
	return out, nil
}

// stageOne writes one staged file, beside its destination or (private not
// nil) into the dry run's private directory, and returns its path.
func stageOne(private *safefs.Dir, i int, pf PlannedFile, data []byte, stamp int64) (string, error) {
	d, name := private, dryRunName(i, pf.Path)
	if d == nil {
		var err error
		if d, _, err = openPlanned(pf); err != nil {
			return "", err
		}
		defer d.Close()
		name = filepath.Base(TempPath(pf.Path, stamp))
	}
	if err := clearName(d, name, "staged file"); err != nil {
		return "", err
	}
	if _, err := createExcl(d, name, "staged file", data, pf.Mode.Perm(), pf.UID, pf.GID); err != nil {
		return "", fmt.Errorf("stage %s: %w", pf.Path, err)
	}
	return d.Join(name), d.Sync()
}

// dryRunDir is where a dry run stages. It is named by the deploy, so a
// retried Stage reuses it and Cleanup finds it even when Stage's result was
// lost (a failed activity returns none to the workflow).
func dryRunDir(req Request) string {
	id := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return '_'
	}, req.Target.TargetID)
	return filepath.Join(os.TempDir(), fmt.Sprintf("certctl-dryrun-%s-%d", id, req.Stamp))
}

// makeDryRunDir creates dryRunDir, or reuses it when it is already this
// process's own private directory.
func makeDryRunDir(req Request) (string, error) {
	dir := dryRunDir(req)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if !ownPrivateDir(dir) {
		return "", fmt.Errorf("%s exists and is not this worker's private directory", dir)
	}
	return dir, nil
}

// ownPrivateDir reports whether dir is a directory (not a link) owned by this
// process's user that no one else can enter.
func ownPrivateDir(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// Commit renames every staged file over its destination (renameat within
// the directory Plan saw) and fsyncs the directories. Retried after a crash
// it finishes the renames not yet done: a destination already holding the
// new bytes with its temp gone is done.
func (a *Activities) Commit(ctx context.Context, in CommitInput) (CommitResult, error) {
	var res CommitResult
	if in.Staged.PrivateDir != "" {
		return res, mismatch("commit: a dry run's staged files (%s) are never committed", in.Staged.PrivateDir)
	}
	if err := checkStaged(in.Request, in.Plan, in.Staged); err != nil {
		return res, err
	}
	renamed, already := 0, 0
	for i, pf := range in.Plan.Files {
		did, err := commitOne(pf, in.Staged.Files[i].Temp)
		if err != nil {
			return res, err
		}
		res.Committed = append(res.Committed, pf.Path)
		if !did {
			already++
			continue
		}
		renamed++
		failpoint.Hit(fmt.Sprintf("commit:after-rename-%d", renamed+already))
	}
	if already > 0 {
		logFor(ctx).Info("commit: an earlier attempt had already renamed some files", "already_renamed", already, "renamed_now", renamed)
	}
	failpoint.Hit("commit:done")
	return res, nil
}

func commitOne(pf PlannedFile, temp string) (renamed bool, err error) {
	d, base, err := openPlanned(pf)
	if err != nil {
		return false, err
	}
	defer d.Close()
	tmp := filepath.Base(temp)
	if info, err := d.Lstat(tmp); err == nil {
		if !info.IsRegular() {
			return false, concurrent("commit %s: staged file %s is now a %s: someone who can write %s replaced it; nothing committed", pf.Path, temp, fileType(info), d.Path())
		}
		if err := d.Rename(tmp, base); err != nil {
			return false, fmt.Errorf("commit %s: %w", pf.Path, err)
		}
		return true, d.Sync()
	}
	if sum, err := holds(d, base); err == nil && sum == pf.SHA256 {
		return false, nil
	}
	return false, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("commit %s: staged file %s is gone and the destination does not hold the new bytes", pf.Path, temp),
		contract.CommitLost, nil)
}

// Rollback puts every destination back as it was before the deploy: a file
// that existed is restored from its backup (atomically, by rename); a file
// that did not exist is removed. Either only while the file still holds this
// deploy's bytes (or the old ones: already done): a file holding anything
// else was written by someone else since (another deploy committed) and is
// left as it is, ConcurrentChange. A file that existed is never deleted for
// want of a backup: that is an error naming it.
func (a *Activities) Rollback(ctx context.Context, in RollbackInput) (RollbackResult, error) {
	var res RollbackResult
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
			if d, err := safefs.OpenDir(filepath.Dir(f.Path)); err == nil {
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
		restored, err := rollbackOne(f, in.Stamp)
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
func rollbackOne(f PlannedFile, stamp int64) (changed bool, err error) {
	d, base, err := openPlanned(f)
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
	data, _, err := d.ReadFile(bak)
	if err != nil {
		return false, fmt.Errorf("restore %s from %s: %w", f.Path, d.Join(bak), err)
	}
	if sha(data) != f.CurrentSHA256 {
		return false, fmt.Errorf("backup %s no longer holds what %s held before the deploy; %s left as it is", d.Join(bak), f.Path, f.Path)
	}
	tmp := filepath.Base(TempPath(f.Path, stamp))
	if err := clearName(d, tmp, "rollback's temp file"); err != nil {
		return false, err
	}
	mode := f.CurrentMode.Perm()
	if f.HoldsKey {
		mode &^= 0o007
	}
	if _, err := createExcl(d, tmp, "rollback's temp file", data, mode, f.CurrentUID, f.CurrentGID); err != nil {
		return false, fmt.Errorf("restore %s from %s: %w", f.Path, d.Join(bak), err)
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

// errMessage is an application error's message, or err's.
func errMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	return err.Error()
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
	var res CleanupResult
	log := logFor(ctx)
	if in.DryRun {
		if d := dryRunDir(in.Request); ownPrivateDir(d) {
			if err := os.RemoveAll(d); err != nil {
				return res, err
			}
		}
	} else {
		for _, f := range in.Plan.Files {
			cleanupTemp(log, f, in.Stamp)
		}
	}
	switch {
	case in.Succeeded:
		if err := a.pruneBackups(log, in.Plan, in.Target.Config.Retention()); err != nil {
			return res, err
		}
	case !in.DryRun:
		for _, f := range in.Plan.Files {
			if f.Exists {
				a.dropOwnBackup(log, f, in.Stamp)
			}
		}
	}
	recs, err := a.backupRecords()
	if err != nil {
		return res, err
	}
	for _, f := range in.Plan.Files {
		for _, r := range newestFirst(recs, f.Path) {
			if present(r) {
				res.Backups = append(res.Backups, string(r.Backup))
			}
		}
	}
	return res, nil
}

// cleanupTemp removes this deploy's temp file of f, when it is a regular
// file in the directory Plan saw.
func cleanupTemp(log log.Logger, f PlannedFile, stamp int64) {
	d, _, err := openPlanned(f)
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
func (a *Activities) dropOwnBackup(log log.Logger, f PlannedFile, stamp int64) {
	d, base, err := openPlanned(f)
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
		if string(r.Backup) == bak && r.Stamp == stamp && d.RemoveIf(filepath.Base(bak), r.ID) == nil {
			log.Info("cleanup: removed", "path", bak)
			_ = d.Sync()
		}
	}
	_ = a.forgetBackups(func(r backupRecord) bool { return !present(r) })
}

// pruneBackups keeps the newest keep backups of each planned file among
// those the ledger names and that are still the files the worker made
// (same inode, still owned as when made), and removes the others of those.
func (a *Activities) pruneBackups(log log.Logger, p Plan, keep int) error {
	recs, err := a.backupRecords()
	if err != nil {
		return err
	}
	for _, f := range p.Files {
		d, _, err := openPlanned(f)
		if err != nil {
			log.Warn("cleanup: directory not as planned; backups not pruned", "path", f.Path, "error", err)
			continue
		}
		n := 0
		for _, r := range newestFirst(recs, f.Path) {
			if filepath.Dir(string(r.Backup)) != d.Path() || !present(r) {
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
	return a.forgetBackups(func(r backupRecord) bool { return !present(r) })
}

// logFor is the activity's logger, or a silent one outside an activity.
func logFor(ctx context.Context) log.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

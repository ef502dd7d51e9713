package activities

import (
	"bytes"
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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/outcome"
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

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// resolveOwnership applies DESIGN promise 3: explicit setting, then the
// existing destination's, then the connector's default for new files, then
// 0600 for anything holding a key.
func resolveOwnership(f connectors.File, existing fs.FileInfo, owners []string) (pf PlannedFile, err error) {
	pf.UID, pf.GID = os.Getuid(), os.Getgid()
	pf.OwnerFrom = "process"
	var st *syscall.Stat_t
	if existing != nil {
		st, _ = existing.Sys().(*syscall.Stat_t)
	}
	switch {
	case f.Mode != nil:
		pf.Mode, pf.ModeFrom = *f.Mode, "explicit"
	case existing != nil:
		pf.Mode, pf.ModeFrom = target.Mode(existing.Mode().Perm()), "existing"
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
	case st != nil:
		pf.UID, pf.GID, pf.OwnerFrom = int(st.Uid), int(st.Gid), "existing"
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

// writeFileSynced writes data to path (created 0600 so nothing can read it
// before its owner and mode are set), sets owner and mode, then fsyncs.
// The file is not visible at its final name until the caller renames it.
func writeFileSynced(path string, data []byte, mode os.FileMode, uid, gid int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = func() error {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		if err := f.Chmod(mode); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		return f.Sync()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}

// copyFileSynced copies src to dst with src's owner and mode less the bits
// in clear, fsynced.
func copyFileSynced(src, dst string, clear os.FileMode) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	uid, gid := os.Getuid(), os.Getgid()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	return writeFileSynced(dst, data, fi.Mode().Perm()&^clear, uid, gid)
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

func syncDirs(paths []string) error {
	seen := map[string]bool{}
	for _, p := range paths {
		d := filepath.Dir(p)
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// sameBytes reports whether path holds exactly the bytes whose SHA-256 is sum.
func sameBytes(path, sum string) bool {
	got, err := fileSHA256(path)
	return err == nil && got == sum
}

// backupsOf lists the backups of path, newest first (by their stamp).
func backupsOf(path string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(path) + BackupMarker + "*")
	if err != nil {
		return nil, err
	}
	type b struct {
		name  string
		stamp int64
	}
	var bs []b
	for _, m := range matches {
		s, err := strconv.ParseInt(strings.TrimPrefix(m, path+BackupMarker), 10, 64)
		if err != nil {
			continue // not one of ours
		}
		bs = append(bs, b{m, s})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].stamp > bs[j].stamp })
	out := make([]string, len(bs))
	for i := range bs {
		out[i] = bs[i].name
	}
	return out, nil
}

func globEscape(p string) string {
	var buf bytes.Buffer
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			buf.WriteByte('\\')
		}
		buf.WriteRune(r)
	}
	return buf.String()
}

// Backup copies every existing destination to <path>.certctl-bak.<stamp>,
// with the original's owner and mode, fsynced, before anything live changes.
func (a *Activities) Backup(ctx context.Context, in StageInput) (Backups, error) {
	var out Backups
	var written []string
	for _, f := range in.Plan.Files {
		if !f.Exists {
			continue
		}
		bak := BackupPath(f.Path, in.Stamp)
		// A retry finds a complete backup (same bytes as the untouched live
		// file) and keeps it; a torn one is rewritten.
		if !sameBytes(bak, f.CurrentSHA256) {
			// A key's backup is never readable by others, even when the key
			// was (Plan drops those bits from the live key too).
			var clear os.FileMode
			if f.HoldsKey {
				clear = 0o007
			}
			if err := copyFileSynced(f.Path, bak, clear); err != nil {
				return out, fmt.Errorf("back up %s: %w", f.Path, err)
			}
			if !sameBytes(bak, f.CurrentSHA256) {
				return out, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("%s changed while it was being backed up (someone else is writing it)", f.Path), "ConcurrentChange", nil)
			}
		}
		written = append(written, bak)
		failpoint.Hit(fmt.Sprintf("backup:after-file-%d", len(written)))
		out.Files = append(out.Files, Backup{Path: f.Path, Backup: bak})
	}
	err := syncDirs(written)
	failpoint.Hit("backup:done")
	return out, err
}

// Stage writes each file's new bytes to <path>.certctl-tmp.<stamp> beside its
// destination (same filesystem, so Commit's rename is atomic), owner and mode
// set before the bytes go in. A dry run stages into a private directory.
func (a *Activities) Stage(ctx context.Context, in StageInput) (Staged, error) {
	_, files, err := layout(in.Request, in.Material)
	if err != nil {
		return Staged{}, err
	}
	var out Staged
	if in.DryRun {
		dir, err := makeDryRunDir(in.Request)
		if err != nil {
			return out, err
		}
		out.PrivateDir = dir
	}
	if !in.DryRun {
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
	var temps []string
	for i, f := range files {
		pf, ok := byPath[f.Path]
		if !ok {
			return out, temporal.NewNonRetryableApplicationError("stage: "+f.Path+" is not in the plan", "PlanMismatch", nil)
		}
		if sum := sha256.Sum256(f.Bytes); hex.EncodeToString(sum[:]) != pf.SHA256 {
			return out, temporal.NewNonRetryableApplicationError("stage: bytes for "+f.Path+" differ from the plan", "PlanMismatch", nil)
		}
		tmp := TempPath(f.Path, in.Stamp)
		if in.DryRun {
			tmp = filepath.Join(out.PrivateDir, fmt.Sprintf("%d-%s", i, filepath.Base(f.Path)))
		}
		if err := writeFileSynced(tmp, f.Bytes, pf.Mode.Perm(), pf.UID, pf.GID); err != nil {
			return out, fmt.Errorf("stage %s: %w", f.Path, err)
		}
		temps = append(temps, tmp)
		failpoint.Hit(fmt.Sprintf("stage:after-file-%d", len(temps)))
		out.Files = append(out.Files, StagedFile{Path: f.Path, Temp: tmp, SHA256: pf.SHA256})
	}
	err = syncDirs(temps)
	failpoint.Hit("stage:done")
	return out, err
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

// Commit renames every staged file over its destination and fsyncs the
// directories. Retried after a crash it finishes the renames not yet done: a
// destination already holding the new bytes with its temp gone is done.
func (a *Activities) Commit(ctx context.Context, in CommitInput) (CommitResult, error) {
	var res CommitResult
	var paths []string
	renamed, already := 0, 0
	for _, s := range in.Staged.Files {
		paths = append(paths, s.Path)
		if _, err := os.Lstat(s.Temp); err == nil {
			if err := os.Rename(s.Temp, s.Path); err != nil {
				return res, fmt.Errorf("commit %s: %w", s.Path, err)
			}
			renamed++
			res.Committed = append(res.Committed, s.Path)
			failpoint.Hit(fmt.Sprintf("commit:after-rename-%d", renamed+already))
			continue
		}
		if sameBytes(s.Path, s.SHA256) {
			already++
			res.Committed = append(res.Committed, s.Path)
			continue
		}
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("commit %s: staged file %s is gone and the destination does not hold the new bytes", s.Path, s.Temp),
			"CommitLost", nil)
	}
	err := syncDirs(paths)
	if already > 0 {
		logFor(ctx).Info("commit: an earlier attempt had already renamed some files", "already_renamed", already, "renamed_now", renamed)
	}
	failpoint.Hit("commit:done")
	return res, err
}

// Rollback puts every destination back as it was before the deploy: a file
// that existed is restored from its backup (atomically, by rename); a file
// that did not exist is removed. A file that existed is never deleted for
// want of a backup: that is an error naming it.
func (a *Activities) Rollback(ctx context.Context, in RollbackInput) (RollbackResult, error) {
	var res RollbackResult
	baks := map[string]string{}
	for _, b := range in.Backups.Files {
		baks[b.Path] = b.Backup
	}
	var problems []string
	var touched []string
	for _, f := range in.Plan.Files {
		if !f.Exists {
			if err := os.Remove(f.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				problems = append(problems, fmt.Sprintf("remove new file %s: %v", f.Path, err))
				continue
			}
			res.Removed = append(res.Removed, f.Path)
			touched = append(touched, f.Path)
			continue
		}
		bak, ok := baks[f.Path]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s has no backup; left as it is", f.Path))
			continue
		}
		if sameBytes(f.Path, f.CurrentSHA256) {
			res.Restored = append(res.Restored, f.Path) // already restored, or never changed
			continue
		}
		tmp := TempPath(f.Path, in.Stamp)
		if err := copyFileSynced(bak, tmp, 0); err != nil {
			problems = append(problems, fmt.Sprintf("restore %s from %s: %v", f.Path, bak, err))
			continue
		}
		if !sameBytes(tmp, f.CurrentSHA256) {
			_ = os.Remove(tmp)
			problems = append(problems, fmt.Sprintf("backup %s no longer holds what %s held before the deploy; %s left as it is", bak, f.Path, f.Path))
			continue
		}
		if err := os.Rename(tmp, f.Path); err != nil {
			_ = os.Remove(tmp)
			problems = append(problems, fmt.Sprintf("restore %s from %s: %v", f.Path, bak, err))
			continue
		}
		res.Restored = append(res.Restored, f.Path)
		touched = append(touched, f.Path)
		failpoint.Hit(fmt.Sprintf("rollback:after-file-%d", len(touched)))
	}
	if err := syncDirs(touched); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return res, temporal.NewNonRetryableApplicationError(
			"rollback incomplete: "+strings.Join(problems, "; ")+"; backups: "+describeBackups(in.Backups),
			outcome.RollbackFailed, nil, res)
	}
	return res, nil
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
// retention, oldest first. After a failure before Commit: this deploy's own
// backups, which copy files that never changed (a backup of a file that did
// change is kept, whatever the caller says).
//
// This deploy's temps, backups and private directory are found by the names
// derived from its stamp, not only through in.Staged and in.Backups: when
// Backup or Stage fails, its result never reaches the workflow.
func (a *Activities) Cleanup(ctx context.Context, in CleanupInput) (CleanupResult, error) {
	var res CleanupResult
	var dirs []string
	rm := func(p string) {
		if err := os.Remove(p); err == nil {
			logFor(ctx).Info("cleanup: removed", "path", p)
			dirs = append(dirs, p)
		}
	}
	for _, s := range in.Staged.Files {
		if in.Staged.PrivateDir == "" {
			rm(s.Temp)
		}
	}
	if !in.DryRun {
		for _, f := range in.Plan.Files {
			rm(TempPath(f.Path, in.Stamp))
		}
	}
	if in.Staged.PrivateDir != "" {
		if err := os.RemoveAll(in.Staged.PrivateDir); err != nil {
			return res, err
		}
	}
	if in.DryRun {
		if d := dryRunDir(in.Request); ownPrivateDir(d) {
			if err := os.RemoveAll(d); err != nil {
				return res, err
			}
		}
	}
	if in.Succeeded {
		keep := in.Target.Config.Retention()
		for _, f := range in.Plan.Files {
			baks, err := backupsOf(f.Path)
			if err != nil {
				return res, err
			}
			for i, b := range baks {
				if i >= keep {
					rm(b)
				}
			}
		}
	} else if !in.DryRun {
		for _, f := range in.Plan.Files {
			if f.Exists && sameBytes(f.Path, f.CurrentSHA256) {
				rm(BackupPath(f.Path, in.Stamp))
			}
		}
	}
	for _, f := range in.Plan.Files {
		baks, err := backupsOf(f.Path)
		if err != nil {
			return res, err
		}
		res.Backups = append(res.Backups, baks...)
	}
	return res, syncDirs(dirs)
}

// logFor is the activity's logger, or a silent one outside an activity.
func logFor(ctx context.Context) log.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

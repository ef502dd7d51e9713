package activities

import (
	"context"
	"fmt"
	"path/filepath"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
)

// Commit renames every staged file over its destination (renameat within
// the directory Plan saw) and fsyncs the directories. Retried after a crash
// it finishes the renames not yet done: a destination already holding the
// new bytes with its temp gone is done.
func (a *Activities) Commit(ctx context.Context, in CommitInput) (CommitResult, error) {
	if s, ok := a.store(in.Target); ok {
		return s.Commit(ctx, in)
	}
	var res CommitResult
	if in.Staged.PrivateDir != "" {
		return res, mismatch("commit: a dry run's staged files (%s) are never committed", in.Staged.PrivateDir)
	}
	if err := checkPlan(in.Request, in.Plan); err != nil {
		return res, err
	}
	if err := checkStaged(in.Request, in.Plan, in.Staged); err != nil {
		return res, err
	}
	fsys, release, err := a.fsFor(ctx, in.Target)
	if err != nil {
		return res, err
	}
	defer release()
	renamed, already := 0, 0
	for i, pf := range in.Plan.Files {
		did, err := commitOne(fsys, pf, in.Staged.Files[i].Temp)
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

func commitOne(fsys FS, pf PlannedFile, temp string) (renamed bool, err error) {
	d, base, err := openPlanned(fsys, pf)
	if err != nil {
		return false, err
	}
	defer d.Close()
	tmp := filepath.Base(temp)
	if info, err := d.Lstat(tmp); err == nil {
		if !info.IsRegular() {
			return false, concurrent("commit %s: staged file %s is now a %s: someone who can write %s replaced it; nothing committed", pf.Path, temp, fileType(info), d.Path())
		}
		// Only the file Stage wrote goes live: its bytes, one link, its
		// owner (a file put at the temp name since, a hard link to another
		// file included, is not).
		sum, info, err := d.SHA256(tmp)
		if err != nil {
			return false, concurrent("commit %s: staged file %s: %v; nothing committed", pf.Path, temp, err)
		}
		if sum != pf.SHA256 || info.Nlink != 1 || info.UID != pf.UID {
			return false, concurrent("commit %s: staged file %s is not the one staged (sha256 %s, %d links, owner uid %d): someone who can write %s replaced it; nothing committed",
				pf.Path, temp, sum, info.Nlink, info.UID, d.Path())
		}
		if err := d.Rename(tmp, base); err != nil {
			return false, fmt.Errorf("commit %s: %w", pf.Path, err)
		}
		if now, err := d.Lstat(base); err != nil || now.ID != info.ID {
			return true, concurrent("commit %s: the file renamed over it is not the one checked (swapped during the rename): someone who can write %s is interfering", pf.Path, d.Path())
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

package activities

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
)

// Stage writes each file's new bytes to <path>.certctl-tmp.<stamp> beside its
// destination (same filesystem, so Commit's rename is atomic), created
// exclusively, owner and mode set before the bytes go in. A dry run stages
// into a private directory.
func (a *Activities) Stage(ctx context.Context, in StageInput) (Staged, error) {
	if s, ok := a.store(in.Target); ok {
		return s.Stage(ctx, in)
	}
	c, err := connectorOf(in.Target)
	if err != nil {
		return Staged{}, err
	}
	if err := checkPlan(in.Request, in.Plan); err != nil {
		return Staged{}, err
	}
	b, err := material.Parse(in.Material)
	if err != nil {
		return Staged{}, invalid(err)
	}
	var out Staged
	fsys, release, err := a.fsFor(ctx, in.Target)
	if err != nil {
		return out, err
	}
	defer release()
	files, err := layout(fsys, c, in.Target, b)
	if err != nil {
		return out, err
	}
	var private Dir
	if in.DryRun {
		// A dry run stages on this worker, in its private directory,
		// whatever machine the target's files are on.
		dir, err := makeDryRunDir(in.Request)
		if err != nil {
			return out, err
		}
		out.PrivateDir = dir
		if private, err = (localFS{}).OpenDir(dir); err != nil {
			return out, err
		}
		defer private.Close()
	} else if !in.Target.Remote() {
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
		if material.SHA256(f.Bytes) != pf.SHA256 {
			return out, mismatch("stage: bytes for %s differ from the plan", f.Path)
		}
		// The owner and mode come from the input too: they must be what
		// this worker plans for the file now, never a plan's own.
		want, err := planFile(fsys, f, c.Defaults().Owners, where(in.Target))
		if err != nil {
			return out, err
		}
		if want.UID != pf.UID || want.GID != pf.GID || want.Mode != pf.Mode || want.HoldsKey != pf.HoldsKey {
			return out, mismatch("stage: %s: the plan says owner %d:%d mode %v (holds key %t), this worker plans %d:%d mode %v (holds key %t); nothing staged",
				f.Path, pf.UID, pf.GID, pf.Mode, pf.HoldsKey, want.UID, want.GID, want.Mode, want.HoldsKey)
		}
		tmp, err := stageOne(fsys, private, i, pf, f.Bytes, in.Stamp)
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
func stageOne(fsys FS, private Dir, i int, pf PlannedFile, data []byte, stamp int64) (string, error) {
	d, name := private, dryRunName(i, pf.Path)
	if d == nil {
		var err error
		if d, _, err = openPlanned(fsys, pf); err != nil {
			return "", err
		}
		defer d.Close()
		name = filepath.Base(TempPath(pf.Path, stamp))
	}
	if err := clearName(d, name, "staged file"); err != nil {
		return "", err
	}
	if _, err := createExcl(d, name, "staged file", data, pf.Mode.Perm(), pf.UID, pf.GID); err != nil {
		return "", wrapf(err, "stage %s", pf.Path)
	}
	return d.Join(name), d.Sync()
}

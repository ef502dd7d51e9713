package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/target"
)

// Plan decides what a deploy has to do (DESIGN promise 1). It checks the
// material, hashes every destination against the new bytes, resolves each
// file's owner and mode, and reads the leaf the endpoint serves now (for a
// connector that verifies by reading back, the leaf its leaf file holds).
func (a *Activities) Plan(ctx context.Context, in PlanInput) (Plan, error) {
	if s, ok := a.store(in.Target); ok {
		return s.Plan(ctx, in)
	}
	c, bundle, err := Preflight(in.Target, in.Material, in.clock(a.now()))
	if err != nil {
		return Plan{}, invalid(err)
	}
	fsys, release, err := a.fsFor(ctx, in.Target)
	if err != nil {
		return Plan{}, err
	}
	defer release()
	files, err := layout(fsys, c, in.Target, bundle)
	if err != nil {
		return Plan{}, err
	}
	if err := resolveCommands(fsys, c, in.Target); err != nil {
		return Plan{}, err
	}
	p := Plan{Action: ActionDeploy, LeafSHA256: bundle.LeafSHA256(), Chain: bundle.ServedChain()}
	for _, f := range files {
		pf, err := planFile(fsys, f, c.Defaults().Owners, where(in.Target))
		if err != nil {
			return p, err
		}
		p.Files = append(p.Files, pf)
	}
	cfg := in.Target.Config
	if cfg.VerifyEnabled() {
		_, _, _, timeout := cfg.VerifyPolicy()
		if served, err := currentLeaf(ctx, fsys, c, in.Target, timeout); err == nil {
			p.ServedSHA256 = served
		}
	}
	if p.Matches() {
		switch {
		case !cfg.VerifyEnabled() || p.ServedSHA256 == p.LeafSHA256:
			p.Action = ActionSkip
		default:
			p.Action = ActionReload
		}
	}
	failpoint.Hit("plan:done")
	return p, nil
}

// planFile looks at one destination through its directory, opened without
// following links: the directory must exist and be safe (InsecurePath
// otherwise), the destination be absent or a regular file.
func planFile(fsys FS, f connectors.File, owners []string, host string) (PlannedFile, error) {
	field := "target_config." + f.Role + "_path"
	dir, base := filepath.Dir(f.Path), filepath.Base(f.Path)
	d, err := fsys.OpenDir(dir)
	switch {
	case isTransport(err):
		return PlannedFile{}, err
	case errors.Is(err, safefs.ErrSymlink):
		return PlannedFile{}, contract.Invalid(field, fmt.Sprintf("%v: a directory on the way to %s is a symbolic link: point the target at the real path", err, f.Path))
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return PlannedFile{}, contract.Invalid(field, fmt.Sprintf("directory %s does not exist on %s", dir, host))
	case err != nil:
		return PlannedFile{}, fmt.Errorf("plan %s: %w", f.Path, err)
	}
	defer d.Close()
	var existing *safefs.Info
	info, err := d.Lstat(base)
	switch {
	case err == nil:
		existing = &info
	case !errors.Is(err, fs.ErrNotExist):
		return PlannedFile{}, fmt.Errorf("plan %s: %w", f.Path, err)
	}
	if existing != nil && existing.IsSymlink() {
		// Commit's rename would replace the link with a file, and whatever
		// maintains the link (certbot's live/ → archive/) would silently stop
		// reaching the server.
		return PlannedFile{}, contract.Invalid(field, f.Path+" is a symbolic link, and certctl never writes through one: point the target at files of the server's own "+
			"(not at certbot's live/ or archive/), and give certbot's lineage to `certctl deploy --lineage /etc/letsencrypt/live/NAME`")
	}
	if existing != nil && !existing.IsRegular() {
		return PlannedFile{}, contract.Invalid(field, f.Path+" is not a regular file")
	}
	pf, err := resolveOwnership(fsys, f, existing, owners)
	if err != nil {
		return pf, contract.Invalid("target_config."+f.Role+"_owner", err.Error())
	}
	// Before anything is written: no one but root and the file's owner may
	// be able to redirect what is written in dir. No opt-out.
	if err := fsys.CheckSecure(dir, pf.UID); err != nil {
		return pf, insecure(err)
	}
	if f.HoldsKey && pf.Mode&0o007 != 0 {
		// An existing world-readable key is not carried forward.
		pf.Mode, pf.ModeFrom = pf.Mode&^0o007, pf.ModeFrom+"-without-other"
	}
	pf.Role, pf.Path, pf.SHA256, pf.HoldsKey = f.Role, f.Path, material.SHA256(f.Bytes), f.HoldsKey
	pf.DirID = d.ID()
	if existing != nil {
		pf.Exists = true
		var now safefs.Info
		if pf.CurrentSHA256, now, err = d.SHA256(base); err != nil {
			return pf, fmt.Errorf("plan %s: %w", f.Path, err)
		}
		pf.CurrentMode = target.Mode(now.Perm())
		pf.CurrentUID, pf.CurrentGID = now.UID, now.GID
	}
	return pf, nil
}

// resolveOwnership applies DESIGN promise 3: explicit setting, then the
// existing destination's, then the connector's default for new files, then
// 0600 for anything holding a key.
func resolveOwnership(fsys FS, f connectors.File, existing *safefs.Info, owners []string) (pf PlannedFile, err error) {
	if pf.UID, pf.GID, err = fsys.Process(); err != nil {
		return pf, err
	}
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
		pf.UID, pf.GID, err = lookupOwner(fsys, f.Owner)
		if err != nil {
			return pf, err
		}
		pf.OwnerFrom = "explicit"
	case existing != nil:
		pf.UID, pf.GID, pf.OwnerFrom = existing.UID, existing.GID, "existing"
	default:
		for _, name := range owners {
			if uid, gid, err := fsys.LookupUser(name); err == nil {
				pf.UID, pf.GID = uid, gid
				pf.OwnerFrom = "connector-default"
				break
			}
		}
	}
	return pf, nil
}

// lookupOwner reads "user" or "user:group" (names or numeric ids).
func lookupOwner(fsys FS, spec string) (uid, gid int, err error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	if uid, gid, err = fsys.LookupUser(name); err != nil {
		return 0, 0, fmt.Errorf("owner %q: no such user", name)
	}
	if hasGroup {
		if gid, err = fsys.LookupGroup(group); err != nil {
			return 0, 0, fmt.Errorf("owner %q: no such group %q", spec, group)
		}
	}
	return uid, gid, nil
}

// where names the machine of a target's files in messages.
func where(t target.Target) string {
	if t.Remote() {
		return "ssh://" + t.Config.SSH.String()
	}
	return fmt.Sprintf("host %q", t.Host)
}

// resolveCommands finds every binary the pipeline will run (validate and
// reload, the connector's defaults included) before anything is staged: a
// missing one is ValidateFailed naming the field, with nothing live touched.
func resolveCommands(fsys FS, c connectors.Connector, t target.Target) error {
	cfg := t.Config
	for _, cm := range []struct {
		field string
		set   bool
		argv  target.Command
	}{
		{"target_config.validate_command", len(cfg.ValidateCommand) > 0, connectors.ValidateCommand(c, cfg)},
		{"target_config.reload_command", len(cfg.ReloadCommand) > 0, connectors.ReloadFor(c, cfg).Command},
	} {
		if len(cm.argv) == 0 {
			continue
		}
		if err := fsys.LookPath(cm.argv[0]); err != nil {
			if isTransport(err) {
				return err
			}
			field := cm.field
			if !cm.set {
				field = fmt.Sprintf("%s (not set: the %s connector's default %q)", cm.field, t.TargetType, cm.argv.String())
			}
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"%s: %q cannot be run on %s (%v): install it, or set %s to the binary that is there; nothing was changed",
				field, cm.argv[0], where(t), err, cm.field), contract.ValidateFailed, nil)
		}
	}
	return nil
}

package activities

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/target"
)

// Activities are the deploy steps. Register a *Activities with a worker.
type Activities struct {
	// Now is the clock for the validity-window check; nil means time.Now.
	Now func() time.Time
	// Client is the workflow worker's own client, for RequestTargetLock.
	Client client.Client
	// StateDir lists where this host staged files (see SweepTemps); empty
	// means StateDir() from the environment.
	StateDir string
}

func (a *Activities) stateDir() string {
	if a != nil && a.StateDir != "" {
		return a.StateDir
	}
	return StateDir()
}

func (a *Activities) now() time.Time {
	if a != nil && a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// invalid turns a target or material error into InvalidInput.
func invalid(err error) error {
	return contract.InvalidField(err, "target")
}

// Preflight checks a deploy request without touching anything: the target's
// fields, its connector's, and the material (parses, key matches leaf, chain
// links in order, validity window, verify host covered). The starter runs it
// before starting a workflow; Plan runs it again on the host.
func Preflight(t target.Target, m material.Material, now time.Time) (connectors.Connector, *material.Bundle, error) {
	if err := t.Validate(); err != nil {
		return nil, nil, err
	}
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		return nil, nil, &contract.FieldError{Field: "target_type", Msg: err.Error()}
	}
	if t.Host == "" {
		// Every connector here writes files: plan, stage and commit must run
		// on the one machine that holds them, not on any "certctl" worker.
		return nil, nil, &contract.FieldError{Field: "host", Msg: "is required for " + t.TargetType +
			": name the machine whose certctl-worker --host runs the file steps"}
	}
	if err := c.Check(t.Config); err != nil {
		return nil, nil, err
	}
	b, err := material.Parse(m)
	if err != nil {
		return nil, nil, err
	}
	host := ""
	if t.Config.VerifyEnabled() {
		host = t.Config.PostDeployVerify.ServerName
		if host == "" {
			host = material.HostOf(t.Config.PostDeployVerify.Endpoint)
		}
	}
	if err := b.Check(now, host); err != nil {
		return nil, nil, err
	}
	return c, b, nil
}

func layout(req Request, m material.Material) (connectors.Connector, []connectors.File, error) {
	c, err := connectors.Get(req.Target.TargetType)
	if err != nil {
		return nil, nil, contract.Invalid("target_type", err.Error())
	}
	files, err := c.Files(req.Target.Config, m)
	if err != nil {
		return nil, nil, invalid(err)
	}
	return c, files, nil
}

// Plan decides what a deploy has to do (DESIGN promise 1). It checks the
// material, hashes every destination against the new bytes, resolves each
// file's owner and mode, and reads the leaf the endpoint serves now.
func (a *Activities) Plan(ctx context.Context, in PlanInput) (Plan, error) {
	_, bundle, err := Preflight(in.Target, in.Material, in.clock(a.now()))
	if err != nil {
		return Plan{}, invalid(err)
	}
	if err := resolveCommands(in.Target); err != nil {
		return Plan{}, err
	}
	c, files, err := layout(in.Request, in.Material)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Action: ActionDeploy, LeafSHA256: bundle.LeafSHA256()}
	for _, f := range files {
		pf, err := planFile(f, c.Defaults().Owners, in.Target.Host)
		if err != nil {
			return p, err
		}
		p.Files = append(p.Files, pf)
	}
	cfg := in.Target.Config
	if cfg.VerifyEnabled() {
		_, _, _, timeout := cfg.VerifyPolicy()
		if served, err := probeTarget(ctx, in.Target, timeout); err == nil {
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
func planFile(f connectors.File, owners []string, host string) (PlannedFile, error) {
	field := "target_config." + f.Role + "_path"
	dir, base := filepath.Dir(f.Path), filepath.Base(f.Path)
	d, err := safefs.OpenDir(dir)
	switch {
	case errors.Is(err, safefs.ErrSymlink):
		return PlannedFile{}, contract.Invalid(field, fmt.Sprintf("%v: a directory on the way to %s is a symbolic link: point the target at the real path", err, f.Path))
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return PlannedFile{}, contract.Invalid(field, fmt.Sprintf("directory %s does not exist on host %q", dir, host))
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
		return PlannedFile{}, contract.Invalid(field, f.Path+" is a symbolic link: point the target at the file it links to")
	}
	if existing != nil && !existing.IsRegular() {
		return PlannedFile{}, contract.Invalid(field, f.Path+" is not a regular file")
	}
	pf, err := resolveOwnership(f, existing, owners)
	if err != nil {
		return pf, contract.Invalid("target_config."+f.Role+"_owner", err.Error())
	}
	// Before anything is written: no one but root and the file's owner may
	// be able to redirect what is written in dir. No opt-out.
	if err := safefs.CheckSecure(dir, pf.UID); err != nil {
		return pf, insecure(err)
	}
	if f.HoldsKey && pf.Mode&0o007 != 0 {
		// An existing world-readable key is not carried forward.
		pf.Mode, pf.ModeFrom = pf.Mode&^0o007, pf.ModeFrom+"-without-other"
	}
	pf.Role, pf.Path, pf.SHA256, pf.HoldsKey = f.Role, f.Path, sha(f.Bytes), f.HoldsKey
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

package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/outcome"
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
	var fe *target.FieldError
	var me *material.Error
	switch {
	case errors.As(err, &fe):
		return outcome.Invalid(fe.Field, fe.Msg)
	case errors.As(err, &me):
		return outcome.Invalid(me.Field, me.Msg)
	}
	return outcome.Invalid("target", err.Error())
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
		return nil, nil, &target.FieldError{Field: "target_type", Msg: err.Error()}
	}
	if t.Host == "" {
		// Every connector here writes files: plan, stage and commit must run
		// on the one machine that holds them, not on any "certctl" worker.
		return nil, nil, &target.FieldError{Field: "host", Msg: "is required for " + t.TargetType +
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
		return nil, nil, outcome.Invalid("target_type", err.Error())
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
		dir := filepath.Dir(f.Path)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return p, outcome.Invalid("target_config."+f.Role+"_path", fmt.Sprintf("directory %s does not exist on host %q", dir, in.Target.Host))
		}
		fi, err := os.Lstat(f.Path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return p, fmt.Errorf("plan %s: %w", f.Path, err)
		}
		if fi != nil && fi.Mode()&os.ModeSymlink != 0 {
			// Commit's rename would replace the link with a file, and whatever
			// maintains the link (certbot's live/ → archive/) would silently stop
			// reaching the server.
			return p, outcome.Invalid("target_config."+f.Role+"_path", f.Path+" is a symbolic link: point the target at the file it links to")
		}
		if fi != nil && !fi.Mode().IsRegular() {
			return p, outcome.Invalid("target_config."+f.Role+"_path", f.Path+" is not a regular file")
		}
		pf, err := resolveOwnership(f, fi, c.Defaults().Owners)
		if err != nil {
			return p, outcome.Invalid("target_config."+f.Role+"_owner", err.Error())
		}
		if f.HoldsKey && pf.Mode&0o007 != 0 {
			// An existing world-readable key is not carried forward.
			pf.Mode, pf.ModeFrom = pf.Mode&^0o007, pf.ModeFrom+"-without-other"
		}
		sum := sha256.Sum256(f.Bytes)
		pf.Role, pf.Path, pf.SHA256, pf.HoldsKey = f.Role, f.Path, hex.EncodeToString(sum[:]), f.HoldsKey
		if fi != nil {
			pf.Exists = true
			if pf.CurrentSHA256, err = fileSHA256(f.Path); err != nil {
				return p, fmt.Errorf("plan %s: %w", f.Path, err)
			}
			pf.CurrentMode = target.Mode(fi.Mode().Perm())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				pf.CurrentUID, pf.CurrentGID = int(st.Uid), int(st.Gid)
			}
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

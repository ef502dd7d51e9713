package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/scrub"
	"github.com/certctl/certctl/stagedview"
	"github.com/certctl/certctl/target"
)

// Validate checks what will be served (DESIGN promise 4). First the material
// as it sits in the staged files; then the server's own check, run against
// the staged files through a private mount namespace. Where that cannot be
// done here the result says "deferred": the workflow runs Validate again with
// Live after Commit and before Reload.
func (a *Activities) Validate(ctx context.Context, in ValidateInput) (ValidateResult, error) {
	if s, ok := a.store(in.Target); ok {
		return s.Validate(ctx, in)
	}
	res, err := a.validate(ctx, in)
	if err == nil {
		failpoint.Hit("validate:done")
	}
	return res, err
}

func (a *Activities) validate(ctx context.Context, in ValidateInput) (ValidateResult, error) {
	c, err := connectorOf(in.Target)
	if err != nil {
		return ValidateResult{}, err
	}
	if err := checkPlan(in.Request, in.Plan); err != nil {
		return ValidateResult{}, err
	}
	if err := checkStaged(in.Request, in.Plan, in.Staged); err != nil {
		return ValidateResult{}, err
	}
	fsys, release, err := a.fsFor(ctx, in.Target)
	if err != nil {
		return ValidateResult{}, err
	}
	defer release()
	if err := a.checkFiles(fsys, c, in); err != nil {
		return ValidateResult{}, err
	}
	// A reload by signal can be checked without sending it: a pid file that
	// names no live server process fails here, before anything live changes,
	// not at reload time with the new files in place.
	if r := connectors.ReloadFor(c, in.Target.Config); r.Signal != "" && in.Target.Remote() {
		return ValidateResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("reload (%s): over SSH a reload is a command: set target_config.reload_command", r), contract.ValidateFailed, nil)
	} else if r.Signal != "" {
		if _, _, err := reloadPID(r); err != nil {
			return ValidateResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("reload (%s): %v", r, err), contract.ValidateFailed, nil)
		}
	}
	argv := connectors.ValidateCommand(c, in.Target.Config)
	res := ValidateResult{Command: argv.String()}
	if len(argv) == 0 {
		// Neither the connector nor the target has a check: nothing runs.
		res.ServerCheck, res.Note = CheckNone, in.Target.TargetType+": no server check"
		return res, nil
	}
	limit, sc := in.Target.Config.CommandLimit(), scrubberFor(fsys, in.Request, nil)
	if in.Live {
		res.ServerCheck = CheckLive
		res.Output, err = fsys.Run(ctx, argv, limit, sc)
		if isTransport(err) {
			return res, err
		}
		return res, validateErr(argv, res.Output, err, sc)
	}
	if in.Target.Remote() {
		// The remote server's check reads the live paths: it runs after
		// Commit, before Reload, and a failure restores the backups.
		res.Note = "over SSH the server's check can only read the live paths"
		if in.DryRun {
			res.ServerCheck = CheckSkipped
			return res, nil
		}
		res.ServerCheck = CheckDeferred
		return res, nil
	}
	var binds []stagedview.Bind
	for i, s := range in.Staged.Files {
		if !in.Plan.Files[i].Exists {
			res.Note = s.Path + " does not exist yet, so the check cannot see the staged file in its place"
			break
		}
		binds = append(binds, stagedview.Bind{Src: s.Temp, Dst: s.Path})
	}
	if res.Note == "" {
		res.ServerCheck = CheckStaged
		res.Output, err = runInView(ctx, binds, argv, limit, sc)
		if !isStartError(err) && !stagedview.IsHelperFailure(err, res.Output) {
			return res, validateErr(argv, res.Output, err, sc)
		}
		res.Note = fmt.Sprintf("no private mount namespace here (%v)", err)
	}
	if in.DryRun {
		res.ServerCheck = CheckSkipped
		return res, nil
	}
	res.ServerCheck = CheckDeferred
	return res, nil
}

// checkFiles re-reads the files that will be served (staged, or live after
// Commit) and checks them as material: what is on disk is what matters.
func (a *Activities) checkFiles(fsys FS, c connectors.Connector, in ValidateInput) error {
	var all []byte
	cl, current := c.(connectors.CurrentLayout)
	var cur map[string][]byte
	if current {
		var err error
		if cur, err = readCurrent(fsys, cl, in.Target); err != nil {
			return err
		}
	}
	for i, f := range in.Plan.Files {
		p, from := f.Path, fsys
		if !in.Live {
			p = in.Staged.Files[i].Temp
		}
		if !in.Live && in.Staged.PrivateDir != "" {
			from = localFS{} // a dry run stages on this worker
		}
		b, err := readRegular(from, p)
		if isTransport(err) {
			return err
		}
		if errors.Is(err, safefs.ErrSymlink) || errors.Is(err, safefs.ErrNotRegular) {
			return concurrent("read %s: %v: someone who can write its directory replaced it", p, err)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if current {
			if b, err = cl.Served(in.Target.Config, f.Role, b, cur); err != nil {
				return temporal.NewNonRetryableApplicationError("material check of the files to be served: "+err.Error(), contract.ValidateFailed, nil)
			}
		}
		all = append(append(all, b...), '\n')
	}
	b, err := material.ParseConcatenated("staged files", all)
	if err == nil {
		err = b.Check(in.clock(a.now()), "")
	}
	if err == nil && b.LeafSHA256() != in.Plan.LeafSHA256 {
		err = fmt.Errorf("the staged leaf is not the planned one")
	}
	if err != nil {
		return temporal.NewNonRetryableApplicationError("material check of the files to be served: "+err.Error(), contract.ValidateFailed, nil)
	}
	return nil
}

func validateErr(argv target.Command, out string, err error, sc *scrub.Scrubber) error {
	if err == nil {
		return nil
	}
	return commandErr(contract.ValidateFailed, argv, out, err, sc)
}

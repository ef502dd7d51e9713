package activities

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/kubernetes"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/probe"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/target"
)

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
	if t.Host == "" && !t.Remote() && t.TargetType != kubernetes.Name {
		// Every connector here writes files: plan, stage and commit must run
		// on the one machine that holds them (its worker, or over SSH), not
		// on any "certctl" worker's own disk.
		return nil, nil, &contract.FieldError{Field: "host", Msg: "is required for " + t.TargetType +
			": name the machine whose certctl-worker --host runs the file steps (or give target_config.ssh to reach a machine with no certctl worker over SSH)"}
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
		host = probe.Host(t.Config.PostDeployVerify)
	}
	if err := b.Check(now, host); err != nil {
		return nil, nil, err
	}
	return c, b, nil
}

// connectorOf is the target's connector: a step looks it up once and hands
// it on.
func connectorOf(t target.Target) (connectors.Connector, error) {
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		return nil, contract.Invalid("target_type", err.Error())
	}
	return c, nil
}

// layout is the files c writes for the material: the one place a step asks
// a connector for them (Plan to hash them, Stage to write them). A
// connector whose layout depends on the host's current files
// (connectors.CurrentLayout) gets them read here, through fsys.
func layout(fsys FS, c connectors.Connector, t target.Target, b *material.Bundle) ([]connectors.File, error) {
	cl, ok := c.(connectors.CurrentLayout)
	if !ok {
		files, err := c.Files(t.Config, b)
		if err != nil {
			return nil, invalid(err)
		}
		return files, nil
	}
	current, err := readCurrent(fsys, cl, t)
	if err != nil {
		return nil, err
	}
	files, err := cl.FilesFrom(t.Config, b, current)
	if err != nil {
		return nil, invalid(err)
	}
	return files, nil
}

// readCurrent reads the files a CurrentLayout connector's layout depends
// on, each through its directory opened without following links, regular
// and at most maxFileRead bytes; an absent one is nil. The bytes stay in
// this step's memory: they may hold passwords, and go into no payload.
func readCurrent(fsys FS, cl connectors.CurrentLayout, t target.Target) (map[string][]byte, error) {
	current := map[string][]byte{}
	for _, r := range cl.Reads(t.Config) {
		b, err := readRegular(fsys, r.Path)
		switch {
		case isTransport(err):
			return nil, err
		case errors.Is(err, fs.ErrNotExist):
			current[r.Path] = nil
			continue
		case errors.Is(err, safefs.ErrSymlink):
			return nil, contract.Invalid(r.Field, r.Path+" (or a directory on the way) is a symbolic link, and certctl never reads through one: point the target at the real path")
		case err != nil:
			return nil, contract.Invalid(r.Field, fmt.Sprintf("read %s on %s: %v", r.Path, where(t), err))
		}
		current[r.Path] = b
	}
	return current, nil
}

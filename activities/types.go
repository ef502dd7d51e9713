package activities

import (
	"time"

	"github.com/certctl/certctl/connectors/kubernetes"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/target"
)

// Request is what every step knows about the deploy.
type Request struct {
	Target target.Target `json:"target"`
	// Stamp (unix nanoseconds, chosen once by the workflow) names this
	// deploy's temp and backup files, so a retried step finds its own files.
	Stamp  int64 `json:"stamp"`
	DryRun bool  `json:"dry_run,omitempty"`
	// ForceValidity deploys a leaf outside its validity window.
	ForceValidity bool `json:"force_validity,omitempty"`
}

// clock is the time the validity window is checked at: zero when forced.
func (r Request) clock(now time.Time) time.Time {
	if r.ForceValidity {
		return time.Time{}
	}
	return now
}

// PlanInput is Plan's input: the only steps that see material are Plan and
// Stage.
type PlanInput struct {
	Request
	Material material.Material `json:"material"`
}

// Action is what Plan decided the deploy has to do.
type Action string

// Actions Plan can decide.
const (
	ActionSkip   Action = "skip"   // files and served leaf match: nothing to do
	ActionReload Action = "reload" // files match but the old leaf is served: reload and verify
	ActionDeploy Action = "deploy" // files differ: the whole pipeline
)

// PlannedFile is one destination, as Plan found it.
type PlannedFile struct {
	Role          string      `json:"role"`
	Path          string      `json:"path"`
	SHA256        string      `json:"sha256"` // of the new bytes
	Exists        bool        `json:"exists"`
	CurrentSHA256 string      `json:"current_sha256,omitempty"`
	HoldsKey      bool        `json:"holds_key,omitempty"`
	Mode          target.Mode `json:"mode"`
	ModeFrom      string      `json:"mode_from"` // explicit, existing, connector-default, key-fallback, fallback
	UID           int         `json:"uid"`
	GID           int         `json:"gid"`
	OwnerFrom     string      `json:"owner_from"`
	// The existing file's mode and owner, when it exists.
	CurrentMode target.Mode `json:"current_mode,omitempty"`
	CurrentUID  int         `json:"current_uid,omitempty"`
	CurrentGID  int         `json:"current_gid,omitempty"`
	// DirID is the destination directory's identity (device, inode) as
	// Plan opened it without following links; every writing step checks
	// the directory is still that one.
	DirID safefs.ID `json:"dir_id"`
	// ResourceVersion is a Kubernetes Secret's (Path "namespace/name") as
	// Plan read it: Commit writes only over that one.
	ResourceVersion string `json:"resource_version,omitempty"`
}

// Plan is Plan's result.
type Plan struct {
	Action     Action `json:"action"`
	LeafSHA256 string `json:"leaf_sha256"`
	// ServedSHA256 is the leaf the endpoint served before the deploy, when it
	// could be read: after a rollback, verify expects it again.
	ServedSHA256 string        `json:"served_sha256,omitempty"`
	Files        []PlannedFile `json:"files"`
	// Chain is what the endpoint must send once deployed: the leaf, then
	// each intermediate in order (verify's ExpectedChain).
	Chain []material.CertRef `json:"chain,omitempty"`
}

// Matches reports whether every destination already holds the new bytes
// with the planned mode and owner: a key left readable by others, or an
// owner the target now names, is work to do, not a skip.
func (p Plan) Matches() bool {
	for _, f := range p.Files {
		if f.CurrentSHA256 != f.SHA256 || f.CurrentMode != f.Mode || f.CurrentUID != f.UID || f.CurrentGID != f.GID {
			return false
		}
	}
	return true
}

// StageInput is Stage's input.
type StageInput struct {
	PlanInput
	Plan Plan `json:"plan"`
}

// StagedFile is a temp file written beside (or, in a dry run, away from) its
// destination.
type StagedFile struct {
	Path   string `json:"path"`
	Temp   string `json:"temp"`
	SHA256 string `json:"sha256"`
}

// Staged is Stage's result.
type Staged struct {
	Files []StagedFile `json:"files"`
	// PrivateDir holds a dry run's staged files; removed by Cleanup.
	PrivateDir string `json:"private_dir,omitempty"`
	// Secret is the data a kubernetes target's Secrets get (tls.crt,
	// tls.key): staged in the step's result, a payload the codec encrypts.
	Secret map[string][]byte `json:"secret,omitempty"`
}

// ValidateInput is Validate's input.
type ValidateInput struct {
	Request
	Plan   Plan   `json:"plan"`
	Staged Staged `json:"staged"`
	// Live runs the server's check against the live files (after Commit,
	// before Reload) for servers whose check cannot see staged files here.
	Live bool `json:"live,omitempty"`
}

// ServerCheck says how Validate ran the server's own check.
type ServerCheck string

// Server check modes, in ValidateResult.ServerCheck.
const (
	CheckStaged   ServerCheck = "staged"   // the check read the staged files through a private mount namespace
	CheckDeferred ServerCheck = "deferred" // the check must run on the live files after Commit, before Reload
	CheckLive     ServerCheck = "live"     // the check ran on the live files
	CheckNone     ServerCheck = "none"     // the connector has no check command
	CheckSkipped  ServerCheck = "skipped"  // dry run where the staged files cannot be shown to the check
)

// ValidateResult says which check ran and what it printed (tail only).
type ValidateResult struct {
	ServerCheck ServerCheck `json:"server_check"`
	Command     string      `json:"command,omitempty"`
	Output      string      `json:"output,omitempty"`
	Note        string      `json:"note,omitempty"`
}

// Backup is one file's backup.
type Backup struct {
	Path   string `json:"path"`
	Backup string `json:"backup"`
}

// Backups is Backup's result.
type Backups struct {
	Files []Backup `json:"files"`
	// Secrets are a kubernetes target's Secrets as they were: kept only in
	// this result (a payload the codec encrypts), never in the deploy's
	// result, a log or an error.
	Secrets []kubernetes.Prior `json:"secrets,omitempty"`
}

// CommitInput is Commit's input.
type CommitInput struct {
	Request
	Plan   Plan   `json:"plan"`
	Staged Staged `json:"staged"`
}

// CommitResult lists the destinations that now hold the new bytes. A retry
// that finds some renames already done reports the same list (and logs how
// many it finished itself).
type CommitResult struct {
	Committed []string `json:"committed"`
}

// CommandResult is Reload's result.
type CommandResult struct {
	Command string `json:"command"`
	Output  string `json:"output,omitempty"`
	// Note says why nothing ran, when nothing did ("files: no reload").
	Note string `json:"note,omitempty"`
}

// VerifyInput is Verify's input.
type VerifyInput struct {
	Request
	// Expected is the leaf fingerprint the endpoint must serve.
	Expected string `json:"expected"`
	// ExpectedChain, when set, is every certificate the endpoint must send,
	// in order: the leaf (Expected), then each intermediate of the deployed
	// chain (Plan.Chain). Empty (a rollback's verify, or a history recorded
	// before chains were checked) checks the leaf alone.
	ExpectedChain []material.CertRef `json:"expected_chain,omitempty"`
}

// VerifyResult is what the endpoint served.
type VerifyResult struct {
	// Endpoint is the endpoint probed or, for a connector that verifies by
	// reading its files back, the file read.
	Endpoint string `json:"endpoint"`
	Served   string `json:"served_sha256"`
	Attempt  int32  `json:"attempt"`
	// ServedChain is every certificate the endpoint sent, leaf first (set
	// when the input had an ExpectedChain).
	ServedChain []material.CertRef `json:"served_chain,omitempty"`
}

// RollbackInput is Rollback's input.
type RollbackInput struct {
	Request
	Plan    Plan    `json:"plan"`
	Backups Backups `json:"backups"`
}

// RollbackResult lists what was restored and what was removed (files that
// did not exist before the deploy).
type RollbackResult struct {
	Restored []string `json:"restored,omitempty"`
	Removed  []string `json:"removed,omitempty"`
}

// CleanupInput is Cleanup's input.
type CleanupInput struct {
	Request
	Plan    Plan    `json:"plan"`
	Staged  Staged  `json:"staged"`
	Backups Backups `json:"backups"`
	// Succeeded prunes old backups down to the retention; otherwise this
	// deploy's own backups of unchanged files are removed.
	Succeeded bool `json:"succeeded"`
	// Release releases the deploy's lease on the host (Lock) once the rest
	// is done: the host run's last step.
	Release bool `json:"release,omitempty"`
}

// CleanupResult lists the backups that remain for the target's files. What
// a call removed is logged, not returned, so a retried Cleanup reports the
// same result.
type CleanupResult struct {
	Backups []string `json:"backups,omitempty"`
	// Released: the lease is released (Release).
	Released bool `json:"released,omitempty"`
}

// PolicyTarget is the target a host worker's policy checks before any step
// runs; every step input embeds Request, so every one has it.
func (r Request) PolicyTarget() target.Target { return r.Target }

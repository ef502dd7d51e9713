// Package activities holds the deploy steps, written once for every
// file-based connector: plan, backup, stage, validate, commit, reload, verify,
// rollback and cleanup. Each is idempotent under retry: a step re-run after
// it succeeded (a lost completion) finds its work done and reports the same.
//
// Results carry paths and fingerprints, never certificate or key bytes.
//
// Each step is in the file named after it: plan.go (with preflight.go,
// which the starter runs too), backup.go, stage.go, validate.go, commit.go,
// reload.go, verify.go, rollback.go, cleanup.go. Shared by them: types.go
// (every step's input and result), activities.go (the Activities receiver,
// error constructors), files.go (temp and backup names, the no-follow file
// helpers of the writing steps), exec.go and supervise.go (the bounded
// command runner), scrub.go (what command output is scrubbed of), ledger.go
// (the backup ledger) and leftovers.go (staged directories, SweepTemps).
// Package probe reads what an endpoint serves; verify.go reads the leaf
// file back instead for a connector whose files nothing serves
// (connectors.ReadBackVerifier).
package activities

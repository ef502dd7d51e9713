package contract

// nextActions is what an operator does after each deploy outcome, the line
// `certctl deploy` prints on a terminal after a failure ("next: …"). This
// is the text's one home: docs/operator.md "Outcomes and what to do" says
// the same in its "what to do" column, with the messages to look for, and
// TestNextActionsAgreeWithTheOperatorReference holds the two together
// (every clause here, between "; ", is in that row).
var nextActions = map[string]string{
	Deployed:          "nothing",
	SkippedIdempotent: "nothing",
	DryRunPassed:      "drop --dry-run",
	InvalidInput:      "fix the field the message names (<field>: <what is wrong>)",
	ValidateFailed:    "read the server's check output in the error; fix the material or the server's configuration; deploy again",
	CommitFailed:      "fix the disk or permissions named; deploy again",
	ReloadFailed:      "fix the reload command or the server; deploy again",
	VerifyFailed:      "the error says what the endpoint served; fix post_deploy_verify.endpoint/server_name, or the server's chain; deploy again",
	RollbackFailed:    "restore the named backups by hand (or deploy a known-good cert), reload, check with certctl status --target ID",
	HostUnavailable:   "start the worker the message names; deploy again",
	HostLost:          "the deploy resumes when the worker on <host> returns; check it with certctl status --target ID",
	InsecurePath:      "the message names the directory and the fix; make it writable only by root and the file's owner",
	PolicyRefused:     "widen the policy on that host only if the target is meant to be allowed",
	HostKeyMismatch:   "check the key out of band, then add it to known_hosts_path or pin host_key",
	DeployFailed:      "temporal workflow describe --workflow-id <id>/host; certctl status --target ID shows what is served and on disk; deploy again",
}

// NextAction is what an operator does after a deploy that ended with
// outcome, "" for an outcome that is not a deploy's.
func NextAction(outcome string) string { return nextActions[outcome] }

// DeployOutcomes are the outcomes a deploy can end with, and HostLost, a
// rollout's outcome for a target whose deploy it stopped waiting for.
func DeployOutcomes() []string {
	return []string{Deployed, SkippedIdempotent, DryRunPassed, InvalidInput, ValidateFailed, CommitFailed, ReloadFailed,
		VerifyFailed, RollbackFailed, HostUnavailable, HostLost, InsecurePath, PolicyRefused, HostKeyMismatch, DeployFailed}
}

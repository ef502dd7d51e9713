package contract

// Workflow type names: what `temporal workflow start --type` takes and what
// recorded histories name. Never rename one; add a new one.
const (
	DeployWorkflow     = "DeployWorkflow"
	ApprovalWorkflow   = "ApprovalWorkflow"
	RenewWorkflow      = "RenewWorkflow"
	TargetLockWorkflow = "TargetLockWorkflow" // the per-target lock of target-lock version 1, kept for deploys still running
	FileLockWorkflow   = "FileLockWorkflow"   // the per-host lock of target-lock version 2
	RolloutWorkflow    = "RolloutWorkflow"
	InspectWorkflow    = "InspectWorkflow" // reads the leaf a target holds on disk, on its host's worker (`certctl status`)
)

// RolloutIDPrefix begins a rollout's workflow ID: "rollout/<id>".
const RolloutIDPrefix = "rollout/"

// A rollout's signals and query.
const (
	SignalPause   = "pause"
	SignalResume  = "resume"
	QueryProgress = "progress"
)

// A rollout's states, as its progress query reports them. A halted
// rollout starts nothing new; the deploys it started still end on their
// own, and it is "halted" from the first failure past max_failures on.
const (
	RolloutRunning   = "running"
	RolloutPaused    = "paused"
	RolloutFinished  = "completed"
	RolloutHaltState = "halted"
)

// Task queues.
const (
	// TaskQueue runs the workflows and the agentless steps.
	TaskQueue = "certctl"
	// HostQueuePrefix + host is the queue of the worker on that host.
	HostQueuePrefix = "certctl-host-"
)

// Approval's update, signals and query, and the decisions they carry.
const (
	UpdateDecide    = "decide"
	SignalApprove   = "approve"
	SignalReject    = "reject"
	QueryState      = "state"
	DecisionApprove = "approve"
	DecisionReject  = "reject"
)

// Error types of the deploy steps besides the outcomes: what a step failed
// with, as its ApplicationError type.
const (
	// CommitLost: a staged file is gone and its destination does not hold
	// the new bytes (someone removed it between Stage and Commit).
	CommitLost = "CommitLost"
	// PlanMismatch: a step's input does not match the plan it names (bytes,
	// paths or temp names that are not the planned ones).
	PlanMismatch = "PlanMismatch"
	// ConcurrentChange: someone else wrote a file or swapped a directory this
	// deploy planned; nothing was written over it.
	ConcurrentChange = "ConcurrentChange"
	// VerifyUnreachable: the verify endpoint did not complete a handshake
	// (retried by the verify policy).
	VerifyUnreachable = "VerifyUnreachable"
	// VerifyMismatch: the endpoint served another leaf (retried by the
	// verify policy).
	VerifyMismatch = "VerifyMismatch"
	// Forbidden: the API server refused the target's credentials a call
	// (Kubernetes RBAC): the message names the verb, the resource and the
	// namespace to grant. Nothing was written by the refused call.
	Forbidden = "Forbidden"
	// NamespaceNotFound: a Kubernetes target names a namespace the API
	// server does not have; nothing was written there.
	NamespaceNotFound = "NamespaceNotFound"
)

// Step is the name of one deploy step: the activity ID of its activity, or
// the Summary of its local activity (the Web UI's row), and the name
// `certctl deploy` prints.
type Step string

// The deploy's steps, in the order they may run.
const (
	StepLock           Step = "lock"
	StepPlan           Step = "plan"
	StepBackup         Step = "backup"
	StepStage          Step = "stage"
	StepValidate       Step = "validate"
	StepCommit         Step = "commit"
	StepValidateLive   Step = "validate-live"
	StepReload         Step = "reload"
	StepVerify         Step = "verify"
	StepRollback       Step = "rollback"
	StepRollbackReload Step = "rollback-reload"
	StepRollbackVerify Step = "rollback-verify"
	StepCleanup        Step = "cleanup"
	// StepUnlock releases the host's lease where no cleanup did (a skip,
	// a rollback): version 3 of "target-lock".
	StepUnlock Step = "unlock"
)

// HostRunSuffix ends the workflow ID of the run a DeployWorkflow started on
// the "certctl" queue delegates to its target's host queue:
// "<deploy id>/host".
const HostRunSuffix = "/host"

// The per-host (and, for version 1, per-target) lock's signals: a deploy
// asks with acquire (SignalWithStart), is told granted, and releases; the
// lock pings a holder to learn whether it still runs.
const (
	LockAcquireSignal = "acquire"
	LockReleaseSignal = "release"
	LockGrantedSignal = "certctl-lock-granted"
	LockPingSignal    = "certctl-lock-ping"
)

// Notifications (docs/notifications.md): NotifyWorkflow, on the "certctl"
// queue where the workflow worker's --notify-config lives, sends one event
// to the channels that subscribe to it. Its workflow ID is the ID of the
// workflow it reports on + NotifySuffix.
const (
	NotifyWorkflow = "NotifyWorkflow"
	NotifySuffix   = "/notify"
	// ApprovalPending: an approval request has waited longer than the
	// workflow worker's approval_pending_after. The other events are the
	// outcomes RollbackFailed, VerifyFailed, ReloadFailed, HostUnavailable
	// and RolloutHalted.
	ApprovalPending = "ApprovalPending"
	// NotifyRefused: a channel's server refused a notification for good
	// (an HTTP 4xx other than 408 and 429, an SMTP 5xx): not retried.
	NotifyRefused = "NotifyRefused"
	// NotifyFailed: NotifyWorkflow's failure when a channel could not be
	// reached within its retries (the result names each channel).
	NotifyFailed = "NotifyFailed"
)

// NotifyEvents are the events a notification channel may subscribe to.
var NotifyEvents = []string{RollbackFailed, VerifyFailed, ReloadFailed, HostUnavailable, RolloutHalted, ApprovalPending}

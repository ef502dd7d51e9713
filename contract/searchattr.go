package contract

import "go.temporal.io/sdk/temporal"

// certctl's search attributes: what its workflows set, and what a
// namespace must have registered before it runs them (`certctl setup`
// registers them; temporal-dev.yaml lists the same for the dev server).
// Every one is a Keyword. Never rename one; add a new one.
var (
	// TargetKey is set by DeployWorkflow at the start (certctl deploy sets
	// it in the start request): `CertctlTarget = "web-1"` finds a target's
	// deploys.
	TargetKey = temporal.NewSearchAttributeKeyKeyword("CertctlTarget")
	// OutcomeKey is the deploy's outcome, set when it ends.
	OutcomeKey = temporal.NewSearchAttributeKeyKeyword("CertctlOutcome")
	// ApprovalStateKey is an approval request's state:
	// `ApprovalState = "pending"` is the inbox.
	ApprovalStateKey = temporal.NewSearchAttributeKeyKeyword("ApprovalState")
	// ApprovalProfileKey is the profile an approval request is for.
	ApprovalProfileKey = temporal.NewSearchAttributeKeyKeyword("ApprovalProfile")
	// ApprovalDecidedByKey is who decided an approval request.
	ApprovalDecidedByKey = temporal.NewSearchAttributeKeyKeyword("ApprovalDecidedBy")
)

// SearchAttributes are all of certctl's search attributes, in the order
// `certctl setup` registers and reports them.
var SearchAttributes = []temporal.SearchAttributeKey{TargetKey, OutcomeKey, ApprovalStateKey, ApprovalProfileKey, ApprovalDecidedByKey}

package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/certctl/certctl/activities"
)

// Registry is what workers, the test environment and the replayer share.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}

// Register registers every workflow under its contract name.
func Register(r Registry) {
	r.RegisterWorkflowWithOptions(DeployWorkflow, workflow.RegisterOptions{Name: "DeployWorkflow"})
	r.RegisterWorkflowWithOptions(ApprovalWorkflow, workflow.RegisterOptions{Name: ApprovalWorkflowName})
	r.RegisterWorkflowWithOptions(RenewWorkflow, workflow.RegisterOptions{Name: RenewWorkflowName})
	// TargetLockWorkflow stays for deploys of "target-lock" version 1.
	r.RegisterWorkflowWithOptions(TargetLockWorkflow, workflow.RegisterOptions{Name: activities.LockWorkflowType})
	r.RegisterWorkflowWithOptions(FileLockWorkflow, workflow.RegisterOptions{Name: activities.FileLockWorkflowType})
}

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
	r.RegisterWorkflowWithOptions(TargetLockWorkflow, workflow.RegisterOptions{Name: activities.LockWorkflowType})
}

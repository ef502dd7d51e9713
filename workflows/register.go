package workflows

import (
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/lock"
	"go.temporal.io/sdk/workflow"
)

// Registry is what workers, the test environment and the replayer share.
type Registry = lock.Registry

// Register registers every workflow under its contract name.
func Register(r Registry) {
	r.RegisterWorkflowWithOptions(DeployWorkflow, workflow.RegisterOptions{Name: contract.DeployWorkflow})
	r.RegisterWorkflowWithOptions(ApprovalWorkflow, workflow.RegisterOptions{Name: contract.ApprovalWorkflow})
	r.RegisterWorkflowWithOptions(RenewWorkflow, workflow.RegisterOptions{Name: contract.RenewWorkflow})
	r.RegisterWorkflowWithOptions(RolloutWorkflow, workflow.RegisterOptions{Name: contract.RolloutWorkflow})
	r.RegisterWorkflowWithOptions(InspectWorkflow, workflow.RegisterOptions{Name: contract.InspectWorkflow})
	r.RegisterWorkflowWithOptions(NotifyWorkflow, workflow.RegisterOptions{Name: contract.NotifyWorkflow})
	lock.Register(r)
}

// RegisterHost registers what a host's worker runs besides its activities:
// DeployWorkflow's host run (deploy_host.go) on its own queue, and
// InspectWorkflow (`certctl status` reading the leaf on disk).
func RegisterHost(r Registry) {
	r.RegisterWorkflowWithOptions(DeployWorkflow, workflow.RegisterOptions{Name: contract.DeployWorkflow})
	r.RegisterWorkflowWithOptions(InspectWorkflow, workflow.RegisterOptions{Name: contract.InspectWorkflow})
}

package target

// PolicyTarget is the target a host worker's policy checks for an activity
// whose input is the target itself (renewal's InspectDeployed).
func (t Target) PolicyTarget() Target { return t }

package main

import (
	"reflect"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/renewal"
)

// judge's notes, one case per way the facts can disagree.
func TestStatusNotes(t *testing.T) {
	const a, b = "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"
	deploy := func(outcome, leaf string) *lastDeploy {
		return &lastDeploy{WorkflowID: "deploy/web-1/x", Outcome: outcome, LeafSHA256: leaf}
	}
	for _, c := range []struct {
		name   string
		st     statusOutput
		notes  []string
		isLeaf *bool
	}{
		{"deployed and served", statusOutput{LastDeploy: deploy(contract.Deployed, a), Served: &servedLeaf{SHA256: a}, Disk: &renewal.Deployed{LeafSHA256: a}},
			[]string{"serving the leaf the last deploy deployed"}, ptr(true)},
		{"changed by hand", statusOutput{LastDeploy: deploy(contract.Deployed, a), Served: &servedLeaf{SHA256: b}, Disk: &renewal.Deployed{LeafSHA256: b}},
			[]string{"serving another leaf than the last deploy deployed (aaaaaaaaaaaaaaaa): it changed since deploy/web-1/x; deploy again to put it back"}, ptr(false)},
		{"rolled back", statusOutput{LastDeploy: deploy(contract.ReloadFailed, a), Served: &servedLeaf{SHA256: b}},
			[]string{"serving another leaf than the last deploy tried (aaaaaaaaaaaaaaaa): it ended ReloadFailed"}, ptr(false)},
		{"failed yet served", statusOutput{LastDeploy: deploy(contract.RollbackFailed, a), Served: &servedLeaf{SHA256: a}},
			[]string{"serving the leaf the last deploy tried, though it ended RollbackFailed"}, ptr(true)},
		{"dry run", statusOutput{LastDeploy: deploy(contract.DryRunPassed, a), Served: &servedLeaf{SHA256: b}},
			[]string{"the last deploy was a dry run: it landed nothing (see `certctl history` for the deploys before it)"}, nil},
		{"not reloaded", statusOutput{LastDeploy: deploy(contract.Deployed, a), Served: &servedLeaf{SHA256: a}, Disk: &renewal.Deployed{LeafSHA256: b, Path: "/etc/nginx/cert.pem"}},
			[]string{"serving the leaf the last deploy deployed", "the file on disk holds another leaf than the one served: the server has not loaded /etc/nginx/cert.pem (reload it), or serves another file"}, ptr(true)},
		{"no deploy", statusOutput{Served: &servedLeaf{SHA256: a}}, []string{"no deploy of this target in visibility"}, nil},
		{"nothing probed", statusOutput{LastDeploy: deploy(contract.Deployed, a), ServedErr: "not probed"}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.st.judge()
			if !reflect.DeepEqual(c.st.Notes, c.notes) {
				t.Errorf("notes %q, want %q", c.st.Notes, c.notes)
			}
			if !reflect.DeepEqual(c.st.ServedIsDeployed, c.isLeaf) {
				t.Errorf("served_is_deployed %v, want %v", c.st.ServedIsDeployed, c.isLeaf)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// A delegated deploy's host run ("<id>/host", its child) is not a deploy
// of its own; a rollout's deploys, children of the rollout, are.
func TestHostRunOf(t *testing.T) {
	info := func(id, parent string) *workflowpb.WorkflowExecutionInfo {
		e := &workflowpb.WorkflowExecutionInfo{Execution: &commonpb.WorkflowExecution{WorkflowId: id}}
		if parent != "" {
			e.ParentExecution = &commonpb.WorkflowExecution{WorkflowId: parent}
		}
		return e
	}
	for _, c := range []struct {
		id, parent string
		host       bool
	}{
		{"deploy/web-1/a", "", false},
		{"deploy/web-1/a/host", "deploy/web-1/a", true},
		{"deploy/web-1/rollout-r1", "rollout/r1", false},
		{"deploy/web-1/b/host", "", false},
	} {
		if got := hostRunOf(info(c.id, c.parent)); got != c.host {
			t.Errorf("hostRunOf(%s, parent %q) = %t", c.id, c.parent, got)
		}
	}
}

package workflows

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/contract"
)

// A destination directory others can write is refused by Plan, and the
// deploy ends InsecurePath (like InvalidInput: nothing was written), never
// ValidateFailed.
func TestInsecurePathFromPlan(t *testing.T) {
	h := newHarness(t, activities.ActionDeploy)
	h.env.OnActivity(a.Plan, mock.Anything, mock.Anything).Return(activities.Plan{},
		temporal.NewNonRetryableApplicationError("directory /tmp/certs (owner uid 0, mode 1777) is writable by group or others", contract.InsecurePath, nil))
	res, err := h.run(testRequest())
	wantOutcome(t, res, err, contract.InsecurePath)
	if !strings.Contains(res.Error, "/tmp/certs") {
		t.Fatalf("error %q does not name the directory", res.Error)
	}
	h.wantCalls() // nothing after Plan: no backup, stage or cleanup
}

package workflows

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/identity"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/renewal"
)

// checked is a request's input once validated: the timeout to use, and the
// requester and pool as compared (identity.Canonical under identityVersion,
// trimmed before it).
type checked struct {
	timeout     time.Duration
	requestedBy string
	approvers   []string
}

// check validates the input. With canon, the requester and every approver
// must be identities (identity.Canonical) and no two approvers may be one
// identity once mapped.
func (r *ApprovalRequest) check(canon bool) (checked, error) {
	out := checked{requestedBy: strings.TrimSpace(r.RequestedBy), approvers: []string{}}
	if err := profile.CheckID("request_id", r.RequestID); err != nil {
		return out, invalidInput(err)
	}
	if out.requestedBy == "" {
		return out, contract.Invalid("requested_by", "is required: two-person integrity needs to know who asked")
	}
	if canon {
		c, err := identity.Canonical(r.RequestedBy)
		if err != nil {
			return out, contract.Invalid("requested_by", err.Error())
		}
		out.requestedBy = c
	}
	if err := profile.CheckID("profile_id", r.ProfileID); err != nil {
		return out, invalidInput(err)
	}
	if r.RequiredApprovals < 0 {
		return out, contract.Invalid("required_approvals", "must not be negative")
	}
	m := r.RequiredApprovals
	if m == 0 {
		m = 1
	}
	seen := map[string]int{}
	eligible := 0
	for i, a := range r.Approvers {
		field := fmt.Sprintf("approvers[%d]", i)
		k, entry := profile.ActorKey(a), strings.TrimSpace(a)
		if canon {
			c, err := identity.Canonical(a)
			if err != nil {
				return out, contract.Invalid(field, err.Error()+"; fix the profile's approvers")
			}
			k, entry = c, c
		} else if k == "" {
			return out, contract.Invalid(field, "is empty")
		}
		if j, dup := seen[k]; dup {
			if canon {
				return out, contract.Invalid(field, fmt.Sprintf("%s and approvers[%d] %s are one identity (%s): list each approver once",
					strconv.QuoteToASCII(a), j, strconv.QuoteToASCII(r.Approvers[j]), k))
			}
			return out, contract.Invalid(field, fmt.Sprintf("%q is listed twice", a))
		}
		seen[k] = i
		out.approvers = append(out.approvers, entry)
		if profile.ActorKey(k) != profile.ActorKey(out.requestedBy) {
			eligible++
		}
	}
	if len(r.Approvers) > 0 && m > eligible {
		return out, contract.Invalid("required_approvals", fmt.Sprintf(
			"%d approvals can never be given: the pool has %d approver(s) other than the requester", m, eligible))
	}
	if r.Timeout < 0 {
		return out, contract.Invalid("timeout", "must not be negative")
	}
	out.timeout = r.Timeout.D()
	if r.Timeout == 0 {
		out.timeout = renewal.DefaultApprovalTimeout
	}
	return out, nil
}

func invalidInput(err error) error {
	return contract.InvalidField(err, "input")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

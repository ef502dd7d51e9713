package clientenv

import (
	"context"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"

	"github.com/certctl/certctl/contract"
)

// SearchAttributeLister is the part of the operator service a check needs
// (client.Client's OperatorService() has it).
type SearchAttributeLister interface {
	ListSearchAttributes(ctx context.Context, in *operatorservice.ListSearchAttributesRequest, opts ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error)
}

// CheckTimeout bounds one check: a command that needs the attributes says
// so within seconds, never hangs on them.
const CheckTimeout = 10 * time.Second

// WrongType is a search attribute the namespace has with another type
// than certctl's.
type WrongType struct {
	Name       string
	Have, Want enumspb.IndexedValueType
}

// SearchAttributeCheck is how a namespace's search attributes compare with
// contract.SearchAttributes.
type SearchAttributeCheck struct {
	Namespace string
	// Have is every custom search attribute of the namespace, by name.
	Have      map[string]enumspb.IndexedValueType
	Missing   []temporal.SearchAttributeKey
	WrongType []WrongType
}

// CheckSearchAttributes lists the namespace's search attributes (one
// ListSearchAttributes call) and compares them with certctl's.
func CheckSearchAttributes(ctx context.Context, ops SearchAttributeLister, namespace string) (SearchAttributeCheck, error) {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	resp, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return SearchAttributeCheck{Namespace: namespace}, fmt.Errorf("list the search attributes of namespace %q: %w", namespace, err)
	}
	return CompareSearchAttributes(namespace, resp.GetCustomAttributes()), nil
}

// CompareSearchAttributes compares have, a namespace's custom search
// attributes, with contract.SearchAttributes.
func CompareSearchAttributes(namespace string, have map[string]enumspb.IndexedValueType) SearchAttributeCheck {
	c := SearchAttributeCheck{Namespace: namespace, Have: have}
	for _, k := range contract.SearchAttributes {
		t, ok := have[k.GetName()]
		switch {
		case !ok:
			c.Missing = append(c.Missing, k)
		case t != k.GetValueType():
			c.WrongType = append(c.WrongType, WrongType{Name: k.GetName(), Have: t, Want: k.GetValueType()})
		}
	}
	return c
}

// OK says the namespace has every one of certctl's search attributes with
// its type.
func (c SearchAttributeCheck) OK() bool { return len(c.Missing) == 0 && len(c.WrongType) == 0 }

// MissingNames are the names of the missing attributes.
func (c SearchAttributeCheck) MissingNames() []string {
	names := make([]string, len(c.Missing))
	for i, k := range c.Missing {
		names[i] = k.GetName()
	}
	return names
}

// Problem says what is wrong and what to do, "" when nothing is: the
// message every command and the worker give.
func (c SearchAttributeCheck) Problem() string {
	var parts []string
	if len(c.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("namespace %q lacks certctl's search attributes %s: register them once with `certctl setup` "+
			"(with the same TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE or profile)", c.Namespace, strings.Join(c.MissingNames(), ", ")))
	}
	for _, w := range c.WrongType {
		parts = append(parts, w.Problem(c.Namespace))
	}
	return strings.Join(parts, "; ")
}

// Problem says the attribute's type is not certctl's and what to do.
func (w WrongType) Problem(namespace string) string {
	return fmt.Sprintf("search attribute %s of namespace %q is %s, certctl needs %s: remove it "+
		"(temporal operator search-attribute remove --name %s) and run `certctl setup`", w.Name, namespace, w.Have, w.Want, w.Name)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"

	"github.com/spf13/cobra"

	"github.com/certctl/certctl/clientenv"
	"github.com/certctl/certctl/contract"
)

func setupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "Register certctl's search attributes on the Temporal namespace (once per namespace; idempotent)",
		Long: `Registers certctl's search attributes (` + searchAttributeList() + `,
all Keyword) on the namespace the environment selects, through the operator
service, and checks them. Run it once per namespace, with the same
TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (or envconfig profile, TLS, API key) the
workers use; it carries no payload, so it needs no payload key. A second run
changes nothing and says "already registered". Every command that needs the
attributes (deploy, renew, approvals list) checks for them first and refuses
in seconds, naming the missing ones and this command.

Exit codes: 0 every attribute registered (now or before); 1 one could not be
registered, or exists with another type (named, with what to do), or the
cluster could not be reached; 2 bad flags or arguments.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// No payload goes through this client: the codec key is not
			// needed here (an admin may run setup without it).
			o, err := clientenv.ConnectionOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			c, err := client.DialContext(cmd.Context(), o)
			if err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("connect to Temporal at %s: %v (set TEMPORAL_ADDRESS or TEMPORAL_PROFILE)", o.HostPort, err)}
			}
			defer c.Close()
			return runSetup(cmd.Context(), c.OperatorService(), o.Namespace, cmd.OutOrStdout())
		},
	}
}

// dialedNamespace is the namespace dial connected to (`certctl dev` sets
// it for its own client): what the checks ask about.
var dialedNamespace = client.DefaultNamespace

// searchAttributeAdmin is the part of the operator service setup uses.
type searchAttributeAdmin interface {
	clientenv.SearchAttributeLister
	AddSearchAttributes(ctx context.Context, in *operatorservice.AddSearchAttributesRequest, opts ...grpc.CallOption) (*operatorservice.AddSearchAttributesResponse, error)
}

// setupSettle bounds how long setup waits for attributes it added to be
// listed (a cluster with Elasticsearch visibility adds them in the
// background).
var setupSettle = 30 * time.Second

// runSetup registers the missing attributes (one AddSearchAttributes call)
// and prints one line per attribute: "registered", "already registered",
// or what is wrong with it.
func runSetup(ctx context.Context, ops searchAttributeAdmin, namespace string, w io.Writer) error {
	fail := func(format string, args ...any) error {
		return &exitError{code: 1, msg: fmt.Sprintf(format, args...)}
	}
	before, err := clientenv.CheckSearchAttributes(ctx, ops, namespace)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(w, "namespace %s: certctl's search attributes\n", namespace)
	after := before
	if len(before.Missing) > 0 {
		add := map[string]enumspb.IndexedValueType{}
		for _, k := range before.Missing {
			add[k.GetName()] = k.GetValueType()
		}
		actx, cancel := context.WithTimeout(ctx, setupSettle)
		_, addErr := ops.AddSearchAttributes(actx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: add})
		cancel()
		// A refused add may be another setup's having added them meanwhile:
		// what counts is what the namespace lists now.
		if addErr != nil {
			after, err = clientenv.CheckSearchAttributes(ctx, ops, namespace)
		} else {
			after, err = waitListed(ctx, ops, namespace, before.MissingNames())
		}
		if err != nil {
			return fail("%v", err)
		}
		if addErr != nil && len(after.Missing) > 0 {
			return fail("register %v on namespace %q: %v%s", after.MissingNames(), namespace, addErr, permissionHint(addErr))
		}
	}
	var problems []string
	for _, k := range contract.SearchAttributes {
		name, want := k.GetName(), k.GetValueType()
		have, had := before.Have[name]
		now, listed := after.Have[name]
		switch {
		case had && have != want:
			p := clientenv.WrongType{Name: name, Have: have, Want: want}.Problem(namespace)
			problems = append(problems, p)
			fmt.Fprintf(w, "  %-18s %-8s WRONG TYPE %s\n", name, want, have)
		case had:
			fmt.Fprintf(w, "  %-18s %-8s already registered\n", name, want)
		case listed && now == want:
			fmt.Fprintf(w, "  %-18s %-8s registered\n", name, want)
		default:
			problems = append(problems, fmt.Sprintf("search attribute %s was added to namespace %q but is not listed after %s", name, namespace, setupSettle))
			fmt.Fprintf(w, "  %-18s %-8s NOT LISTED\n", name, want)
		}
	}
	if len(problems) > 0 {
		return fail("%s", strings.Join(problems, "; "))
	}
	if len(before.Missing) == 0 {
		fmt.Fprintln(w, "nothing to do: every one was already registered")
	} else {
		fmt.Fprintf(w, "registered %d, %d already there\n", len(before.Missing), len(contract.SearchAttributes)-len(before.Missing))
	}
	return nil
}

// waitListed lists the namespace's attributes until names are all there
// or setupSettle is over, and returns the last listing.
func waitListed(ctx context.Context, ops clientenv.SearchAttributeLister, namespace string, names []string) (clientenv.SearchAttributeCheck, error) {
	end := time.Now().Add(setupSettle)
	for {
		c, err := clientenv.CheckSearchAttributes(ctx, ops, namespace)
		if err != nil {
			return c, err
		}
		all := true
		for _, n := range names {
			_, ok := c.Have[n]
			all = all && ok
		}
		if all || time.Now().After(end) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// permissionHint says what to do when the cluster refuses the operator
// call (an API key without admin rights, Temporal Cloud).
func permissionHint(err error) string {
	var pd *serviceerror.PermissionDenied
	var un *serviceerror.Unimplemented
	if errors.As(err, &pd) || errors.As(err, &un) {
		return " (this identity may not manage search attributes: have an admin of the namespace add them, " +
			"e.g. `temporal operator search-attribute create --name NAME --type Keyword` for each, or in Temporal Cloud's namespace settings)"
	}
	return ""
}

// requireSearchAttributes is the check every command that needs certctl's
// search attributes runs first (one ListSearchAttributes call, nothing
// cached): an *exitError (exit 1) naming the missing or mistyped ones and
// `certctl setup`, or nil. A cluster that does not let this identity list
// them (PermissionDenied, Unimplemented) is not refused here: the start
// request itself then says what is missing (searchAttributeHint).
func requireSearchAttributes(ctx context.Context, c client.Client) error {
	check, err := clientenv.CheckSearchAttributes(ctx, c.OperatorService(), dialedNamespace)
	if err != nil {
		var pd *serviceerror.PermissionDenied
		var un *serviceerror.Unimplemented
		if errors.As(err, &pd) || errors.As(err, &un) {
			return nil
		}
		return &exitError{code: 1, msg: "check certctl's search attributes: " + err.Error()}
	}
	if !check.OK() {
		return &exitError{code: 1, msg: check.Problem()}
	}
	return nil
}

// searchAttributeList is "CertctlTarget, CertctlOutcome, …".
func searchAttributeList() string {
	names := make([]string, len(contract.SearchAttributes))
	for i, k := range contract.SearchAttributes {
		names[i] = k.GetName()
	}
	return strings.Join(names, ", ")
}

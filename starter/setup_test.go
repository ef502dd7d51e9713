package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc"
)

// fakeOperator is a namespace's search attributes, as the operator service
// lists and adds them.
type fakeOperator struct {
	have   map[string]enumspb.IndexedValueType
	adds   int
	addErr error
}

func (f *fakeOperator) ListSearchAttributes(_ context.Context, in *operatorservice.ListSearchAttributesRequest, _ ...grpc.CallOption) (*operatorservice.ListSearchAttributesResponse, error) {
	m := map[string]enumspb.IndexedValueType{}
	for k, v := range f.have {
		m[k] = v
	}
	return &operatorservice.ListSearchAttributesResponse{CustomAttributes: m}, nil
}

func (f *fakeOperator) AddSearchAttributes(_ context.Context, in *operatorservice.AddSearchAttributesRequest, _ ...grpc.CallOption) (*operatorservice.AddSearchAttributesResponse, error) {
	f.adds++
	if f.addErr != nil {
		return nil, f.addErr
	}
	for k, v := range in.GetSearchAttributes() {
		f.have[k] = v
	}
	return &operatorservice.AddSearchAttributesResponse{}, nil
}

// Unit test of setup's decisions (the integration test runs it against a
// real dev server): one add for what is missing, "already registered" for
// the rest, a mistyped attribute an error naming it, a refused add an
// error saying who may add them.
func TestRunSetup(t *testing.T) {
	kw := enumspb.INDEXED_VALUE_TYPE_KEYWORD
	f := &fakeOperator{have: map[string]enumspb.IndexedValueType{"CertctlTarget": kw}}
	var out bytes.Buffer
	if err := runSetup(context.Background(), f, "ns1", &out); err != nil {
		t.Fatal(err)
	}
	want := `namespace ns1: certctl's search attributes
  CertctlTarget      Keyword  already registered
  CertctlOutcome     Keyword  registered
  ApprovalState      Keyword  registered
  ApprovalProfile    Keyword  registered
  ApprovalDecidedBy  Keyword  registered
registered 4, 1 already there
`
	if out.String() != want || f.adds != 1 {
		t.Fatalf("first run (%d adds):\n%s\nwant\n%s", f.adds, out.String(), want)
	}
	out.Reset()
	if err := runSetup(context.Background(), f, "ns1", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "  ApprovalDecidedBy  Keyword  already registered\nnothing to do: every one was already registered\n") || f.adds != 1 {
		t.Fatalf("second run (%d adds):\n%s", f.adds, out.String())
	}

	f.have["CertctlOutcome"] = enumspb.INDEXED_VALUE_TYPE_INT
	out.Reset()
	err := runSetup(context.Background(), f, "ns1", &out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || ee.msg != "search attribute CertctlOutcome of namespace \"ns1\" is Int, certctl needs Keyword: remove it "+
		"(temporal operator search-attribute remove --name CertctlOutcome) and run `certctl setup`" {
		t.Fatalf("mistyped: %v", err)
	}
	if !strings.Contains(out.String(), "  CertctlOutcome     Keyword  WRONG TYPE Int\n") {
		t.Fatalf("mistyped line:\n%s", out.String())
	}

	refused := &fakeOperator{have: map[string]enumspb.IndexedValueType{}, addErr: serviceerror.NewPermissionDenied("not an admin", "")}
	err = runSetup(context.Background(), refused, "ns2", &out)
	if !errors.As(err, &ee) || ee.code != 1 || !strings.HasPrefix(ee.msg, "register [CertctlTarget CertctlOutcome ApprovalState ApprovalProfile ApprovalDecidedBy] on namespace \"ns2\": not an admin (this identity may not manage search attributes") {
		t.Fatalf("refused: %v", err)
	}
}

package clientenv

import (
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
)

// A namespace's attributes against certctl's: missing ones named in order,
// a mistyped one named with both types and what to do, none when all are
// there (other attributes of the namespace do not matter).
func TestCompareSearchAttributes(t *testing.T) {
	kw := enumspb.INDEXED_VALUE_TYPE_KEYWORD
	all := map[string]enumspb.IndexedValueType{"CertctlTarget": kw, "CertctlOutcome": kw, "ApprovalState": kw,
		"ApprovalProfile": kw, "ApprovalDecidedBy": kw, "Other": enumspb.INDEXED_VALUE_TYPE_INT}
	if c := CompareSearchAttributes("default", all); !c.OK() || c.Problem() != "" {
		t.Fatalf("all registered: %+v %q", c, c.Problem())
	}

	none := CompareSearchAttributes("default", nil)
	want := "namespace \"default\" lacks certctl's search attributes CertctlTarget, CertctlOutcome, ApprovalState, ApprovalProfile, ApprovalDecidedBy: " +
		"register them once with `certctl setup` (with the same TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE or profile)"
	if none.OK() || none.Problem() != want {
		t.Fatalf("none registered:\n got %q\nwant %q", none.Problem(), want)
	}

	odd := map[string]enumspb.IndexedValueType{}
	for k, v := range all {
		odd[k] = v
	}
	odd["CertctlTarget"] = enumspb.INDEXED_VALUE_TYPE_TEXT
	delete(odd, "ApprovalDecidedBy")
	c := CompareSearchAttributes("prod", odd)
	want = "namespace \"prod\" lacks certctl's search attributes ApprovalDecidedBy: register them once with `certctl setup` " +
		"(with the same TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE or profile); " +
		"search attribute CertctlTarget of namespace \"prod\" is Text, certctl needs Keyword: remove it " +
		"(temporal operator search-attribute remove --name CertctlTarget) and run `certctl setup`"
	if c.OK() || c.Problem() != want {
		t.Fatalf("one missing, one mistyped:\n got %q\nwant %q", c.Problem(), want)
	}
}

package supervisor

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The supervisor's init must run before the heavy inits of the worker's
// other packages (see the package comment): it imports only the standard
// library, whose import paths have no dot in their first element, and
// stagedview, which holds to the same rule.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	const view = "github.com/certctl/certctl/stagedview"
	for _, dir := range []string{".", "../stagedview"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", dir)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, im := range af.Imports {
				p, _ := strconv.Unquote(im.Path.Value)
				if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") && (p != view || dir != ".") {
					t.Errorf("%s imports %s: the supervisor may import only the standard library and %s", f, p, view)
				}
			}
		}
	}
}

package all_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/certctl/certctl/connectors"
)

// registrations counts, per package directory under root, the calls to
// register (e.g. "connectors.Register(") in its non-test files.
func registrations(t *testing.T, root, register string) map[string]int {
	t.Helper()
	dirs, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(root, d.Name(), "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(b), register); n > 0 {
				out[d.Name()] += n
			}
		}
	}
	return out
}

// imports lists the import paths of a Go file.
func imports(t *testing.T, file string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, i := range f.Imports {
		p, _ := strconv.Unquote(i.Path.Value)
		out[p] = true
	}
	return out
}

// Every package under connectors/ that registers a connector is imported by
// connectors/all, and every registration it makes is live: the list comes
// from the directories, so a connector dropped from all.go fails here.
func TestRegistered(t *testing.T) {
	regs := registrations(t, "..", "connectors.Register(")
	if len(regs) == 0 {
		t.Fatal("found no connector packages under connectors/")
	}
	imported := imports(t, "all.go")
	want := 0
	for dir, n := range regs {
		if !imported["github.com/certctl/certctl/connectors/"+dir] {
			t.Errorf("connectors/%s registers a connector but connectors/all does not import it", dir)
		}
		want += n
	}
	if got := connectors.Names(); len(got) != want {
		t.Errorf("registered %v (%d), but the connector packages make %d registrations", got, len(got), want)
	}
}

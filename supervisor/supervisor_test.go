package supervisor

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
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

// The worker's binary started as a supervisor runs its command before the
// heavy packages' inits (the Temporal SDK's and API's, gRPC, protobuf,
// client-go): GODEBUG=inittrace=1 lists every init that ran before the
// supervisor's took over and exited. An import that sorts late (os/exec's
// path/filepath did) lets them all run first again.
func TestSupervisorInitsBeforeTheHeavyPackages(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "certctl-worker")
	build := exec.Command("go", "build", "-o", bin, "../worker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ../worker: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), EnvVar+"=1", "GODEBUG=inittrace=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	_ = cmd.Run() // an empty spec: it reports and exits
	var inits []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "init" {
			inits = append(inits, f[1])
		}
	}
	if len(inits) == 0 {
		t.Fatalf("no init traced:\n%s", stderr.String())
	}
	// Before os/exec left the supervisor: 159 inits, the Temporal API's
	// enums (~0.8 ms), protodesc, genproto, klog among them; now ~80, the
	// small leaf packages sorting before encoding/json.
	if len(inits) > 120 {
		t.Errorf("%d inits ran before the supervisor took over, want ~80", len(inits))
	}
	for _, p := range inits {
		for _, heavy := range []string{"go.temporal.io/", "k8s.io/", "google.golang.org/protobuf/reflect/", "google.golang.org/protobuf/types/", "google.golang.org/genproto/", "github.com/certctl/certctl/"} {
			if strings.HasPrefix(p, heavy) {
				t.Errorf("%s initialized before the supervisor took over (%d inits ran first)", p, len(inits))
			}
		}
	}
}

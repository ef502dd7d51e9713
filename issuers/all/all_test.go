package all_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certctl/certctl/issuers"
	_ "github.com/certctl/certctl/issuers/all"
)

// Every package under issuers/ that registers an issuer is imported by
// issuers/all: the list comes from the directories.
func TestRegistered(t *testing.T) {
	all, err := os.ReadFile("all.go")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join("..", d.Name(), "*.go"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if strings.HasSuffix(f, "_test.go") || !strings.Contains(string(b), "issuers.Register(") {
				continue
			}
			n += strings.Count(string(b), "issuers.Register(")
			if !strings.Contains(string(all), `"github.com/certctl/certctl/issuers/`+d.Name()+`"`) {
				t.Errorf("issuers/%s registers an issuer but issuers/all does not import it", d.Name())
			}
		}
	}
	if n == 0 || len(issuers.Names()) != n {
		t.Errorf("registered %v, but the issuer packages make %d registrations", issuers.Names(), n)
	}
}

package devenv

import (
	"strings"
	"testing"

	"github.com/certctl/certctl/contract"
)

// The repository's temporal-dev.yaml becomes the CLI's flags: every search
// attribute registered with its type, the UI and codec as asked; a type
// the CLI does not take is refused by name.
func TestDevServerArgs(t *testing.T) {
	cfg, err := LoadDevConfig("../temporal-dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.SearchAttributes) == 0 {
		t.Fatal("temporal-dev.yaml registers no search attribute")
	}
	args, err := devServerArgs(DevServerOptions{Config: cfg, UI: true, UIPort: 8233, UICodecEndpoint: "http://127.0.0.1:8081", DBFile: "/tmp/x.db"}, 7233)
	if err != nil {
		t.Fatal(err)
	}
	line := " " + strings.Join(args, " ") + " "
	for n, typ := range cfg.SearchAttributes {
		if !strings.Contains(line, " --search-attribute "+n+"="+typ+" ") {
			t.Errorf("search attribute %s=%s not passed: %s", n, typ, line)
		}
	}
	for _, want := range []string{" server start-dev ", " --ip " + cfg.IP + " ", " --port 7233 ", " --namespace " + cfg.Namespace + " ",
		" --ui-port 8233 ", " --ui-codec-endpoint http://127.0.0.1:8081 ", " --db-filename /tmp/x.db "} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q: %s", want, line)
		}
	}
	if strings.Contains(line, "--headless") {
		t.Errorf("UI asked for, but --headless: %s", line)
	}
	headless, err := devServerArgs(DevServerOptions{Config: cfg}, 7233)
	if err != nil || !strings.Contains(strings.Join(headless, " "), "--headless") || strings.Contains(strings.Join(headless, " "), "--ui-port") {
		t.Errorf("without UI: %v %v", headless, err)
	}
	cfg.SearchAttributes = map[string]string{"CertctlOdd": "Keywrd"}
	if _, err := devServerArgs(DevServerOptions{Config: cfg}, 7233); err == nil || !strings.Contains(err.Error(), "CertctlOdd") {
		t.Errorf("unsupported type: %v", err)
	}
}

// Without the CLI in the tool cache or on PATH, the error says how to get it.
func TestTemporalCLIMissingSaysMakeTemporal(t *testing.T) {
	t.Setenv("CERTCTL_TEMPORAL_BIN", "")
	t.Setenv("CERTCTL_TOOLS", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	_, err := TemporalCLI("v0.0.0")
	if err == nil || !strings.Contains(err.Error(), "make temporal") {
		t.Fatalf("error %v, want one naming `make temporal`", err)
	}
}

// temporal-dev.yaml registers exactly certctl's search attributes
// (contract.SearchAttributes, the one list), each with its type; without
// them on request.
func TestDevConfigSearchAttributesAreContracts(t *testing.T) {
	cfg, err := LoadDevConfig("../temporal-dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, k := range contract.SearchAttributes {
		want[k.GetName()] = k.GetValueType().String()
	}
	for n, typ := range cfg.SearchAttributes {
		if want[n] != typ {
			t.Errorf("temporal-dev.yaml: search attribute %s: %s, contract.SearchAttributes has %q", n, typ, want[n])
		}
	}
	for n, typ := range want {
		if _, ok := cfg.SearchAttributes[n]; !ok {
			t.Errorf("temporal-dev.yaml lacks search attribute %s (%s) of contract.SearchAttributes", n, typ)
		}
	}
	args, err := devServerArgs(DevServerOptions{Config: cfg, NoSearchAttributes: true}, 7233)
	if err != nil {
		t.Fatal(err)
	}
	if line := strings.Join(args, " "); strings.Contains(line, "--search-attribute") {
		t.Errorf("NoSearchAttributes, yet: %s", line)
	}
}

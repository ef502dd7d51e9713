package testsuite

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/certctl/certctl/devenv"
)

// Process is a child started by the tests, logging to a file.
type Process = devenv.Process

// StartProcess runs bin with args and extra environment, output to logPath.
func StartProcess(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	return devenv.StartProcess(name, logPath, env, bin, args...)
}

// BuildBinaries builds certctl and certctl-worker into dir, from the
// repository the working directory is in.
func BuildBinaries(dir string) (certctl, worker string, err error) {
	gomod, err := RepoFile("go.mod")
	if err != nil {
		return "", "", err
	}
	root := filepath.Dir(gomod)
	certctl, worker = filepath.Join(dir, "certctl"), filepath.Join(dir, "certctl-worker")
	for _, b := range []struct{ out, pkg string }{{certctl, "./starter"}, {worker, "./worker"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return certctl, worker, nil
}

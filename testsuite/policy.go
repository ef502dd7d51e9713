package testsuite

import (
	"os"
	"path/filepath"

	"github.com/certctl/certctl/devenv"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/profile"
)

// WritePolicy writes a host policy file (CERTCTL_WORKER_POLICY's format).
func WritePolicy(path string, p policy.Policy) error { return devenv.WritePolicy(path, p) }

// KubeE2ENamespace is the one namespace the test policy allows the certctl
// worker to write Secrets in.
const KubeE2ENamespace = "shop"

// UseTestPolicy gives every worker the tests start (they inherit the test
// process's environment) a host policy that allows the tests' temp dirs and
// any command, and a profiles directory: dir/worker.yaml and dir/profiles.
// It returns the profiles directory, where renewal tests install profiles.
// sshHosts are the policy's allow_ssh_hosts (none: no agentless SSH target
// is allowed).
func UseTestPolicy(dir string, sshHosts ...string) (profilesDir string, err error) {
	path := filepath.Join(dir, "worker.yaml")
	if err := WritePolicy(path, policy.Policy{
		AllowPaths:    []string{os.TempDir()},
		AllowCommands: [][]string{{policy.Wildcard}},
		AllowSSHHosts: sshHosts,
		// The kubernetes tests' end-to-end namespace; any other is refused.
		AllowKubernetesNamespaces: []string{KubeE2ENamespace},
	}); err != nil {
		return "", err
	}
	profilesDir = filepath.Join(dir, "profiles")
	if err := os.MkdirAll(profilesDir, 0o755); err != nil {
		return "", err
	}
	for k, v := range map[string]string{policy.EnvPath: path, profile.EnvDir: profilesDir} {
		if err := os.Setenv(k, v); err != nil {
			return "", err
		}
	}
	return profilesDir, nil
}

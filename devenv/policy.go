package devenv

import (
	"os"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/policy"
)

// WritePolicy writes a host policy file (CERTCTL_WORKER_POLICY's format).
func WritePolicy(path string, p policy.Policy) error {
	b, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

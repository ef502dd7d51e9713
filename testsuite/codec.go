package testsuite

import (
	"os"
	"strings"

	"github.com/certctl/certctl/codec"
)

// TestCodecKeys returns the test-only payload key of
// testsuite/histories/test-codec-keys in CERTCTL_CODEC_KEYS form. The
// recorded histories are encrypted under it; it protects nothing real.
func TestCodecKeys() (string, error) {
	p, err := RepoFile("testsuite/histories/test-codec-keys")
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	var entries []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			entries = append(entries, l)
		}
	}
	return strings.Join(entries, ","), nil
}

// UseTestCodec puts the test key in this process's environment, so every
// child (workers, certctl) and clientenv.Options use it, and returns the codec.
func UseTestCodec() (*codec.Codec, error) {
	keys, err := TestCodecKeys()
	if err != nil {
		return nil, err
	}
	if err := os.Setenv(codec.EnvKeys, keys); err != nil {
		return nil, err
	}
	_ = os.Unsetenv(codec.EnvKeyFile)
	return codec.FromEnv()
}

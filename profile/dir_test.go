package profile_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certctl/certctl/profile"
)

// A renewal names a profile by ID; the ID is never a path.
func TestLoadIDRefusesPathsAndMismatches(t *testing.T) {
	dir := t.TempDir()
	for _, id := range []string{"../etc/p", "/etc/certctl/profiles/p", "p/q", ""} {
		if _, err := profile.LoadID(dir, id); err == nil {
			t.Errorf("profile id %q accepted", id)
		}
	}
	_, err := profile.LoadID(dir, "p-missing")
	if !errors.Is(err, profile.ErrNotInstalled) || !strings.Contains(err.Error(), filepath.Join(dir, "p-missing.yaml")) || !strings.Contains(err.Error(), profile.EnvDir) {
		t.Fatalf("missing profile: %v", err)
	}
	text := "profile_id: p-other\nsubject: {common_name: a.example}\nsans: [a.example]\nissuer: {type: localca, ca_cert: /x, ca_key: /y}\ntargets: [{target_id: w, target_type: nginx, host: h, target_config: {cert_path: /a/c.pem, key_path: /a/k.pem, post_deploy_verify: {enabled: false}}}]\n"
	if err := os.WriteFile(filepath.Join(dir, "p-one.yaml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := profile.LoadID(dir, "p-one"); err == nil || !strings.Contains(err.Error(), `"p-other"`) {
		t.Fatalf("a file holding another profile_id: %v", err)
	}
}

func TestProfilesDirDefault(t *testing.T) {
	t.Setenv(profile.EnvDir, "")
	if d := profile.DirFromEnv(); d != "/etc/certctl/profiles" {
		t.Fatal(d)
	}
}

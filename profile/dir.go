package profile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/certctl/certctl/contract"
)

// The profiles directory lives with the workflow worker: a renewal names a
// profile by ID and the worker reads <dir>/<profile_id>.yaml, so a request
// never carries its own approval policy.
const (
	EnvDir     = "CERTCTL_PROFILES_DIR"
	DefaultDir = "/etc/certctl/profiles"
)

// DirFromEnv is CERTCTL_PROFILES_DIR, else DefaultDir.
func DirFromEnv() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return DefaultDir
}

// ErrNotInstalled is returned (wrapped) by LoadID for a profile ID with no
// file in the directory.
var ErrNotInstalled = errors.New("profile not installed")

// LoadID reads the profile id from dir/<id>.yaml. The id must be a plain
// identifier (CheckID: no path) and the file's profile_id must be the same.
func LoadID(dir, id string) (*Profile, error) {
	if err := CheckID("profile_id", id); err != nil {
		return nil, fmt.Errorf("%w: name an installed profile by its ID; a profile file is installed as %s", err, filepath.Join(dir, "<profile_id>.yaml"))
	}
	path := filepath.Join(dir, id+".yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("profile_id: %w: no %s on the workflow worker (%s=%s)", ErrNotInstalled, path, EnvDir, dir)
	}
	p, err := Load(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.ProfileID != id {
		return nil, &contract.FieldError{Field: "profile_id", Msg: fmt.Sprintf("%s holds profile_id %q, not %q: a profile's file is named after its ID", path, p.ProfileID, id)}
	}
	return p, nil
}

package activities

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// EnvStateDir names the host worker's state directory (default
// /var/lib/certctl). It holds the list of directories this host has staged
// files into, so a worker starting after a crash knows where to look for
// leftovers.
const EnvStateDir = "CERTCTL_STATE_DIR"

const stagedDirsFile = "staged-dirs"

var stagedDirsMu sync.Mutex

// StateDir is the state directory from the environment.
func StateDir() string {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d
	}
	return "/var/lib/certctl"
}

// recordStagedDirs adds dirs to the state dir's list (once each).
func recordStagedDirs(stateDir string, dirs []string) error {
	if stateDir == "" {
		return nil
	}
	stagedDirsMu.Lock()
	defer stagedDirsMu.Unlock()
	known, err := StagedDirs(stateDir)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range known {
		seen[d] = true
	}
	var add []string
	for _, d := range dirs {
		if !seen[d] {
			seen[d] = true
			add = append(add, d)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, stagedDirsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(add, "\n") + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// StagedDirs lists the directories this host has staged into.
func StagedDirs(stateDir string) ([]string, error) {
	f, err := os.Open(filepath.Join(stateDir, stagedDirsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if d := strings.TrimSpace(sc.Text()); d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs, sc.Err()
}

// SweepTemps removes "<path>.certctl-tmp.<unix-nanos>" files, in the
// directories this host has staged into, whose stamp is older than before:
// the start of the oldest deploy still running (a running deploy's temp
// files are never older than its start). It returns what it removed.
func SweepTemps(stateDir string, before int64) ([]string, error) {
	dirs, err := StagedDirs(stateDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, d := range dirs {
		matches, err := filepath.Glob(filepath.Join(globEscape(d), "*"+TempMarker+"*"))
		if err != nil {
			return removed, err
		}
		for _, m := range matches {
			i := strings.LastIndex(m, TempMarker)
			stamp, err := strconv.ParseInt(m[i+len(TempMarker):], 10, 64)
			if err != nil || stamp >= before {
				continue
			}
			if fi, err := os.Lstat(m); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if err := os.Remove(m); err == nil {
				removed = append(removed, m)
			}
		}
		if len(removed) > 0 {
			_ = syncDir(d)
		}
	}
	return removed, nil
}

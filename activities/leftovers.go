package activities

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/certctl/certctl/safefs"
)

// EnvStateDir names the host worker's state directory (default
// /var/lib/certctl). It holds the list of directories this host has staged
// files into, so a worker starting after a crash knows where to look for
// leftovers.
const EnvStateDir = "CERTCTL_STATE_DIR"

// stagedDirsFile lists the staged directories, one JSON object a line with
// the path as bytes, so no byte of a path (a newline included) can split it.
const stagedDirsFile = "staged-dirs.jsonl"

type stagedDir struct {
	Dir []byte `json:"dir"`
}

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
	var add []stagedDir
	for _, d := range dirs {
		if !seen[d] {
			seen[d] = true
			add = append(add, stagedDir{Dir: []byte(d)})
		}
	}
	if len(add) == 0 {
		return nil
	}
	return appendRecords(stateDir, stagedDirsFile, add)
}

// StagedDirs lists the directories this host has staged into.
func StagedDirs(stateDir string) ([]string, error) {
	recs, err := readRecords[stagedDir](stateDir, stagedDirsFile)
	var dirs []string
	for _, r := range recs {
		if len(r.Dir) > 0 {
			dirs = append(dirs, string(r.Dir))
		}
	}
	return dirs, err
}

// SweepTemps removes "<path>.certctl-tmp.<unix-nanos>" files, in the
// directories this host has staged into, whose stamp is older than before:
// the start of the oldest deploy still running (a running deploy's temp
// files are never older than its start). Each directory is opened without
// following links and only regular files in it are removed. It returns what
// it removed.
func SweepTemps(stateDir string, before int64) ([]string, error) {
	dirs, err := StagedDirs(stateDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, dir := range dirs {
		d, err := safefs.OpenDir(dir)
		if err != nil {
			continue // gone, or a link now: nothing of ours to sweep there
		}
		names, err := d.Names()
		if err != nil {
			d.Close()
			return removed, err
		}
		n := len(removed)
		for _, name := range names {
			i := strings.LastIndex(name, TempMarker)
			if i <= 0 {
				continue
			}
			stamp, err := strconv.ParseInt(name[i+len(TempMarker):], 10, 64)
			if err != nil || stamp >= before {
				continue
			}
			if info, err := d.Lstat(name); err != nil || !info.IsRegular() {
				continue
			}
			if err := d.Remove(name); err == nil {
				removed = append(removed, d.Join(name))
			}
		}
		if len(removed) > n {
			_ = d.Sync()
		}
		d.Close()
	}
	return removed, nil
}

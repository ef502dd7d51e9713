package activities

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"github.com/certctl/certctl/safefs"
)

// The backup ledger (backupsFile in the state directory) names every backup
// this host worker made, one JSON object a line. Retention counts and
// removes only backups the ledger names and that are still the files made
// (same device and inode, same owner): a file planted with a backup's name
// never pushes a real backup out and is never removed. Paths are stored as
// bytes (base64 in JSON), so any byte in a path survives, a newline
// included.
const backupsFile = "backups.jsonl"

var ledgerMu sync.Mutex

// ledgerLines is the backup ledger's lineCache; ledgerMu guards it.
var ledgerLines = map[string]*lineCache[backupRecord]{}

// readLedger reads the backup ledger of stateDir; the caller holds ledgerMu.
func readLedger(stateDir string) ([]backupRecord, error) {
	c := ledgerLines[stateDir]
	if c == nil {
		c = &lineCache[backupRecord]{}
		ledgerLines[stateDir] = c
	}
	return readRecordsCached(stateDir, backupsFile, c)
}

type backupRecord struct {
	// Where is the machine the backup is on: "" for this one, the
	// FS.Where of a remote one ("ssh://user@host:port").
	Where  string    `json:"where,omitempty"`
	Path   []byte    `json:"path"`   // the destination
	Backup []byte    `json:"backup"` // BackupPath(Path, Stamp)
	Stamp  int64     `json:"stamp"`
	ID     safefs.ID `json:"id"`  // the backup file made
	UID    int       `json:"uid"` // its owner when made
}

// appendRecords adds one JSON line per record to the state dir's file name,
// fsynced.
func appendRecords[T any](stateDir, name string, recs []T) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	stateDir, err := secureStateDir(stateDir)
	if err != nil {
		return err
	}
	var buf []byte
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	f, err := os.OpenFile(filepath.Join(stateDir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readRecords reads the state dir's file name, one JSON record a line; a line
// that does not decode (torn by a crash) is skipped.
func readRecords[T any](stateDir, name string) ([]T, error) {
	return readRecordsCached[T](stateDir, name, nil)
}

// lineCache holds the records a file's lines decoded to at its last read,
// by each line's bytes: the same bytes are the same record, so a line read
// again is not decoded again, and nothing cached can be stale (the file is
// still read whole each time). A deploy reads the backup ledger six times
// (three in Backup, three in Cleanup); decoding it was ~3 ms of a deploy's
// CPU on the host worker (docs/performance.md).
type lineCache[T any] struct{ byLine map[string]T }

// readRecordsCached is readRecords, decoding only lines c has not seen
// (nil c: every line); c then holds the lines of this read only.
func readRecordsCached[T any](stateDir, name string, c *lineCache[T]) ([]T, error) {
	stateDir, err := secureStateDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	var seen map[string]T
	if c != nil {
		seen = make(map[string]T, len(c.byLine))
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if c != nil {
			if r, ok := c.byLine[string(line)]; ok {
				out = append(out, r)
				seen[string(line)] = r
				continue
			}
		}
		var r T
		if json.Unmarshal(line, &r) == nil {
			out = append(out, r)
			if c != nil {
				seen[string(line)] = r
			}
		}
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	if c != nil {
		c.byLine = seen
	}
	return out, nil
}

// rewriteRecords replaces the state dir's file name with recs (temp file,
// fsync, rename).
func rewriteRecords[T any](stateDir, name string, recs []T) error {
	stateDir, err := secureStateDir(stateDir)
	if err != nil {
		return err
	}
	tmp := filepath.Join(stateDir, name+".new")
	_ = os.Remove(tmp)
	if err := appendRecords(stateDir, name+".new", recs); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(stateDir, name)); err != nil {
		return err
	}
	d, err := safefs.OpenDir(filepath.Clean(stateDir))
	if err != nil {
		return nil // durability only
	}
	defer d.Close()
	return d.Sync()
}

func (a *Activities) recordBackup(r backupRecord) error {
	ledgerMu.Lock()
	defer ledgerMu.Unlock()
	recs, err := readLedger(a.stateDir())
	if err != nil {
		return fmt.Errorf("backup ledger: %w", err)
	}
	for _, k := range recs {
		if k.Where == r.Where && string(k.Backup) == string(r.Backup) && k.ID == r.ID {
			return nil
		}
	}
	if err := appendRecords(a.stateDir(), backupsFile, []backupRecord{r}); err != nil {
		return fmt.Errorf("backup ledger: %w", err)
	}
	return nil
}

func (a *Activities) backupRecords() ([]backupRecord, error) {
	ledgerMu.Lock()
	defer ledgerMu.Unlock()
	return readLedger(a.stateDir())
}

// forgetBackups drops the records drop says are gone.
func (a *Activities) forgetBackups(drop func(backupRecord) bool) error {
	ledgerMu.Lock()
	defer ledgerMu.Unlock()
	recs, err := readLedger(a.stateDir())
	if err != nil {
		return err
	}
	var keep []backupRecord
	for _, r := range recs {
		if !drop(r) {
			keep = append(keep, r)
		}
	}
	if len(keep) == len(recs) {
		return nil
	}
	return rewriteRecords(a.stateDir(), backupsFile, keep)
}

// newestFirst is the records of path's backups, newest stamp first, one per
// backup name (the last recorded).
func newestFirst(recs []backupRecord, where, path string) []backupRecord {
	byName := map[string]backupRecord{}
	for _, r := range recs {
		if r.Where == where && string(r.Path) == path {
			byName[string(r.Backup)] = r
		}
	}
	out := make([]backupRecord, 0, len(byName))
	for _, r := range byName {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stamp > out[j].Stamp })
	return out
}

// secureStateDir is stateDir, absolute, once it is checked to be reached
// without links and writable only by root and this worker's user (the
// ledger it holds decides which files retention removes, and the staged
// directories which the start-up sweep scans): a state directory others
// can write is refused, naming the directory, its owner and mode.
func secureStateDir(stateDir string) (string, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", err
	}
	if err := safefs.CheckSecure(abs, os.Geteuid()); err != nil {
		return "", fmt.Errorf("state directory (%s): %w", EnvStateDir, err)
	}
	return abs, nil
}

// present reports whether r's backup is still the file the worker made: at
// the name derived from its path and stamp, a regular file at its name, same device and inode, same owner, reached
// without following links. fsys is the machine r is on.
func present(fsys FS, r backupRecord) bool {
	p := string(r.Backup)
	if p != BackupPath(string(r.Path), r.Stamp) {
		return false // not a name this worker makes: never counted, never removed
	}
	d, err := fsys.OpenDir(filepath.Dir(p))
	if err != nil {
		return false
	}
	defer d.Close()
	info, err := d.Lstat(filepath.Base(p))
	return err == nil && info.IsRegular() && info.ID == r.ID && info.UID == r.UID
}

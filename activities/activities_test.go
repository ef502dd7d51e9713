package activities

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	_ "github.com/certctl/certctl/connectors/nginx"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// ---- helpers ----------------------------------------------------------------

var ctx = context.Background()

func newCA(t *testing.T) *testsuite.CA {
	t.Helper()
	ca, err := testsuite.NewCA("activities test")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *testsuite.CA) testsuite.Set {
	t.Helper()
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func modep(m target.Mode) *target.Mode { return &m }

func boolp(b bool) *bool { return &b }

// newTarget is an nginx target writing cert.pem, chain.pem and key.pem in dir,
// with harmless commands and verify off.
func newTarget(dir string) target.Target {
	return target.Target{
		TargetID:   "web-1",
		TargetType: "nginx",
		Host:       "testhost",
		Config: target.Config{
			CertPath:         filepath.Join(dir, "cert.pem"),
			ChainPath:        filepath.Join(dir, "chain.pem"),
			KeyPath:          filepath.Join(dir, "key.pem"),
			ValidateCommand:  target.Command{"true"},
			ReloadCommand:    target.Command{"true"},
			PostDeployVerify: target.Verify{Enabled: boolp(false)},
		},
	}
}

var stampSeq int64

func newStamp() int64 {
	stampSeq++
	return time.Now().UnixNano() + stampSeq
}

func planInput(tg target.Target, s testsuite.Set, stamp int64) PlanInput {
	return PlanInput{Request: Request{Target: tg, Stamp: stamp}, Material: s.Material}
}

func mustPlan(t *testing.T, in PlanInput) Plan {
	t.Helper()
	p, err := (&Activities{}).Plan(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return p
}

// pipeline runs Plan, Backup and Stage for s against tg.
type pipeline struct {
	in     StageInput
	backup Backups
	staged Staged
}

func prepare(t *testing.T, tg target.Target, s testsuite.Set, dryRun bool) pipeline {
	t.Helper()
	a := &Activities{}
	pin := planInput(tg, s, newStamp())
	pin.DryRun = dryRun
	p := mustPlan(t, pin)
	in := StageInput{PlanInput: pin, Plan: p}
	var pl pipeline
	pl.in = in
	if !dryRun {
		b, err := a.Backup(ctx, in)
		noKey(t, err)
		if err != nil {
			t.Fatalf("Backup: %v", err)
		}
		pl.backup = b
	}
	st, err := a.Stage(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	pl.staged = st
	return pl
}

func (pl pipeline) commitInput() CommitInput {
	return CommitInput{Request: pl.in.Request, Plan: pl.in.Plan, Staged: pl.staged}
}

func (pl pipeline) validateInput() ValidateInput {
	return ValidateInput{Request: pl.in.Request, Plan: pl.in.Plan, Staged: pl.staged}
}

func (pl pipeline) rollbackInput() RollbackInput {
	return RollbackInput{Request: pl.in.Request, Plan: pl.in.Plan, Backups: pl.backup}
}

func (pl pipeline) cleanupInput(succeeded bool) CleanupInput {
	return CleanupInput{Request: pl.in.Request, Plan: pl.in.Plan, Staged: pl.staged, Backups: pl.backup, Succeeded: succeeded}
}

func mustCommit(t *testing.T, pl pipeline) CommitResult {
	t.Helper()
	r, err := (&Activities{}).Commit(ctx, pl.commitInput())
	noKey(t, err)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return r
}

func fileOf(t *testing.T, p Plan, role string) PlannedFile {
	t.Helper()
	for _, f := range p.Files {
		if f.Role == role {
			return f
		}
	}
	t.Fatalf("plan has no %s file: %+v", role, p.Files)
	return PlannedFile{}
}

// noKey fails when an error would carry private key text.
func noKey(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("error carries private key text: %v", err)
	}
}

func appErr(t *testing.T, err error, wantType string) *temporal.ApplicationError {
	t.Helper()
	noKey(t, err)
	if err == nil {
		t.Fatalf("want a %s error, got nil", wantType)
	}
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("want a %s application error, got %T: %v", wantType, err, err)
	}
	if ae.Type() != wantType {
		t.Fatalf("error type %q, want %q: %v", ae.Type(), wantType, err)
	}
	return ae
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func owner(t *testing.T, p string) (uid, gid int) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// setBytes are the bytes the nginx layout writes for s, by role.
func setBytes(s testsuite.Set) map[string][]byte {
	return map[string][]byte{"cert": []byte(s.CertPEM), "chain": []byte(s.ChainPEM), "key": []byte(s.KeyPEM)}
}

func pathOf(tg target.Target, role string) string {
	switch role {
	case "cert":
		return tg.Config.CertPath
	case "chain":
		return tg.Config.ChainPath
	}
	return tg.Config.KeyPath
}

var roles = []string{"cert", "chain", "key"}

func assertFilesHold(t *testing.T, tg target.Target, s testsuite.Set) {
	t.Helper()
	want := setBytes(s)
	for _, r := range roles {
		if got := read(t, pathOf(tg, r)); !bytes.Equal(got, want[r]) {
			t.Errorf("%s does not hold the expected bytes", pathOf(tg, r))
		}
	}
}

type fileState struct {
	ino   uint64
	mtime time.Time
	mode  os.FileMode
	data  []byte
}

func snapshot(t *testing.T, paths ...string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = fileState{ino: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime(), mode: fi.Mode(), data: read(t, p)}
	}
	return out
}

func assertUnchanged(t *testing.T, before map[string]fileState) {
	t.Helper()
	for p, b := range before {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		a := fileState{ino: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime(), mode: fi.Mode(), data: read(t, p)}
		if a.ino != b.ino || !a.mtime.Equal(b.mtime) || a.mode != b.mode || !bytes.Equal(a.data, b.data) {
			t.Errorf("%s changed: before ino %d mtime %v mode %v, after ino %d mtime %v mode %v", p, b.ino, b.mtime, b.mode, a.ino, a.mtime, a.mode)
		}
	}
}

// serveTLS serves s on a loopback listener and returns its address.
func serveTLS(t *testing.T, s testsuite.Set) string {
	t.Helper()
	cert, err := tls.X509KeyPair([]byte(s.CertPEM+s.ChainPEM), []byte(s.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Read(make([]byte, 1))
			}(c)
		}
	}()
	return ln.Addr().String()
}

func withVerify(tg target.Target, endpoint string) target.Target {
	tg.Config.PostDeployVerify = target.Verify{Enabled: boolp(true), Endpoint: endpoint, Timeout: target.Duration(3 * time.Second)}
	return tg
}

// ---- Plan -------------------------------------------------------------------

func TestPlanFirstDeploy(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	tg := newTarget(dir)
	p := mustPlan(t, planInput(tg, s, newStamp()))
	if p.Action != ActionDeploy {
		t.Fatalf("action %q, want %q", p.Action, ActionDeploy)
	}
	if p.LeafSHA256 != s.LeafSHA256 {
		t.Errorf("leaf %s, want %s", p.LeafSHA256, s.LeafSHA256)
	}
	if len(p.Files) != 3 {
		t.Fatalf("want 3 files, got %+v", p.Files)
	}
	want := setBytes(s)
	for _, r := range roles {
		f := fileOf(t, p, r)
		if f.Exists || f.CurrentSHA256 != "" {
			t.Errorf("%s: exists=%v current=%q for an absent file", r, f.Exists, f.CurrentSHA256)
		}
		if f.Path != pathOf(tg, r) || f.SHA256 != material.SHA256(want[r]) {
			t.Errorf("%s: path %s sha %s", r, f.Path, f.SHA256)
		}
	}
	if !fileOf(t, p, "key").HoldsKey || fileOf(t, p, "cert").HoldsKey {
		t.Errorf("HoldsKey wrong: %+v", p.Files)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("Plan wrote files: %v", names)
	}
}

func TestPlanIdenticalFilesVerifyDisabledSkips(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	if _, _, _, err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, planInput(newTarget(dir), s, newStamp()))
	if p.Action != ActionSkip {
		t.Fatalf("action %q, want %q", p.Action, ActionSkip)
	}
	for _, f := range p.Files {
		if !f.Exists || f.CurrentSHA256 != f.SHA256 {
			t.Errorf("%s: exists=%v current=%s new=%s", f.Role, f.Exists, f.CurrentSHA256, f.SHA256)
		}
	}
}

func TestPlanIdenticalFilesOldLeafServedReloads(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := withVerify(newTarget(dir), serveTLS(t, old))
	p := mustPlan(t, planInput(tg, s, newStamp()))
	if p.Action != ActionReload {
		t.Fatalf("action %q, want %q", p.Action, ActionReload)
	}
	if p.ServedSHA256 != old.LeafSHA256 {
		t.Errorf("served %s, want the old leaf %s", p.ServedSHA256, old.LeafSHA256)
	}
}

func TestPlanIdenticalFilesNewLeafServedSkips(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	if _, _, _, err := s.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := withVerify(newTarget(dir), serveTLS(t, s))
	p := mustPlan(t, planInput(tg, s, newStamp()))
	if p.Action != ActionSkip {
		t.Fatalf("action %q, want %q", p.Action, ActionSkip)
	}
	if p.ServedSHA256 != s.LeafSHA256 {
		t.Errorf("served %s, want %s", p.ServedSHA256, s.LeafSHA256)
	}
}

func TestPlanMissingDirectoryIsInvalidInput(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	tg := newTarget(dir)
	tg.Config.CertPath = filepath.Join(dir, "missing", "cert.pem")
	_, err := (&Activities{}).Plan(ctx, planInput(tg, s, newStamp()))
	appErr(t, err, contract.InvalidInput)
	if !strings.Contains(err.Error(), "target_config.cert_path") {
		t.Errorf("error does not name target_config.cert_path: %v", err)
	}
	if exists(filepath.Join(dir, "missing")) {
		t.Errorf("Plan created the missing directory")
	}
}

func TestPlanKeyNotMatchingCertIsInvalidInput(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	s, other := issue(t, ca), issue(t, ca)
	m := s.Material
	m.KeyPEM = other.KeyPEM
	_, err := (&Activities{}).Plan(ctx, PlanInput{Request: Request{Target: newTarget(dir), Stamp: newStamp()}, Material: m})
	appErr(t, err, contract.InvalidInput)
	if !strings.Contains(err.Error(), "key_pem") {
		t.Errorf("error does not name key_pem: %v", err)
	}
}

// ---- Owner and mode precedence (DESIGN promise 3) ---------------------------

func TestOwnershipExplicitKeyModeWins(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil { // key 0600
		t.Fatal(err)
	}
	tg := newTarget(dir)
	tg.Config.KeyFileMode = modep(0o440)
	pl := prepare(t, tg, s, false)
	k := fileOf(t, pl.in.Plan, "key")
	if k.Mode != 0o440 || k.ModeFrom != "explicit" {
		t.Errorf("key mode %v from %q, want 0440 from explicit", k.Mode, k.ModeFrom)
	}
	mustCommit(t, pl)
	if m := mode(t, tg.Config.KeyPath); m != 0o440 {
		t.Errorf("committed key mode %v, want 0440", m)
	}
}

func TestOwnershipExistingModeKeptWithoutExplicit(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Chmod(tg.Config.KeyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tg.Config.CertPath, 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tg.Config.KeyPath, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, tg, s, false)
	k := fileOf(t, pl.in.Plan, "key")
	if k.Mode != 0o600 || k.ModeFrom != "existing" {
		t.Errorf("key mode %v from %q, want 0600 from existing (the connector default 0640 must not override it)", k.Mode, k.ModeFrom)
	}
	if k.UID != 65534 || k.GID != 65534 || k.OwnerFrom != "existing" {
		t.Errorf("key owner %d:%d from %q, want the existing 65534:65534", k.UID, k.GID, k.OwnerFrom)
	}
	if c := fileOf(t, pl.in.Plan, "cert"); c.Mode != 0o604 || c.ModeFrom != "existing" {
		t.Errorf("cert mode %v from %q, want 0604 from existing", c.Mode, c.ModeFrom)
	}
	mustCommit(t, pl)
	if m := mode(t, tg.Config.KeyPath); m != 0o600 {
		t.Errorf("committed key mode %v, want 0600", m)
	}
	if uid, gid := owner(t, tg.Config.KeyPath); uid != 65534 || gid != 65534 {
		t.Errorf("committed key owner %d:%d, want 65534:65534", uid, gid)
	}
}

func TestOwnershipConnectorDefaultForNewKey(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	tg := newTarget(dir)
	p := mustPlan(t, planInput(tg, s, newStamp()))
	k := fileOf(t, p, "key")
	if k.Mode != 0o640 || k.ModeFrom != "connector-default" {
		t.Errorf("new key mode %v from %q, want 0640 from connector-default", k.Mode, k.ModeFrom)
	}
	if c := fileOf(t, p, "cert"); c.Mode != 0o644 || c.ModeFrom != "connector-default" {
		t.Errorf("new cert mode %v from %q, want 0644 from connector-default", c.Mode, c.ModeFrom)
	}
	// The owner is the first of nginx's distro users present, else the process.
	wantUID, wantGID, wantFrom := os.Getuid(), os.Getgid(), "process"
	for _, name := range []string{"nginx", "www-data"} {
		if u, err := user.Lookup(name); err == nil {
			wantUID, _ = strconv.Atoi(u.Uid)
			wantGID, _ = strconv.Atoi(u.Gid)
			wantFrom = "connector-default"
			break
		}
	}
	if k.UID != wantUID || k.GID != wantGID || k.OwnerFrom != wantFrom {
		t.Errorf("new key owner %d:%d from %q, want %d:%d from %q", k.UID, k.GID, k.OwnerFrom, wantUID, wantGID, wantFrom)
	}
}

func TestOwnershipExplicitOwnerNobody(t *testing.T) {
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := t.TempDir()
	s := issue(t, newCA(t))
	tg := newTarget(dir)
	tg.Config.KeyOwner = "nobody"
	pl := prepare(t, tg, s, false)
	k := fileOf(t, pl.in.Plan, "key")
	if k.UID != uid || k.GID != gid || k.OwnerFrom != "explicit" {
		t.Errorf("key owner %d:%d from %q, want %d:%d from explicit", k.UID, k.GID, k.OwnerFrom, uid, gid)
	}
	var keyTemp string
	for _, f := range pl.staged.Files {
		if f.Path == tg.Config.KeyPath {
			keyTemp = f.Temp
		}
	}
	if gu, gg := owner(t, keyTemp); gu != uid || gg != gid {
		t.Errorf("staged key owned by %d:%d, want %d:%d", gu, gg, uid, gid)
	}

	// An unknown owner is InvalidInput naming the field.
	tg.Config.KeyOwner = "no-such-user-certctl"
	_, err = (&Activities{}).Plan(ctx, planInput(tg, s, newStamp()))
	appErr(t, err, contract.InvalidInput)
	if !strings.Contains(err.Error(), "target_config.key_owner") {
		t.Errorf("error does not name target_config.key_owner: %v", err)
	}
}

func TestOwnershipWorldReadableKeyLosesOtherBits(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Chmod(tg.Config.KeyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, tg, s, false)
	k := fileOf(t, pl.in.Plan, "key")
	if k.Mode != 0o640 || k.ModeFrom != "existing-without-other" {
		t.Errorf("key mode %v from %q, want 0640 from existing-without-other", k.Mode, k.ModeFrom)
	}
	// The cert's "other" bits are nobody's business.
	if c := fileOf(t, pl.in.Plan, "cert"); c.Mode != 0o644 {
		t.Errorf("cert mode %v, want 0644", c.Mode)
	}
	mustCommit(t, pl)
	if m := mode(t, tg.Config.KeyPath); m != 0o640 {
		t.Errorf("committed key mode %v, want 0640", m)
	}
}

// ---- Backup -----------------------------------------------------------------

func TestBackupCopiesExistingFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Chmod(tg.Config.CertPath, 0o640); err != nil {
		t.Fatal(err)
	}
	pin := planInput(tg, s, newStamp())
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	b, err := (&Activities{}).Backup(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 3 {
		t.Fatalf("want 3 backups, got %+v", b.Files)
	}
	want := setBytes(old)
	for i, r := range roles {
		p := pathOf(tg, r)
		if b.Files[i].Path != p || b.Files[i].Backup != p+".certctl-bak."+strconv.FormatInt(pin.Stamp, 10) {
			t.Errorf("backup %d: %+v", i, b.Files[i])
		}
		if got := read(t, b.Files[i].Backup); !bytes.Equal(got, want[r]) {
			t.Errorf("backup of %s does not hold the original bytes", p)
		}
		if bm, om := mode(t, b.Files[i].Backup), mode(t, p); bm != om {
			t.Errorf("backup of %s has mode %v, original %v", p, bm, om)
		}
	}
	if m := mode(t, b.Files[2].Backup); m != 0o600 {
		t.Errorf("key backup mode %v, want 0600", m)
	}
	assertFilesHold(t, tg, old)
}

func TestBackupOnlyExistingFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Remove(tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pin := planInput(tg, s, newStamp())
	b, err := (&Activities{}).Backup(ctx, StageInput{PlanInput: pin, Plan: mustPlan(t, pin)})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Files) != 2 || b.Files[0].Path != tg.Config.CertPath || b.Files[1].Path != tg.Config.KeyPath {
		t.Errorf("backups %+v, want cert and key only", b.Files)
	}
}

func TestBackupRetryChangesNothing(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pin := planInput(tg, s, newStamp())
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	a := &Activities{}
	first, err := a.Backup(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range first.Files {
		paths = append(paths, f.Backup, f.Path)
	}
	before := snapshot(t, paths...)
	listing := listDir(t, dir)
	time.Sleep(20 * time.Millisecond) // a rewrite would show in mtime
	second, err := a.Backup(ctx, in)
	if err != nil {
		t.Fatalf("retried Backup: %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("retried Backup returned %+v, first %+v", second, first)
	}
	assertUnchanged(t, before)
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("retried Backup changed the directory: %v -> %v", listing, got)
	}
}

func TestBackupTornIsRewritten(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pin := planInput(tg, s, newStamp())
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	a := &Activities{}
	first, err := a.Backup(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	keyBak := first.Files[2].Backup
	if err := os.Truncate(keyBak, 17); err != nil {
		t.Fatal(err)
	}
	second, err := a.Backup(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatalf("Backup after a torn backup: %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("result %+v, want %+v", second, first)
	}
	if got := read(t, keyBak); !bytes.Equal(got, []byte(old.KeyPEM)) {
		t.Errorf("torn key backup was not rewritten (%d bytes)", len(got))
	}
	if m := mode(t, keyBak); m != 0o600 {
		t.Errorf("rewritten key backup mode %v, want 0600", m)
	}
}

// ---- Stage ------------------------------------------------------------------

func TestStageWritesTempsBesideDestinations(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	tg.Config.CertOwner = "nobody"
	pl := prepare(t, tg, s, false)
	if pl.staged.PrivateDir != "" {
		t.Errorf("a real deploy has a private dir %q", pl.staged.PrivateDir)
	}
	if len(pl.staged.Files) != 3 {
		t.Fatalf("staged %+v", pl.staged.Files)
	}
	want := setBytes(s)
	for i, r := range roles {
		sf := pl.staged.Files[i]
		pf := fileOf(t, pl.in.Plan, r)
		p := pathOf(tg, r)
		if sf.Path != p || sf.Temp != p+".certctl-tmp."+strconv.FormatInt(pl.in.Stamp, 10) || sf.Temp != TempPath(p, pl.in.Stamp) {
			t.Errorf("staged %s as %+v", r, sf)
		}
		if filepath.Dir(sf.Temp) != filepath.Dir(p) {
			t.Errorf("temp %s is not beside %s", sf.Temp, p)
		}
		if sf.SHA256 != pf.SHA256 {
			t.Errorf("%s: staged sha %s, planned %s", r, sf.SHA256, pf.SHA256)
		}
		if got := read(t, sf.Temp); !bytes.Equal(got, want[r]) {
			t.Errorf("temp for %s does not hold the new bytes", r)
		}
		if m := mode(t, sf.Temp); m != pf.Mode.Perm() {
			t.Errorf("temp for %s mode %v, planned %v", r, m, pf.Mode)
		}
		if uid, gid := owner(t, sf.Temp); uid != pf.UID || gid != pf.GID {
			t.Errorf("temp for %s owner %d:%d, planned %d:%d", r, uid, gid, pf.UID, pf.GID)
		}
	}
	if c := fileOf(t, pl.in.Plan, "cert"); c.UID != 65534 {
		t.Errorf("cert owner uid %d, want nobody", c.UID)
	}
	assertFilesHold(t, tg, old)

	// Staging again (a retried attempt) rewrites the same temps, nothing more.
	listing := listDir(t, dir)
	again, err := (&Activities{}).Stage(ctx, pl.in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, pl.staged) {
		t.Errorf("retried Stage %+v, first %+v", again, pl.staged)
	}
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("retried Stage changed the directory: %v -> %v", listing, got)
	}
}

func TestStageDryRunWritesNothingBesideDestination(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	listing := listDir(t, dir)
	pl := prepare(t, tg, s, true)
	t.Cleanup(func() { os.RemoveAll(pl.staged.PrivateDir) })
	if pl.staged.PrivateDir == "" {
		t.Fatal("dry run has no private dir")
	}
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("dry run wrote beside the destination: %v -> %v", listing, got)
	}
	if m := mode(t, pl.staged.PrivateDir); m&0o077 != 0 {
		t.Errorf("private dir mode %v lets others in", m)
	}
	want := setBytes(s)
	for i, r := range roles {
		sf := pl.staged.Files[i]
		if filepath.Dir(sf.Temp) != pl.staged.PrivateDir {
			t.Errorf("dry-run temp %s is outside %s", sf.Temp, pl.staged.PrivateDir)
		}
		if got := read(t, sf.Temp); !bytes.Equal(got, want[r]) {
			t.Errorf("dry-run temp for %s does not hold the new bytes", r)
		}
		if m := mode(t, sf.Temp); m != fileOf(t, pl.in.Plan, r).Mode.Perm() {
			t.Errorf("dry-run temp for %s mode %v", r, m)
		}
	}
	assertFilesHold(t, tg, old)
}

// ---- Commit -----------------------------------------------------------------

func TestCommitRenamesAll(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	r := mustCommit(t, pl)
	if len(r.Committed) != 3 {
		t.Errorf("commit %+v, want 3 committed", r)
	}
	assertFilesHold(t, tg, s)
	for _, sf := range pl.staged.Files {
		if exists(sf.Temp) {
			t.Errorf("temp %s left after commit", sf.Temp)
		}
	}
	for _, pf := range pl.in.Plan.Files {
		if m := mode(t, pf.Path); m != pf.Mode.Perm() {
			t.Errorf("%s mode %v, planned %v", pf.Path, m, pf.Mode)
		}
	}
}

func TestCommitAgainIsAlreadyDone(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	first := mustCommit(t, pl)
	before := snapshot(t, tg.Config.CertPath, tg.Config.ChainPath, tg.Config.KeyPath)
	listing := listDir(t, dir)
	time.Sleep(20 * time.Millisecond)
	r := mustCommit(t, pl)
	if !reflect.DeepEqual(r, first) {
		t.Errorf("second commit reports %+v, the first %+v: a retry must report the same", r, first)
	}
	assertUnchanged(t, before)
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("second commit changed the directory: %v -> %v", listing, got)
	}
}

func TestCommitAfterCrashFinishesRenames(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	// The first attempt renamed the cert, then the worker died.
	first := pl.staged.Files[0]
	if err := os.Rename(first.Temp, first.Path); err != nil {
		t.Fatal(err)
	}
	r := mustCommit(t, pl)
	if len(r.Committed) != 3 {
		t.Errorf("commit after crash %+v, want all 3 committed", r)
	}
	assertFilesHold(t, tg, s)
	for _, sf := range pl.staged.Files {
		if exists(sf.Temp) {
			t.Errorf("temp %s left after commit", sf.Temp)
		}
	}
}

func TestCommitLost(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	keyTemp := pl.staged.Files[2].Temp
	if err := os.Remove(keyTemp); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Commit(ctx, pl.commitInput())
	ae := appErr(t, err, "CommitLost")
	if !ae.NonRetryable() {
		t.Errorf("CommitLost is retryable")
	}
	if !strings.Contains(err.Error(), tg.Config.KeyPath) {
		t.Errorf("error does not name %s: %v", tg.Config.KeyPath, err)
	}
	if got := read(t, tg.Config.KeyPath); !bytes.Equal(got, []byte(old.KeyPEM)) {
		t.Errorf("the live key changed")
	}
}

// ---- Validate ---------------------------------------------------------------

func TestValidateMaterialCheckSwappedKey(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s, other := issue(t, ca), issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	if err := os.WriteFile(pl.staged.Files[2].Temp, []byte(other.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Validate(ctx, pl.validateInput())
	appErr(t, err, contract.ValidateFailed)
	if !strings.Contains(err.Error(), "does not match") {
		t.Errorf("error does not say the key does not match: %v", err)
	}
}

func TestValidateMaterialCheckWrongLeaf(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	// A consistent set, but not the planned leaf.
	for i, r := range roles {
		if err := os.WriteFile(pl.staged.Files[i].Temp, setBytes(old)[r], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := (&Activities{}).Validate(ctx, pl.validateInput())
	appErr(t, err, contract.ValidateFailed)
}

func TestValidateCommandFails(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	tg.Config.ValidateCommand = target.Command{"false"}
	pl := prepare(t, tg, s, false)
	check := func(live bool) {
		t.Helper()
		in := pl.validateInput()
		in.Live = live
		res, err := (&Activities{}).Validate(ctx, in)
		ae := appErr(t, err, contract.ValidateFailed)
		if !ae.NonRetryable() {
			t.Errorf("live=%v: ValidateFailed is retryable", live)
		}
		if !strings.Contains(err.Error(), "false") || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("live=%v: error does not name the command and its status: %v", live, err)
		}
		if res.Command != "false" {
			t.Errorf("live=%v: result command %q", live, res.Command)
		}
	}
	check(false) // against the staged files
	assertFilesHold(t, tg, old)
	mustCommit(t, pl)
	check(true) // against the live files, after Commit
}

// mounted reports whether path is a mount point in this (the host's) namespace.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func TestValidateStagedView(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	stamp := newStamp()
	// The check reads only the live paths; it passes only if, in its view,
	// the live paths hold the staged bytes.
	tg.Config.ValidateCommand = target.Command{"cmp", tg.Config.CertPath, TempPath(tg.Config.CertPath, stamp)}
	pin := planInput(tg, s, stamp)
	in := StageInput{PlanInput: pin, Plan: mustPlan(t, pin)}
	a := &Activities{}
	if _, err := a.Backup(ctx, in); err != nil {
		t.Fatal(err)
	}
	staged, err := a.Stage(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// Without the view, the check fails: the live cert is the old one.
	if err := runLive(tg.Config.ValidateCommand); err == nil {
		t.Fatal("cmp of the live cert and the staged one succeeded on the host")
	}
	vin := ValidateInput{Request: pin.Request, Plan: in.Plan, Staged: staged}
	res, err := a.Validate(ctx, vin)
	noKey(t, err)
	if err != nil {
		t.Fatalf("Validate: %v (result %+v)", err, res)
	}
	if res.ServerCheck != CheckStaged {
		t.Fatalf("server check %q, want %q (note %q)", res.ServerCheck, CheckStaged, res.Note)
	}
	assertFilesHold(t, tg, old)
	for _, p := range []string{tg.Config.CertPath, tg.Config.ChainPath, tg.Config.KeyPath} {
		if mounted(t, p) {
			t.Errorf("%s is still a mount point on the host", p)
		}
	}

	// The key is bound too: a check reading the live key sees the new one.
	vin.Target.Config.ValidateCommand = target.Command{"grep", "-qF", strings.Split(strings.TrimSpace(s.KeyPEM), "\n")[1], tg.Config.KeyPath}
	if res, err := a.Validate(ctx, vin); err != nil || res.ServerCheck != CheckStaged {
		t.Errorf("check on the live key path: %+v, %v", res, err)
	}
	noKey(t, err)

	// And a failing check in the view is ValidateFailed, live files untouched.
	vin.Target.Config.ValidateCommand = target.Command{"cmp", tg.Config.CertPath, TempPath(tg.Config.ChainPath, stamp)}
	_, err = a.Validate(ctx, vin)
	appErr(t, err, contract.ValidateFailed)
	assertFilesHold(t, tg, old)
}

func runLive(argv target.Command) error {
	_, err := runCommand(ctx, exec.Command(argv[0], argv[1:]...), target.DefaultCommandTimeout, nil)
	return err
}

func TestValidateDeferredWhenDestinationMissing(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Remove(tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	// The check cannot see the staged chain, so it must not run at all here:
	// "false" would fail if it did.
	tg.Config.ValidateCommand = target.Command{"false"}
	pl := prepare(t, tg, s, false)
	res, err := (&Activities{}).Validate(ctx, pl.validateInput())
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if res.ServerCheck != CheckDeferred {
		t.Errorf("server check %q, want %q", res.ServerCheck, CheckDeferred)
	}
	if !strings.Contains(res.Note, tg.Config.ChainPath) {
		t.Errorf("note does not name the missing file: %q", res.Note)
	}

	dry := prepare(t, tg, s, true)
	t.Cleanup(func() { os.RemoveAll(dry.staged.PrivateDir) })
	res, err = (&Activities{}).Validate(ctx, dry.validateInput())
	if err != nil {
		t.Fatalf("dry-run Validate: %v", err)
	}
	if res.ServerCheck != CheckSkipped {
		t.Errorf("dry-run server check %q, want %q", res.ServerCheck, CheckSkipped)
	}
}

func TestValidateDryRunStagedView(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	tg.Config.ValidateCommand = target.Command{"grep", "-qF", strings.Split(strings.TrimSpace(s.KeyPEM), "\n")[1], tg.Config.KeyPath}
	listing := listDir(t, dir)
	pl := prepare(t, tg, s, true)
	t.Cleanup(func() { os.RemoveAll(pl.staged.PrivateDir) })
	res, err := (&Activities{}).Validate(ctx, pl.validateInput())
	noKey(t, err)
	if err != nil || res.ServerCheck != CheckStaged {
		t.Fatalf("dry-run Validate: %+v, %v", res, err)
	}
	assertFilesHold(t, tg, old)
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("dry run wrote beside the destination: %v -> %v", listing, got)
	}
}

func TestValidateLive(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Remove(tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	in := pl.validateInput()
	in.Live = true
	in.Target.Config.ValidateCommand = target.Command{"grep", "-qF", strings.Split(strings.TrimSpace(s.KeyPEM), "\n")[1], tg.Config.KeyPath}
	res, err := (&Activities{}).Validate(ctx, in)
	noKey(t, err)
	if err != nil {
		t.Fatalf("live Validate: %v", err)
	}
	if res.ServerCheck != CheckLive {
		t.Errorf("server check %q, want %q", res.ServerCheck, CheckLive)
	}
	// The material check reads the live files too.
	if err := os.WriteFile(tg.Config.KeyPath, []byte(old.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = (&Activities{}).Validate(ctx, in)
	appErr(t, err, contract.ValidateFailed)
}

// A command's output travels in errors and results (workflow history): a
// check that prints the key must not put it there.
func TestValidateOutputNeverCarriesKey(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	in := pl.validateInput()
	in.Live = true
	in.Target.Config.ValidateCommand = target.Command{"cat", tg.Config.KeyPath, filepath.Join(dir, "nonexistent")}
	res, err := (&Activities{}).Validate(ctx, in)
	appErr(t, err, contract.ValidateFailed)
	if !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("error lost the command's own message: %v", err)
	}
	if strings.Contains(res.Output, "PRIVATE KEY") || strings.Contains(res.Output, strings.Split(s.KeyPEM, "\n")[1]) {
		t.Errorf("result output carries the key: %q", res.Output)
	}
	if strings.Contains(err.Error(), strings.Split(s.KeyPEM, "\n")[1]) {
		t.Errorf("error carries key bytes: %v", err)
	}

	in.Target.Config.ValidateCommand = target.Command{"cat", tg.Config.KeyPath}
	res, err = (&Activities{}).Validate(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Output, "PRIVATE KEY") || strings.Contains(res.Output, strings.Split(s.KeyPEM, "\n")[1]) {
		t.Errorf("result output carries the key: %q", res.Output)
	}
}

// ---- Rollback ---------------------------------------------------------------

func TestRollbackRestoresExistingFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Chmod(tg.Config.CertPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tg.Config.ChainPath, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{}
	for _, r := range roles {
		modes[r] = mode(t, pathOf(tg, r))
	}
	tg.Config.KeyFileMode = modep(0o440) // the deploy changes the key's mode
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	assertFilesHold(t, tg, s)
	res, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	noKey(t, err)
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if len(res.Restored) != 3 || len(res.Removed) != 0 {
		t.Errorf("rollback %+v, want 3 restored", res)
	}
	assertFilesHold(t, tg, old)
	for _, r := range roles {
		if m := mode(t, pathOf(tg, r)); m != modes[r] {
			t.Errorf("%s restored with mode %v, want %v", r, m, modes[r])
		}
	}
	if uid, gid := owner(t, tg.Config.ChainPath); uid != 65534 || gid != 65534 {
		t.Errorf("chain restored owned by %d:%d, want 65534:65534", uid, gid)
	}
	for _, sf := range pl.staged.Files {
		if exists(sf.Temp) {
			t.Errorf("temp %s left by rollback", sf.Temp)
		}
	}
}

func TestRollbackRemovesNewFile(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Remove(tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	if !exists(tg.Config.ChainPath) {
		t.Fatal("commit did not write the chain")
	}
	res, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if !reflect.DeepEqual(res.Removed, []string{tg.Config.ChainPath}) || len(res.Restored) != 2 {
		t.Errorf("rollback %+v, want the chain removed and 2 restored", res)
	}
	if exists(tg.Config.ChainPath) {
		t.Errorf("the new chain was not removed")
	}
	if !bytes.Equal(read(t, tg.Config.CertPath), []byte(old.CertPEM)) || !bytes.Equal(read(t, tg.Config.KeyPath), []byte(old.KeyPEM)) {
		t.Errorf("cert and key not restored")
	}
}

func TestRollbackWithoutBackupLeavesFileAndFails(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	in := pl.rollbackInput()
	// The key's backup is not known to the rollback.
	in.Backups.Files = in.Backups.Files[:2]
	res, err := (&Activities{}).Rollback(ctx, in)
	ae := appErr(t, err, contract.RollbackFailed)
	if !strings.Contains(err.Error(), tg.Config.KeyPath) {
		t.Errorf("error does not name %s: %v", tg.Config.KeyPath, err)
	}
	if !strings.Contains(err.Error(), pl.backup.Files[0].Backup) {
		t.Errorf("error does not name the backups: %v", err)
	}
	if !exists(tg.Config.KeyPath) || !bytes.Equal(read(t, tg.Config.KeyPath), []byte(s.KeyPEM)) {
		t.Errorf("the key without a backup was not left in place")
	}
	if !bytes.Equal(read(t, tg.Config.CertPath), []byte(old.CertPEM)) || !bytes.Equal(read(t, tg.Config.ChainPath), []byte(old.ChainPEM)) {
		t.Errorf("the files with backups were not restored")
	}
	if len(res.Restored) != 2 {
		t.Errorf("restored %v, want cert and chain", res.Restored)
	}
	var details RollbackResult
	if err := ae.Details(&details); err != nil || !reflect.DeepEqual(details, res) {
		t.Errorf("error details %+v (%v), want %+v", details, err, res)
	}

	// A backup that is named but gone is an error too, never a deletion.
	in = pl.rollbackInput()
	if err := os.Remove(pl.backup.Files[2].Backup); err != nil {
		t.Fatal(err)
	}
	_, err = (&Activities{}).Rollback(ctx, in)
	appErr(t, err, contract.RollbackFailed)
	if !exists(tg.Config.KeyPath) {
		t.Errorf("the key was deleted")
	}
}

func TestRollbackTwiceIsHarmless(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	if err := os.Remove(tg.Config.ChainPath); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	a := &Activities{}
	first, err := a.Rollback(ctx, pl.rollbackInput())
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, tg.Config.CertPath, tg.Config.KeyPath)
	listing := listDir(t, dir)
	time.Sleep(20 * time.Millisecond)
	second, err := a.Rollback(ctx, pl.rollbackInput())
	if err != nil {
		t.Fatalf("second Rollback: %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Errorf("second rollback %+v, first %+v", second, first)
	}
	assertUnchanged(t, before)
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("second rollback changed the directory: %v -> %v", listing, got)
	}
}

// ---- Cleanup ----------------------------------------------------------------

func TestCleanupSuccessKeepsNewestBackups(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old := issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	tg.Config.BackupRetention = func(n int) *int { return &n }(2)
	// Files named like backups that this worker did not make (planted, or
	// copied by hand) are neither counted nor removed, whatever their stamp.
	planted := []int64{9, 10, 300, 4000, 9000000000000000001}
	for _, st := range planted {
		if err := os.WriteFile(BackupPath(tg.Config.CertPath, st), []byte("not ours"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	foreign := tg.Config.CertPath + BackupMarker + "manual"
	if err := os.WriteFile(foreign, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Four deploys, each backing up the one before; stamps order
	// numerically, not as text.
	var pls []pipeline
	var res CleanupResult
	var s testsuite.Set
	for i := 0; i < 4; i++ {
		s = issue(t, ca)
		pl := prepare(t, tg, s, false)
		mustCommit(t, pl)
		var err error
		if res, err = (&Activities{}).Cleanup(ctx, pl.cleanupInput(true)); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
		pls = append(pls, pl)
	}
	for i, pl := range pls {
		for _, b := range pl.backup.Files {
			if kept := i >= 2; exists(b.Backup) != kept {
				t.Errorf("deploy %d's backup %s: exists %v, want %v", i, b.Backup, !kept, kept)
			}
		}
	}
	want := []string{pls[3].backup.Files[0].Backup, pls[2].backup.Files[0].Backup}
	if got := res.Backups[:2]; !reflect.DeepEqual(got, want) {
		t.Errorf("cert backups reported %v, want %v", got, want)
	}
	if len(res.Backups) != 6 {
		t.Errorf("Cleanup reports %d backups (%v), want 2 for each of 3 files", len(res.Backups), res.Backups)
	}
	for _, st := range planted {
		if b, err := os.ReadFile(BackupPath(tg.Config.CertPath, st)); err != nil || string(b) != "not ours" {
			t.Errorf("planted %d was touched: %v", st, err)
		}
	}
	if !exists(foreign) {
		t.Errorf("a file that is not one of our backups was removed")
	}
	again, err := (&Activities{}).Cleanup(ctx, pls[3].cleanupInput(true))
	if err != nil || !reflect.DeepEqual(again, res) {
		t.Errorf("a retried Cleanup reports %+v (err %v), the first %+v", again, err, res)
	}
	assertFilesHold(t, tg, s)
}

func TestCleanupFailureRemovesThisDeploysFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	earlier := BackupPath(tg.Config.KeyPath, 12345)
	if err := os.WriteFile(earlier, []byte("an earlier deploy's backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	listing := listDir(t, dir)
	pl := prepare(t, tg, s, false)
	res, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false))
	if err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	// The earlier backup was not made by this worker (no ledger entry): it
	// is kept, and not reported as one of the target's backups.
	if len(res.Backups) != 0 {
		t.Errorf("backups reported %v, want none", res.Backups)
	}
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("after a failed deploy's cleanup the directory is %v, want %v", got, listing)
	}
	assertFilesHold(t, tg, old)
	if !exists(earlier) {
		t.Errorf("an earlier deploy's backup was removed")
	}
	// Again (a retry): nothing left to do, no error.
	if _, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false)); err != nil {
		t.Errorf("retried Cleanup: %v", err)
	}
}

func TestCleanupDryRunRemovesPrivateDir(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	listing := listDir(t, dir)
	pl := prepare(t, tg, s, true)
	if !exists(pl.staged.PrivateDir) {
		t.Fatal("no private dir")
	}
	if _, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false)); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if exists(pl.staged.PrivateDir) {
		t.Errorf("private dir %s left", pl.staged.PrivateDir)
	}
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("dry run changed the directory: %v -> %v", listing, got)
	}
	assertFilesHold(t, tg, old)
}

// ---- Reload and Verify ------------------------------------------------------

func TestReload(t *testing.T) {
	tg := newTarget(t.TempDir())
	tg.Config.ReloadCommand = target.Command{"false"}
	res, err := (&Activities{}).Reload(ctx, Request{Target: tg})
	appErr(t, err, contract.ReloadFailed)
	if !strings.Contains(err.Error(), "false") || res.Command != "false" {
		t.Errorf("error or result does not name the command: %v, %+v", err, res)
	}
	tg.Config.ReloadCommand = target.Command{"true"}
	res, err = (&Activities{}).Reload(ctx, Request{Target: tg})
	if err != nil || res.Command != "true" {
		t.Errorf("reload true: %+v, %v", res, err)
	}
}

func TestVerify(t *testing.T) {
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	dir := t.TempDir()
	a := &Activities{}

	tg := withVerify(newTarget(dir), serveTLS(t, s))
	res, err := a.Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	if err != nil {
		t.Fatalf("Verify of the served leaf: %v", err)
	}
	if res.Served != s.LeafSHA256 || res.Endpoint != tg.Config.PostDeployVerify.Endpoint {
		t.Errorf("verify result %+v", res)
	}

	tg = withVerify(newTarget(dir), serveTLS(t, old))
	_, err = a.Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	ae := appErr(t, err, "VerifyMismatch")
	if ae.NonRetryable() {
		t.Errorf("a mismatch must be retryable: the server may not have picked the new cert up yet")
	}
	var details VerifyResult
	if err := ae.Details(&details); err != nil || details.Served != old.LeafSHA256 {
		t.Errorf("mismatch details %+v (%v), want served %s", details, err, old.LeafSHA256)
	}

	// Nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tg = withVerify(newTarget(dir), addr)
	_, err = a.Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: s.LeafSHA256})
	appErr(t, err, "VerifyUnreachable")
}

// The probe honours its context: a server that accepts and never answers
// does not hold the probe past its deadline.
func TestProbeHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = probe(c, ln.Addr().String(), "", 30*time.Second)
	if err == nil {
		t.Fatal("probe of a silent server succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("probe took %v past a 200ms context", d)
	}
}

// A restore must put back what was there: a backup that no longer holds the
// original bytes is not restored over the live file.
func TestRollbackCorruptBackupIsNotRestored(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	if err := os.Truncate(pl.backup.Files[2].Backup, 20); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Rollback(ctx, pl.rollbackInput())
	appErr(t, err, contract.RollbackFailed)
	if !strings.Contains(err.Error(), tg.Config.KeyPath) {
		t.Errorf("error does not name %s: %v", tg.Config.KeyPath, err)
	}
	if got := read(t, tg.Config.KeyPath); !bytes.Equal(got, []byte(s.KeyPEM)) {
		t.Errorf("a torn backup (%d bytes) was restored over the key", len(got))
	}
	if !bytes.Equal(read(t, tg.Config.CertPath), []byte(old.CertPEM)) {
		t.Errorf("the cert with a good backup was not restored")
	}
	if exists(TempPath(tg.Config.KeyPath, pl.in.Stamp)) {
		t.Errorf("restore temp left behind")
	}
}

// When Backup or Stage fails, its result never reaches the workflow, which
// then cleans up with empty Staged/Backups: the files that step wrote (key
// copies among them) must still go.
func TestCleanupFindsFilesOfAFailedStep(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	listing := listDir(t, dir)
	pl := prepare(t, tg, s, false)
	in := pl.cleanupInput(false)
	in.Staged, in.Backups = Staged{}, Backups{}
	if _, err := (&Activities{}).Cleanup(ctx, in); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if got := listDir(t, dir); !reflect.DeepEqual(got, listing) {
		t.Errorf("after cleanup the directory is %v, want %v", got, listing)
	}

	dry := prepare(t, tg, s, true)
	t.Cleanup(func() { os.RemoveAll(dry.staged.PrivateDir) })
	in = dry.cleanupInput(false)
	in.Staged = Staged{}
	if _, err := (&Activities{}).Cleanup(ctx, in); err != nil {
		t.Fatalf("dry-run Cleanup: %v", err)
	}
	if exists(dry.staged.PrivateDir) {
		t.Errorf("dry-run private dir %s (with a key copy) left behind", dry.staged.PrivateDir)
	}
}

// A retried dry-run Stage reuses its private directory instead of leaving a
// second copy of the key behind.
func TestStageDryRunRetryReusesPrivateDir(t *testing.T) {
	dir := t.TempDir()
	s := issue(t, newCA(t))
	pl := prepare(t, newTarget(dir), s, true)
	t.Cleanup(func() { os.RemoveAll(pl.staged.PrivateDir) })
	again, err := (&Activities{}).Stage(ctx, pl.in)
	if again.PrivateDir != "" && again.PrivateDir != pl.staged.PrivateDir {
		t.Cleanup(func() { os.RemoveAll(again.PrivateDir) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, pl.staged) {
		t.Errorf("retried dry-run Stage %+v, first %+v", again, pl.staged)
	}
}

// Cleanup after a failure removes this deploy's backups only while they are
// redundant: a live file that no longer holds its original bytes keeps its
// backup, whatever the caller says.
func TestCleanupFailureKeepsBackupsOfChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	if _, _, _, err := old.Write(dir); err != nil {
		t.Fatal(err)
	}
	tg := newTarget(dir)
	pl := prepare(t, tg, s, false)
	mustCommit(t, pl)
	if _, err := (&Activities{}).Cleanup(ctx, pl.cleanupInput(false)); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for i, b := range pl.backup.Files {
		pf := pl.in.Plan.Files[i]
		changed := pf.CurrentSHA256 != pf.SHA256 // the chain is the same CA's
		if changed && !exists(b.Backup) {
			t.Errorf("backup %s of a changed file was removed", b.Backup)
		}
		if !changed && exists(b.Backup) {
			t.Errorf("backup %s of an unchanged file was kept", b.Backup)
		}
	}
}

func TestSweepTempsRemovesOnlyStaleLeftovers(t *testing.T) {
	state, dir := t.TempDir(), t.TempDir()
	if err := recordStagedDirs(state, []string{dir, dir}); err != nil {
		t.Fatal(err)
	}
	if dirs, _ := StagedDirs(state); len(dirs) != 1 {
		t.Fatalf("dirs recorded %v", dirs)
	}
	stale := TempPath(filepath.Join(dir, "key.pem"), 100)
	running := TempPath(filepath.Join(dir, "key.pem"), 300)
	other := filepath.Join(dir, "key.pem.certctl-tmp.notastamp")
	for _, p := range []string{stale, running, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := SweepTemps(state, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale {
		t.Fatalf("removed %v, want only %s", removed, stale)
	}
	for _, p := range []string{running, other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s should stay: %v", p, err)
		}
	}
}

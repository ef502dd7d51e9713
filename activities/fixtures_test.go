package activities

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	_ "github.com/certctl/certctl/connectors/nginx"
	_ "github.com/certctl/certctl/connectors/postfix"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

var ctx = context.Background()

// fixture is one deploy's world: a certificate directory, an nginx target
// writing cert.pem, chain.pem and key.pem in it (harmless commands, verify
// off), and two leaves of one CA: old, which the directory holds unless an
// option says otherwise, and s, the one to deploy. A test states only what
// differs from that, with options (cert-manager's test/unit/gen style).
type fixture struct {
	dir    string
	ca     *testsuite.CA
	tg     target.Target
	old, s testsuite.Set
	holds  *testsuite.Set // what dir holds before the test; nil: nothing
}

// fixtureOption changes one thing about a fixture.
type fixtureOption func(x *fixture)

// empty: the directory holds nothing yet (a first deploy).
func empty() fixtureOption { return func(x *fixture) { x.holds = nil } }

// holdingNew: the directory already holds s (a deploy already done).
func holdingNew() fixtureOption { return func(x *fixture) { x.holds = &x.s } }

func newFixture(t *testing.T, opts ...fixtureOption) *fixture {
	t.Helper()
	x := &fixture{dir: t.TempDir(), ca: newCA(t)}
	x.old, x.s = issue(t, x.ca), issue(t, x.ca)
	x.tg = newTarget(x.dir)
	x.holds = &x.old
	for _, o := range opts {
		o(x)
	}
	if x.holds != nil {
		// In the nginx layout (setBytes): the chain after the leaf in
		// cert.pem too.
		if _, _, _, err := x.holds.Write(x.dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(x.tg.Config.CertPath, setBytes(*x.holds)["cert"], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

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

// setBytes are the bytes the nginx layout writes for s, by role: nginx
// sends only what ssl_certificate holds, so cert_path holds the chain too.
func setBytes(s testsuite.Set) map[string][]byte {
	return map[string][]byte{"cert": []byte(s.CertPEM + s.ChainPEM), "chain": []byte(s.ChainPEM), "key": []byte(s.KeyPEM)}
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
	if tg.TargetType != "nginx" {
		want["cert"] = []byte(s.CertPEM)
	}
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

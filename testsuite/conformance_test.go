package testsuite_test

// The connector conformance suite: every file-based connector, against its
// real server started here on loopback, through the operator's interface
// (the certctl binary, a real dev server, real workers). One call runs it for
// one kind of server: runConformance(t, kind). Nothing skips: a missing
// server fails with the apt-get command that installs it.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/envoy"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/connectors/traefik"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// confKind is one kind of server under the suite, with what its connector
// promises for files that do not exist yet.
type confKind struct {
	start func(dir string, initial testsuite.Set) (testsuite.RealServer, error)
	// Documented defaults for new files: mode of the files holding no key,
	// of the file holding the key, and the owner (a user name; "" is root).
	certMode, keyMode os.FileMode
	owner             string
	// noCheck: the server has no check command (traefik): the connector's
	// default is none, and the pipeline says "server check none". The cases
	// that need a failing check or reload give the target one, as for the
	// others.
	noCheck bool
}

var confKinds = map[string]confKind{
	"nginx":   {start: startNginxConf, certMode: 0o644, keyMode: 0o640, owner: "www-data"},
	"apache":  {start: realServer(testsuite.StartApache), certMode: 0o644, keyMode: 0o600, owner: "www-data"},
	"haproxy": {start: realServer(testsuite.StartHAProxy), keyMode: 0o600, owner: "haproxy"},
	"postfix": {start: realServer(testsuite.StartPostfix), certMode: 0o644, keyMode: 0o600},
	"dovecot": {start: realServer(testsuite.StartDovecot), certMode: 0o644, keyMode: 0o600},
	"caddy":   {start: realServer(testsuite.StartCaddy), certMode: 0o644, keyMode: 0o600, owner: "caddy"},
	// caddy in admin-API mode: reloaded through its admin endpoint; no
	// server check by default (caddy's API has no dry run).
	"caddy-api": {start: realServer(testsuite.StartCaddyAPI), certMode: 0o644, keyMode: 0o600, owner: "caddy", noCheck: true},
	"traefik":   {start: realServer(testsuite.StartTraefik), certMode: 0o644, keyMode: 0o600, owner: "traefik", noCheck: true},
	// A Java TLS server reading a JKS or a PKCS12 keystore (one file, 0600,
	// keytool -list its check, SIGHUP its reload): the SSH suite's.
	"javakeystore-jks":    {start: keystoreKind(javakeystore.TypeJKS), keyMode: javakeystore.StoreMode},
	"javakeystore-pkcs12": {start: keystoreKind(javakeystore.TypePKCS12), keyMode: javakeystore.StoreMode},
}

// keystoreKind starts testsuite's Java server on a store of type typ.
func keystoreKind(typ string) func(string, testsuite.Set) (testsuite.RealServer, error) {
	return realServer(func(dir string, initial testsuite.Set) (*testsuite.JavaKeystore, error) {
		return testsuite.StartJavaKeystore(dir, typ, initial)
	})
}

// realServer is start as a confKind's start.
func realServer[S testsuite.RealServer](start func(string, testsuite.Set) (S, error)) func(string, testsuite.Set) (testsuite.RealServer, error) {
	return func(dir string, initial testsuite.Set) (testsuite.RealServer, error) {
		srv, err := start(dir, initial)
		if err != nil {
			return nil, err
		}
		return srv, nil
	}
}

func TestConformanceNginx(t *testing.T)  { runConformance(t, "nginx") }
func TestConformanceApache(t *testing.T) { runConformance(t, "apache") }
func TestConformanceHAProxy(t *testing.T) {
	runConformance(t, "haproxy")
}
func TestConformancePostfix(t *testing.T)  { runConformance(t, "postfix") }
func TestConformanceDovecot(t *testing.T)  { runConformance(t, "dovecot") }
func TestConformanceCaddy(t *testing.T)    { runConformance(t, "caddy") }
func TestConformanceCaddyAPI(t *testing.T) { runConformance(t, "caddy-api") }
func TestConformanceTraefik(t *testing.T)  { runConformance(t, "traefik") }

// runConformance runs every case of the suite against fresh servers of kind.
//
// Kinds run in parallel with each other (after the package's sequential
// tests); the cases of one kind run in turn.
func runConformance(t *testing.T, kind string) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, c *confRun)
	}{
		{"FirstDeployServedInServerLayout", confFirstDeploy},
		{"IdenticalDeploySkipsWithoutReload", confIdempotent},
		{"ServerCheckFailsLeavesLiveFilesUntouched", confCheckFails},
		{"ReloadFailsRestoresOldLeaf", confReloadFails},
		{"VerifySeesAnotherLeafRollsBack", confVerifyFails},
		{"MismatchedKeyNeverReachesServer", confMismatchedKey},
		{"OwnerAndModePrecedence", confOwnerAndMode},
		{"DryRunTouchesNothing", confDryRun},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startConf(t, kind)
			tc.run(t, c)
			c.wantClean(t)
		})
	}
}

// confRun is one case's server and what it started serving.
type confRun struct {
	kind    string
	k       confKind
	srv     testsuite.RealServer
	initial testsuite.Set
	id      string // target_id
	// readableKeyBackups: the case made a live key readable by others
	// before a deploy, whose backup copies it as it was.
	readableKeyBackups bool
}

func startConf(t *testing.T, kind string) *confRun {
	t.Helper()
	k, ok := confKinds[kind]
	if !ok {
		t.Fatalf("no conformance kind %q", kind)
	}
	initial := issue(t)
	dir := t.TempDir()
	// Servers whose workers drop root (postfix, dovecot) must traverse it.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := k.start(dir, initial)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s logs:\n%s", kind, srv.Logs())
		}
		srv.Stop()
	})
	id := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return &confRun{kind: kind, k: k, srv: srv, initial: initial, id: id}
}

func (c *confRun) target() target.Target { return c.srv.Target(c.id, testHost) }

// wantServed waits for the server to serve leaf, and checks it is still up.
func (c *confRun) wantServed(t *testing.T, leaf string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.srv.WaitServing(ctx, leaf); err != nil {
		t.Fatalf("%s: %v", c.kind, err)
	}
}

// wantClean checks what must hold after every case: the server is up, no
// temp file is left, and no file holding a key (live or backup) can be read
// by others.
func (c *confRun) wantClean(t *testing.T) {
	t.Helper()
	if !c.srv.Running() {
		t.Errorf("%s is no longer running", c.kind)
	}
	var entries []string
	for _, dir := range c.liveDirs() {
		if tmp := testsuite.TempFiles(dir); len(tmp) > 0 {
			t.Errorf("temp files left behind: %v", tmp)
		}
		names, _ := filepath.Glob(filepath.Join(dir, "*"))
		entries = append(entries, names...)
	}
	for _, p := range entries {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "PRIVATE KEY") && !c.isStore(p) {
			continue
		}
		if c.readableKeyBackups && strings.Contains(filepath.Base(p), ".certctl-bak.") {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s holds a key and is mode %04o: readable by others", p, fi.Mode().Perm())
		}
	}
}

// isStore reports whether p is the case's keystore or a backup of it: a
// file holding a key that is not PEM.
func (c *confRun) isStore(p string) bool {
	j, ok := c.srv.(*testsuite.JavaKeystore)
	return ok && (p == j.Keystore || strings.HasPrefix(p, j.Keystore+".certctl-"))
}

// fileState is a file's bytes, mode and owner.
type fileState struct {
	data     string
	mode     os.FileMode
	uid, gid uint32
}

func stateOf(t *testing.T, p string) fileState {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fileState{string(b), fi.Mode().Perm(), st.Uid, st.Gid}
}

func (c *confRun) snapshot(t *testing.T) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	for _, p := range c.srv.LiveFiles() {
		m[p] = stateOf(t, p)
	}
	return m
}

func wantSame(t *testing.T, before map[string]fileState) {
	t.Helper()
	for p, want := range before {
		if got := stateOf(t, p); got != want {
			t.Errorf("%s changed (mode %04o→%04o, uid %d→%d, bytes equal %v)", p, want.mode, got.mode, want.uid, got.uid, got.data == want.data)
		}
	}
}

// liveDirs are the directories of the live files (traefik's dynamic config
// sits apart from its certificate and key).
func (c *confRun) liveDirs() []string {
	var dirs []string
	seen := map[string]bool{}
	for _, p := range c.srv.LiveFiles() {
		if d := filepath.Dir(p); !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// backups are the backups of the live files.
func (c *confRun) backups() []string {
	var b []string
	for _, p := range c.srv.LiveFiles() {
		m, _ := filepath.Glob(p + ".certctl-bak.*")
		b = append(b, m...)
	}
	return b
}

func wantOutcome(t *testing.T, r deployRun, code int, o string) {
	t.Helper()
	if r.code != code || r.lastLine() != "outcome: "+o {
		t.Fatalf("exit %d, last line %q; want exit %d, outcome %s", r.code, r.lastLine(), code, o)
	}
}

// deployFails deploys a fresh set to tg and checks that the deploy ends
// outcome (exit 1) with every live file as it was and the initial leaf
// still served.
func (c *confRun) deployFails(t *testing.T, tg target.Target, outcome string) deployRun {
	t.Helper()
	before := c.snapshot(t)
	r := deploy(t, tg, issue(t))
	wantOutcome(t, r, 1, outcome)
	wantSame(t, before)
	c.wantServed(t, c.initial.LeafSHA256)
	return r
}

// wantLayout checks the live files hold s in the server's layout and the
// server sends the leaf and its chain, in order.
func (c *confRun) wantLayout(t *testing.T, s testsuite.Set) {
	t.Helper()
	for p, want := range c.srv.Layout(s) {
		if got := stateOf(t, p).data; got != want {
			t.Errorf("%s does not hold the %s layout", p, c.kind)
		}
	}
	if j, ok := c.srv.(*testsuite.JavaKeystore); ok {
		// Not PEM: keytool reads the store back.
		if err := j.Holds(s); err != nil {
			t.Error(err)
		}
	}
	certs, err := c.srv.Served(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if material.Fingerprint(certs[0].Raw) != s.LeafSHA256 {
		t.Fatalf("served leaf is not the deployed one")
	}
	if len(certs) != 2 || !certs[1].Equal(env.ca.Intermediate) {
		t.Errorf("%s sends %d certificate(s); want the leaf then its intermediate", c.kind, len(certs))
	}
}

// ---- the cases ---------------------------------------------------------------

func confFirstDeploy(t *testing.T, c *confRun) {
	fresh := issue(t)
	r := deploy(t, c.target(), fresh, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.Deployed {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	ran := stepDetails(res)
	for _, step := range []string{"plan", "backup", "stage", "validate", "commit", "reload", "verify", "cleanup"} {
		if _, ok := ran[step]; !ok {
			t.Errorf("step %s did not run", step)
		}
	}
	c.wantCheck(t, ran["validate"])
	c.wantServed(t, fresh.LeafSHA256)
	c.wantLayout(t, fresh)
	if n := len(c.backups()); n != len(c.srv.LiveFiles()) {
		t.Errorf("%d backups, want one per live file (%d)", n, len(c.srv.LiveFiles()))
	}
}

func confIdempotent(t *testing.T, c *confRun) {
	fresh := issue(t)
	tg := c.target()
	wantOutcome(t, deploy(t, tg, fresh), 0, contract.Deployed)
	// The second deploy's reload, were it run, would leave a mark and fail.
	marker := filepath.Join(t.TempDir(), "reloaded")
	tg.Config.ReloadCommand = script(t, fmt.Sprintf("touch %s\nexit 1\n", marker))
	tg.Config.ReloadSignal, tg.Config.PIDFile = "", ""
	before := c.snapshot(t)
	r := deploy(t, tg, fresh, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.SkippedIdempotent {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	for _, step := range []string{"backup", "stage", "validate", "commit", "reload", "verify"} {
		if _, ok := stepDetails(res)[step]; ok {
			t.Errorf("an identical deploy ran %q", step)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("an identical deploy reloaded the server")
	}
	wantSame(t, before)
	c.wantServed(t, fresh.LeafSHA256)
}

func confCheckFails(t *testing.T, c *confRun) {
	tg := c.target()
	broken, err := c.srv.BrokenCheck()
	if err != nil {
		t.Fatal(err)
	}
	tg.Config.ValidateCommand = broken
	r := c.deployFails(t, tg, contract.ValidateFailed)
	if !strings.Contains(r.stdout, broken[0]) {
		t.Errorf("the error does not name the server's check")
	}
	if b := c.backups(); len(b) != 0 {
		t.Errorf("a failed check left backups: %v", b)
	}
}

func confReloadFails(t *testing.T, c *confRun) {
	tg := c.target()
	// The deploy's reload fails; the rollback's is the server's own.
	marker := filepath.Join(t.TempDir(), "failed-once")
	tg.Config.ReloadCommand = script(t, fmt.Sprintf(
		"if [ ! -e %[1]s ]; then touch %[1]s; echo 'reload refused (test)' >&2; exit 1; fi\n%[2]s\n", marker, c.srv.ReloadScript()))
	tg.Config.ReloadSignal, tg.Config.PIDFile = "", ""
	r := c.deployFails(t, tg, contract.ReloadFailed)
	for _, step := range []string{"rollback ", "rollback-reload ", "rollback-verify "} {
		if !strings.Contains(r.stdout, "  "+step) {
			t.Errorf("step %s not run", step)
		}
	}
}

func confVerifyFails(t *testing.T, c *confRun) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other := issue(t)
	addr, err := testsuite.FakeServer(ctx, other, c.srv.Protocol())
	if err != nil {
		t.Fatal(err)
	}
	tg := c.target()
	tg.Config.PostDeployVerify.Endpoint = addr
	tg.Config.PostDeployVerifyAttempts = 2
	c.deployFails(t, tg, contract.VerifyFailed)
}

func confMismatchedKey(t *testing.T, c *confRun) {
	a, b := issue(t), issue(t)
	a.KeyPEM = b.KeyPEM
	before := c.snapshot(t)
	r := deploy(t, c.target(), a)
	if r.code != 2 || !strings.Contains(r.stderr, "key_pem") || strings.Contains(r.stdout, "workflow:") {
		t.Fatalf("want exit 2 naming key_pem before any workflow; exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "PRIVATE KEY") {
		t.Fatal("the refusal prints key material")
	}
	// Past the starter (the temporal CLI, another client): the host refuses
	// the pair before writing anything.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := env.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "deploy/" + c.id + "/mismatch", TaskQueue: contract.TaskQueue,
	}, "DeployWorkflow", workflows.DeployRequest{Target: c.target(), Material: a.Material})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.DeployResult
	err = run.Get(ctx, &res)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != contract.InvalidInput {
		t.Fatalf("a workflow started with a mismatched key ended %v, want %s", err, contract.InvalidInput)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatal("the error carries key material")
	}
	wantSame(t, before)
	c.wantServed(t, c.initial.LeafSHA256)
}

// keyFiles and otherFiles split the live files by whether they hold the key.
func (c *confRun) keyFiles(t *testing.T) (keys, others []string) {
	for p, v := range c.srv.Layout(c.initial) {
		if strings.Contains(v, "PRIVATE KEY") {
			keys = append(keys, p)
		} else {
			others = append(others, p)
		}
	}
	return
}

// setExplicit sets target_config's mode and owner for the file at path.
func setExplicit(t *testing.T, tg *target.Target, path string, mode target.Mode, owner string) {
	t.Helper()
	cfg := &tg.Config
	if o, ok := cfg.Own.(*haproxy.Config); ok && path == o.PEMPath {
		pem := *o
		pem.PEMFileMode, pem.PEMOwner = &mode, owner
		cfg.Own = &pem
		return
	}
	switch path {
	case cfg.KeyPath:
		cfg.KeyFileMode, cfg.KeyOwner = &mode, owner
	case cfg.CertPath:
		cfg.CertFileMode, cfg.CertOwner = &mode, owner
	case cfg.ChainPath:
		cfg.ChainFileMode, cfg.ChainOwner = &mode, owner
	default:
		t.Fatalf("%s is not a file of the target", path)
	}
}

func wantModeOwner(t *testing.T, p string, mode os.FileMode, uid int, why string) {
	t.Helper()
	st := stateOf(t, p)
	if st.mode != mode || int(st.uid) != uid {
		t.Errorf("%s (%s): mode %04o uid %d, want %04o uid %d", p, why, st.mode, st.uid, mode, uid)
	}
}

func uidOf(t *testing.T, name string) int {
	t.Helper()
	if name == "" {
		return 0
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	return uid
}

func confOwnerAndMode(t *testing.T, c *confRun) {
	keys, others := c.keyFiles(t)
	nobody := uidOf(t, "nobody")
	// Existing: the destination's owner and mode are kept.
	for _, p := range keys {
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range append(append([]string{}, others...), keys...) {
		if err := os.Chown(p, nobody, -1); err != nil {
			t.Fatal(err)
		}
	}
	wantOutcome(t, deploy(t, c.target(), issue(t)), 0, contract.Deployed)
	for _, p := range keys {
		wantModeOwner(t, p, 0o640, nobody, "existing")
	}
	for _, p := range others {
		wantModeOwner(t, p, 0o644, nobody, "existing")
	}

	// Explicit wins over existing.
	tg := c.target()
	for _, p := range keys {
		setExplicit(t, &tg, p, 0o600, "root")
	}
	wantOutcome(t, deploy(t, tg, issue(t)), 0, contract.Deployed)
	for _, p := range keys {
		wantModeOwner(t, p, 0o600, 0, "explicit")
	}

	// An existing key readable by others loses that, whatever it was. (Its
	// backup keeps the mode it had: a copy of what was there.)
	c.readableKeyBackups = true
	for _, p := range keys {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	last := issue(t)
	wantOutcome(t, deploy(t, c.target(), last), 0, contract.Deployed)
	for _, p := range keys {
		wantModeOwner(t, p, 0o640, 0, "existing, without other")
	}
	c.wantServed(t, last.LeafSHA256)

	// New files take the connector's defaults. Nothing serves these paths:
	// verify is off and the commands are no-ops.
	dir := t.TempDir()
	fresh := c.target()
	cfg := &fresh.Config
	paths := []*string{&cfg.CertPath, &cfg.ChainPath, &cfg.KeyPath}
	switch o := cfg.Own.(type) {
	case *haproxy.Config:
		own := *o
		cfg.Own, paths = &own, append(paths, &own.PEMPath)
	case *traefik.Config:
		own := *o
		cfg.Own, paths = &own, append(paths, &own.DynamicConfigPath)
	case *envoy.Config:
		own := *o
		cfg.Own, paths = &own, append(paths, &own.SDSPath)
	}
	for _, p := range paths {
		if *p != "" {
			*p = filepath.Join(dir, filepath.Base(*p))
		}
	}
	off := false
	cfg.ValidateCommand, cfg.ReloadCommand = target.Command{"true"}, target.Command{"true"}
	cfg.ReloadSignal, cfg.PIDFile = "", ""
	cfg.PostDeployVerify = target.Verify{Enabled: &off}
	fresh.TargetID += "-new"
	wantOutcome(t, deploy(t, fresh, issue(t)), 0, contract.Deployed)
	// The connector's user owns new files; where it is absent they keep root.
	owner := 0
	if _, err := user.Lookup(c.k.owner); err == nil && c.k.owner != "" {
		owner = uidOf(t, c.k.owner)
	}
	conn, err := connectors.Get(fresh.TargetType)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range conn.Destinations(*cfg) {
		mode := c.k.certMode
		if d.Field == "target_config.key_path" || d.Field == "target_config.pem_path" {
			mode = c.k.keyMode
		}
		wantModeOwner(t, d.Path, mode, owner, "connector default")
	}
}

func confDryRun(t *testing.T, c *confRun) {
	before := c.snapshot(t)
	r := deploy(t, c.target(), issue(t), "--dry-run", "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.DryRunPassed {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	c.wantCheck(t, stepDetails(res)["validate"])
	wantSame(t, before)
	if b := c.backups(); len(b) != 0 {
		t.Errorf("a dry run left backups: %v", b)
	}
	c.wantServed(t, c.initial.LeafSHA256)
}

// wantCheck checks the validate step ran the server's check on the staged
// files, or, for a server without one, said there was none.
func (c *confRun) wantCheck(t *testing.T, detail string) {
	t.Helper()
	want := "server check staged"
	if c.k.noCheck {
		want = "server check none"
	}
	if !strings.Contains(detail, want) {
		t.Errorf("validate step %q, want %q", detail, want)
	}
}

// stepDetails maps each step that ran to its detail.
func stepDetails(res workflows.DeployResult) map[string]string {
	m := map[string]string{}
	for _, s := range res.Steps {
		m[s.Name] = s.Detail
	}
	return m
}

// script writes an executable shell script and returns it as a command.
func script(t *testing.T, body string) target.Command {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return target.Command{p}
}

// ---- nginx on the suite -------------------------------------------------------

// nginxConf puts testsuite's nginx on the suite. nginx sends only what
// ssl_certificate holds, so the connector writes the chain after the leaf in
// cert_path, and the chain alone in chain_path (its ssl_trusted_certificate).
type nginxConf struct{ n *testsuite.Nginx }

func startNginxConf(dir string, initial testsuite.Set) (testsuite.RealServer, error) {
	n, err := testsuite.StartNginx(dir, initial)
	if err != nil {
		return nil, err
	}
	return nginxConf{n}, nil
}

func (x nginxConf) Kind() string                         { return "nginx" }
func (x nginxConf) Target(id, host string) target.Target { return x.n.Target(id, host) }
func (x nginxConf) LiveFiles() []string {
	return []string{x.n.CertPath, x.n.ChainPath, x.n.KeyPath}
}
func (x nginxConf) Layout(s testsuite.Set) map[string]string {
	return map[string]string{x.n.CertPath: s.CertPEM + s.ChainPEM, x.n.ChainPath: s.ChainPEM, x.n.KeyPath: s.KeyPEM}
}
func (x nginxConf) BrokenCheck() (target.Command, error) {
	broken := filepath.Join(x.n.Dir, "broken.conf")
	conf, err := os.ReadFile(x.n.Conf)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(broken, append(conf, "\nthis is not a directive\n"...), 0o644); err != nil {
		return nil, err
	}
	return target.Command{"nginx", "-t", "-p", x.n.Dir + "/", "-c", broken, "-e", filepath.Join(x.n.Dir, "error.log")}, nil
}
func (x nginxConf) ReloadScript() string { return strings.Join(x.n.ReloadCommand(), " ") }
func (x nginxConf) Served(ctx context.Context) ([]*x509.Certificate, error) {
	return testsuite.ServedChain(ctx, x.n.Endpoint, testsuite.ProtoTLS)
}
func (x nginxConf) WaitServing(ctx context.Context, want string) error {
	return x.n.WaitServing(ctx, want)
}
func (x nginxConf) Running() bool    { return x.n.Running() }
func (x nginxConf) Endpoint() string { return x.n.Endpoint }
func (x nginxConf) Protocol() string { return testsuite.ProtoTLS }
func (x nginxConf) Logs() string {
	b, _ := os.ReadFile(filepath.Join(x.n.Dir, "error.log"))
	return string(b)
}
func (x nginxConf) Stop() { x.n.Stop() }

// ---- beyond the suite -----------------------------------------------------------

// startBeyond starts a server of kind for one test beyond the suite, run in
// parallel with the others. When the test ends, what must hold after every
// case is checked for it too (wantClean).
func startBeyond(t *testing.T, kind string) *confRun {
	t.Helper()
	t.Parallel()
	c := startConf(t, kind)
	t.Cleanup(func() { c.wantClean(t) })
	return c
}

// apache2 -t passes a key that does not match the certificate (and graceful
// then stops apache): certctl must refuse such a pair before it is written.
func TestConformanceApacheMismatchedKeyTrap(t *testing.T) {
	c := startBeyond(t, "apache")
	a, b := issue(t), issue(t)
	a.KeyPEM = b.KeyPEM
	// The trap is real: the server's own check passes the pair.
	ap := c.srv.(*testsuite.Apache)
	trapDir := t.TempDir()
	cert, chain, key, err := a.Write(trapDir)
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(ap.Conf)
	trapConf := filepath.Join(trapDir, "trap.conf")
	text := strings.NewReplacer(ap.CertPath, cert, ap.ChainPath, chain, ap.KeyPath, key).Replace(string(conf))
	if err := os.WriteFile(trapConf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	check := ap.CheckCommand(trapConf)
	if out, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("the premise of this test is false: %s refuses a key that does not match the certificate "+
			"(%v: %s), so the server's own check no longer lets the trap through", check, err, out)
	}
	before := c.snapshot(t)
	r := deploy(t, c.target(), a)
	// Refused before any workflow: no reload ran, so no graceful restart
	// can still be on its way to stopping apache.
	if r.code != 2 || !strings.Contains(r.stderr, "key_pem") || strings.Contains(r.stdout, "workflow:") {
		t.Fatalf("exit %d stdout %q stderr %q, want 2 naming key_pem before any workflow", r.code, r.stdout, r.stderr)
	}
	wantSame(t, before)
	c.wantServed(t, c.initial.LeafSHA256)
}

// Dovecot verified over implicit TLS (imaps, 993's role) instead of
// STARTTLS.
func TestConformanceDovecotImplicitTLS(t *testing.T) {
	c := startBeyond(t, "dovecot")
	d := c.srv.(*testsuite.Dovecot)
	tg := c.target()
	tg.Config.PostDeployVerify.Endpoint = d.ImapsEndpoint
	tg.Config.PostDeployVerify.Protocol = "" // the dovecot connector's default: tls
	fresh := issue(t)
	r := deploy(t, tg, fresh, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.Deployed {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	certs, err := testsuite.ServedChain(context.Background(), d.ImapsEndpoint, testsuite.ProtoTLS)
	if err != nil || material.Fingerprint(certs[0].Raw) != fresh.LeafSHA256 {
		t.Fatalf("imaps does not serve the new leaf (%v)", err)
	}
}

// A postfix target that leaves post_deploy_verify.protocol out is verified
// over SMTP STARTTLS (the connector's default), and a verify over plain TLS
// at an SMTP port fails rather than passing.
func TestConformancePostfixVerifyProtocol(t *testing.T) {
	c := startBeyond(t, "postfix")
	tg := c.target()
	tg.Config.PostDeployVerify.Protocol = ""
	fresh := issue(t)
	wantOutcome(t, deploy(t, tg, fresh), 0, contract.Deployed)
	c.wantServed(t, fresh.LeafSHA256)

	tg.Config.PostDeployVerify.Protocol = testsuite.ProtoTLS
	tg.Config.PostDeployVerifyAttempts = 1
	before := c.snapshot(t)
	r := deploy(t, tg, issue(t), "--output", "json")
	res := r.result(t)
	if r.code != 1 || res.Outcome != contract.VerifyFailed {
		t.Fatalf("exit %d outcome %s, want VerifyFailed", r.code, res.Outcome)
	}
	wantSame(t, before)
	c.wantServed(t, fresh.LeafSHA256)
}

// haproxy reloads by signal: a pid file that names no haproxy (a stale one
// after a restart) fails Validate, before anything live changes, and no
// other process is ever signalled.
func TestConformanceHAProxyStalePIDFile(t *testing.T) {
	c := startBeyond(t, "haproxy")
	stale := filepath.Join(t.TempDir(), "stale.pid")
	if err := os.WriteFile(stale, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tg := c.target()
	tg.Config.PIDFile = stale
	r := c.deployFails(t, tg, contract.ValidateFailed)
	if !strings.Contains(r.stdout, "not signalled") {
		t.Errorf("the error does not say the pid file names another process")
	}
}

// mismatchOnReload is a reload that, the first time, points the server's
// configuration (conf, which names keyPath) at a key that does not match the
// deployed leaf before reloading for real, and the second time (the
// rollback's reload) points it back. What a server does with such a pair is
// then up to it, and the verify must notice. certctl's own files are left
// alone: a rollback refuses to overwrite a file that no longer holds the
// deploy's bytes.
func mismatchOnReload(t *testing.T, c *confRun, conf, keyPath string) target.Command {
	t.Helper()
	other := issue(t)
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong-key.pem")
	if err := os.WriteFile(wrong, []byte(other.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "swapped-once")
	return script(t, fmt.Sprintf("if [ ! -e %[1]s ]; then touch %[1]s; sed -i 's#%[3]s#%[2]s#' %[4]s; else sed -i 's#%[2]s#%[3]s#' %[4]s; fi\n%[5]s\n",
		marker, wrong, keyPath, conf, c.srv.ReloadScript()))
}

// postfix with a key that does not match passes its check and its reload,
// then refuses STARTTLS (3.7.11 answers "454 4.7.0 TLS not available due to
// local problem"; it may also stop offering it). Mail still flows in plain
// text. The SMTP verify notices either and rolls back.
func TestConformancePostfixNoticesDroppedSTARTTLS(t *testing.T) {
	c := startBeyond(t, "postfix")
	p := c.srv.(*testsuite.Postfix)
	tg := c.target()
	tg.Config.ReloadCommand = mismatchOnReload(t, c, filepath.Join(p.ConfDir, "main.cf"), p.KeyPath)
	tg.Config.PostDeployVerifyAttempts = 2
	r := c.deployFails(t, tg, contract.VerifyFailed)
	if !strings.Contains(r.stdout, "smtp-starttls") || !strings.Contains(r.stdout, "STARTTLS") {
		t.Errorf("the verify error does not say STARTTLS failed")
	}
}

// dovecot with a key that does not match keeps running and fails every
// handshake. The verify notices and rolls back.
func TestConformanceDovecotNoticesFailedHandshakes(t *testing.T) {
	c := startBeyond(t, "dovecot")
	d := c.srv.(*testsuite.Dovecot)
	tg := c.target()
	tg.Config.ReloadCommand = mismatchOnReload(t, c, d.Conf, d.KeyPath)
	tg.Config.PostDeployVerifyAttempts = 2
	c.deployFails(t, tg, contract.VerifyFailed)
}

// traefik does not notice its certificate files replaced at the same paths:
// it reads them when its dynamic configuration changes. A deploy whose
// certificate and key are already in place (written by someone else) still
// rewrites the connector's dynamic config, and that is what traefik acts on.
func TestConformanceTraefikActsOnDynamicConfigOnly(t *testing.T) {
	c := startBeyond(t, "traefik")
	tr := c.srv.(*testsuite.Traefik)
	fresh := issue(t)
	for p, v := range map[string]string{tr.CertPath: fresh.CertPEM + fresh.ChainPEM, tr.KeyPath: fresh.KeyPEM} {
		tmp := p + ".by-hand"
		if err := os.WriteFile(tmp, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	// For longer than traefik's 2s providers throttle, it must not pick them up.
	if picked, _ := testsuite.Poll(4*time.Second, func() (bool, string) {
		certs, err := c.srv.Served(context.Background())
		return err == nil && material.Fingerprint(certs[0].Raw) == fresh.LeafSHA256, ""
	}); picked {
		t.Fatal("traefik picked up certificate files replaced without a dynamic config change: the connector's rewrite is no longer needed")
	}
	r := deploy(t, c.target(), fresh, "--output", "json")
	res := r.result(t)
	if r.code != 0 || res.Outcome != contract.Deployed {
		t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
	}
	c.wantServed(t, fresh.LeafSHA256)
	c.wantLayout(t, fresh)
}

package activities

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
)

func TestPlanFirstDeploy(t *testing.T) {
	x := newFixture(t, empty())
	p := mustPlan(t, planInput(x.tg, x.s, newStamp()))
	if p.Action != ActionDeploy {
		t.Fatalf("action %q, want %q", p.Action, ActionDeploy)
	}
	if p.LeafSHA256 != x.s.LeafSHA256 {
		t.Errorf("leaf %s, want %s", p.LeafSHA256, x.s.LeafSHA256)
	}
	if len(p.Files) != 3 {
		t.Fatalf("want 3 files, got %+v", p.Files)
	}
	want := setBytes(x.s)
	for _, r := range roles {
		f := fileOf(t, p, r)
		if f.Exists || f.CurrentSHA256 != "" {
			t.Errorf("%s: exists=%v current=%q for an absent file", r, f.Exists, f.CurrentSHA256)
		}
		if f.Path != pathOf(x.tg, r) || f.SHA256 != material.SHA256(want[r]) {
			t.Errorf("%s: path %s sha %s", r, f.Path, f.SHA256)
		}
	}
	if !fileOf(t, p, "key").HoldsKey || fileOf(t, p, "cert").HoldsKey {
		t.Errorf("HoldsKey wrong: %+v", p.Files)
	}
	if names := listDir(t, x.dir); len(names) != 0 {
		t.Errorf("Plan wrote files: %v", names)
	}
}

func TestPlanIdenticalFilesVerifyDisabledSkips(t *testing.T) {
	x := newFixture(t, holdingNew())
	p := mustPlan(t, planInput(newTarget(x.dir), x.s, newStamp()))
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
	x := newFixture(t, holdingNew())
	tg := withVerify(newTarget(x.dir), serveTLS(t, x.old))
	p := mustPlan(t, planInput(tg, x.s, newStamp()))
	if p.Action != ActionReload {
		t.Fatalf("action %q, want %q", p.Action, ActionReload)
	}
	if p.ServedSHA256 != x.old.LeafSHA256 {
		t.Errorf("served %s, want the old leaf %s", p.ServedSHA256, x.old.LeafSHA256)
	}
}

func TestPlanIdenticalFilesNewLeafServedSkips(t *testing.T) {
	x := newFixture(t, holdingNew())
	tg := withVerify(newTarget(x.dir), serveTLS(t, x.s))
	p := mustPlan(t, planInput(tg, x.s, newStamp()))
	if p.Action != ActionSkip {
		t.Fatalf("action %q, want %q", p.Action, ActionSkip)
	}
	if p.ServedSHA256 != x.s.LeafSHA256 {
		t.Errorf("served %s, want %s", p.ServedSHA256, x.s.LeafSHA256)
	}
}

// Identical bytes with a key readable by others is work to do, not a skip.
func TestPlanPermissionDriftIsNotASkip(t *testing.T) {
	x := newFixture(t, holdingNew())
	in := PlanInput{Request: Request{Target: x.tg, Stamp: newStamp()}, Material: x.s.Material}
	if plan, err := (&Activities{}).Plan(ctx, in); err != nil || plan.Action != ActionSkip {
		t.Fatalf("identical files planned %s (err %v), want skip", plan.Action, err)
	}
	if err := os.Chmod(x.tg.Config.KeyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if plan, err := (&Activities{}).Plan(ctx, in); err != nil || plan.Action != ActionDeploy {
		t.Fatalf("a world-readable key with identical bytes planned %s (err %v), want deploy", plan.Action, err)
	}
}

func TestPlanMissingDirectoryIsInvalidInput(t *testing.T) {
	x := newFixture(t, empty())
	x.tg.Config.CertPath = filepath.Join(x.dir, "missing", "cert.pem")
	_, err := (&Activities{}).Plan(ctx, planInput(x.tg, x.s, newStamp()))
	appErr(t, err, contract.InvalidInput)
	if !strings.Contains(err.Error(), "target_config.cert_path") {
		t.Errorf("error does not name target_config.cert_path: %v", err)
	}
	if exists(filepath.Join(x.dir, "missing")) {
		t.Errorf("Plan created the missing directory")
	}
}

func TestPlanKeyNotMatchingCertIsInvalidInput(t *testing.T) {
	x := newFixture(t, empty())
	s, other := issue(t, x.ca), issue(t, x.ca)
	m := s.Material
	m.KeyPEM = other.KeyPEM
	_, err := (&Activities{}).Plan(ctx, PlanInput{Request: Request{Target: newTarget(x.dir), Stamp: newStamp()}, Material: m})
	appErr(t, err, contract.InvalidInput)
	if !strings.Contains(err.Error(), "key_pem") {
		t.Errorf("error does not name key_pem: %v", err)
	}
}

func TestPlanRefusesSymlinkedDestination(t *testing.T) {
	x := newFixture(t, empty())
	real := filepath.Join(x.dir, "archive-cert1.pem")
	if err := os.WriteFile(real, []byte(x.s.CertPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, x.tg.Config.CertPath); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Plan(ctx, PlanInput{Request: Request{Target: x.tg, Stamp: newStamp()}, Material: x.s.Material})
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), "target_config.cert_path") {
		t.Fatalf("want InvalidInput naming cert_path as a symlink, got %v", err)
	}
}

func TestPreflightNeedsAHostForFileTargets(t *testing.T) {
	s := issue(t, newCA(t))
	tg := newTarget(t.TempDir())
	tg.Host = ""
	_, _, err := Preflight(tg, s.Material, time.Now())
	var fe *contract.FieldError
	if !errors.As(err, &fe) || fe.Field != "host" {
		t.Fatalf("want a FieldError on host, got %v", err)
	}
}

func TestOwnershipExplicitKeyModeWins(t *testing.T) {
	x := newFixture(t)
	x.tg.Config.KeyFileMode = modep(0o440)
	pl := prepare(t, x.tg, x.s, false)
	k := fileOf(t, pl.in.Plan, "key")
	if k.Mode != 0o440 || k.ModeFrom != "explicit" {
		t.Errorf("key mode %v from %q, want 0440 from explicit", k.Mode, k.ModeFrom)
	}
	mustCommit(t, pl)
	if m := mode(t, x.tg.Config.KeyPath); m != 0o440 {
		t.Errorf("committed key mode %v, want 0440", m)
	}
}

func TestOwnershipExistingModeKeptWithoutExplicit(t *testing.T) {
	x := newFixture(t)
	if err := os.Chmod(x.tg.Config.KeyPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(x.tg.Config.CertPath, 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(x.tg.Config.KeyPath, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, x.tg, x.s, false)
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
	if m := mode(t, x.tg.Config.KeyPath); m != 0o600 {
		t.Errorf("committed key mode %v, want 0600", m)
	}
	if uid, gid := owner(t, x.tg.Config.KeyPath); uid != 65534 || gid != 65534 {
		t.Errorf("committed key owner %d:%d, want 65534:65534", uid, gid)
	}
}

func TestOwnershipConnectorDefaultForNewKey(t *testing.T) {
	x := newFixture(t, empty())
	p := mustPlan(t, planInput(x.tg, x.s, newStamp()))
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
	x := newFixture(t, empty())
	x.tg.Config.KeyOwner = "nobody"
	pl := prepare(t, x.tg, x.s, false)
	k := fileOf(t, pl.in.Plan, "key")
	if k.UID != uid || k.GID != gid || k.OwnerFrom != "explicit" {
		t.Errorf("key owner %d:%d from %q, want %d:%d from explicit", k.UID, k.GID, k.OwnerFrom, uid, gid)
	}
	var keyTemp string
	for _, f := range pl.staged.Files {
		if f.Path == x.tg.Config.KeyPath {
			keyTemp = f.Temp
		}
	}
	if gu, gg := owner(t, keyTemp); gu != uid || gg != gid {
		t.Errorf("staged key owned by %d:%d, want %d:%d", gu, gg, uid, gid)
	}

	// An unknown owner is InvalidInput naming the field.
	x.tg.Config.KeyOwner = "no-such-user-certctl"
	_, err = (&Activities{}).Plan(ctx, planInput(x.tg, x.s, newStamp()))
	appErr(t, err, contract.InvalidInput)
	if !strings.Contains(err.Error(), "target_config.key_owner") {
		t.Errorf("error does not name target_config.key_owner: %v", err)
	}
}

func TestOwnershipWorldReadableKeyLosesOtherBits(t *testing.T) {
	x := newFixture(t)
	if err := os.Chmod(x.tg.Config.KeyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	pl := prepare(t, x.tg, x.s, false)
	k := fileOf(t, pl.in.Plan, "key")
	if k.Mode != 0o640 || k.ModeFrom != "existing-without-other" {
		t.Errorf("key mode %v from %q, want 0640 from existing-without-other", k.Mode, k.ModeFrom)
	}
	// The cert's "other" bits are nobody's business.
	if c := fileOf(t, pl.in.Plan, "cert"); c.Mode != 0o644 {
		t.Errorf("cert mode %v, want 0644", c.Mode)
	}
	mustCommit(t, pl)
	if m := mode(t, x.tg.Config.KeyPath); m != 0o640 {
		t.Errorf("committed key mode %v, want 0640", m)
	}
}

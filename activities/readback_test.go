package activities

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/certctl/certctl/connectors/files"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// filesTarget is a files target writing cert.pem, chain.pem and key.pem in
// dir, verify on (the default) and no endpoint: the connector verifies by
// reading back and runs no command.
func filesTarget(dir string) target.Target {
	return target.Target{
		TargetID:   "app-1",
		TargetType: "files",
		Host:       "testhost",
		Config: target.Config{
			CertPath:  filepath.Join(dir, "cert.pem"),
			ChainPath: filepath.Join(dir, "chain.pem"),
			KeyPath:   filepath.Join(dir, "key.pem"),
		},
	}
}

// Verify of a connector that verifies by reading back reads the leaf file
// through safefs and compares its first certificate with Expected: the new
// leaf after a commit, the old one after a rollback.
func TestVerifyReadBack(t *testing.T) {
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, dir string) // writes what the directory holds
		expected string
		wantErr  string // "" for success; else in the VerifyMismatch message
		served   string // the leaf the result reports
	}{
		{name: "holds the new leaf", setup: holding(s), expected: s.LeafSHA256, served: s.LeafSHA256},
		{name: "rollback: holds the old leaf again", setup: holding(old), expected: old.LeafSHA256, served: old.LeafSHA256},
		{name: "holds the old leaf", setup: holding(old), expected: s.LeafSHA256, wantErr: "holds leaf " + old.LeafSHA256[:16] + ", want " + s.LeafSHA256[:16], served: old.LeafSHA256},
		{name: "leaf after the chain in the file", setup: func(t *testing.T, dir string) {
			holding(s)(t, dir)
			writeFile(t, filepath.Join(dir, "cert.pem"), s.ChainPEM+s.CertPEM)
		}, expected: s.LeafSHA256, wantErr: "holds leaf "},
		{name: "cert file is a link to the new leaf", setup: func(t *testing.T, dir string) {
			other := t.TempDir()
			holding(s)(t, other)
			holding(s)(t, dir)
			linkOver(t, filepath.Join(other, "cert.pem"), filepath.Join(dir, "cert.pem"))
		}, expected: s.LeafSHA256, wantErr: "target_config.cert_path: open " + "DIR/cert.pem: is a symbolic link"},
		{name: "cert file missing", setup: func(t *testing.T, dir string) {
			holding(s)(t, dir)
			if err := os.Remove(filepath.Join(dir, "cert.pem")); err != nil {
				t.Fatal(err)
			}
		}, expected: s.LeafSHA256, wantErr: "target_config.cert_path: DIR/cert.pem does not exist"},
		{name: "cert file holds no certificate", setup: func(t *testing.T, dir string) {
			holding(s)(t, dir)
			writeFile(t, filepath.Join(dir, "cert.pem"), "not a certificate\n")
		}, expected: s.LeafSHA256, wantErr: "DIR/cert.pem holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			tg := filesTarget(dir)
			res, err := (&Activities{}).Verify(ctx, VerifyInput{Request: Request{Target: tg}, Expected: tc.expected})
			if res.Endpoint != tg.Config.CertPath {
				t.Errorf("result endpoint %q, want the file read, %s", res.Endpoint, tg.Config.CertPath)
			}
			if tc.served != "" && res.Served != tc.served {
				t.Errorf("result says the file holds %s, want %s", res.Served, tc.served)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			ae := appErr(t, err, contract.VerifyMismatch)
			if want := strings.ReplaceAll(tc.wantErr, "DIR", dir); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if ae.NonRetryable() {
				t.Error("a read-back mismatch is retried like a served one")
			}
		})
	}
}

// A directory on the way to the leaf file that is a link is not followed.
func TestVerifyReadBackRefusesLinkedDirectory(t *testing.T) {
	s := issue(t, newCA(t))
	real, parent := t.TempDir(), t.TempDir()
	holding(s)(t, real)
	linked := filepath.Join(parent, "certs")
	if err := os.Symlink(real, linked); err != nil {
		t.Fatal(err)
	}
	_, err := (&Activities{}).Verify(ctx, VerifyInput{Request: Request{Target: filesTarget(linked)}, Expected: s.LeafSHA256})
	appErr(t, err, contract.VerifyMismatch)
	if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error %q does not say a link was refused", err)
	}
}

// Plan reads the leaf a read-back target holds now (what a rollback-verify
// expects again) and skips a deploy whose files already hold the new one.
func TestPlanReadBack(t *testing.T) {
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	for _, tc := range []struct {
		name   string
		holds  *testsuite.Set
		served string
		action Action
	}{
		{"first deploy", nil, "", ActionDeploy},
		{"holds the old leaf", &old, old.LeafSHA256, ActionDeploy},
		{"holds the new leaf", &s, s.LeafSHA256, ActionSkip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.holds != nil {
				holding(*tc.holds)(t, dir)
			}
			p := mustPlan(t, planInput(filesTarget(dir), s, newStamp()))
			if p.ServedSHA256 != tc.served || p.Action != tc.action {
				t.Errorf("plan served %q action %s, want %q %s", p.ServedSHA256, p.Action, tc.served, tc.action)
			}
		})
	}
}

// A target with no check and no reload, neither its connector's nor its
// own, passes Validate and Reload with a note saying why nothing ran; a
// target with commands runs them and has no such note.
func TestNoCommandSteps(t *testing.T) {
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	for _, tc := range []struct {
		tg target.Target
		// The notes; "" when the step runs a command.
		validateNote, reloadNote string
	}{
		{filesTarget(t.TempDir()), "files: no server check", "files: no reload"},
		{newTarget(t.TempDir()), "", ""},
	} {
		holding(old)(t, filepath.Dir(tc.tg.Config.CertPath))
		pl := prepare(t, tc.tg, s, false)
		v, err := (&Activities{}).Validate(ctx, pl.validateInput())
		if err != nil {
			t.Fatalf("%s: Validate: %v", tc.tg.TargetType, err)
		}
		if none := v.ServerCheck == CheckNone; none != (tc.validateNote != "") || (none && v.Note != tc.validateNote) || (!none && v.Command != "true") {
			t.Errorf("%s: validate %+v, want note %q", tc.tg.TargetType, v, tc.validateNote)
		}
		r, err := (&Activities{}).Reload(ctx, pl.in.Request)
		if err != nil || r.Note != tc.reloadNote || (tc.reloadNote == "") != (r.Command == "true") {
			t.Errorf("%s: reload %+v (%v), want note %q", tc.tg.TargetType, r, err, tc.reloadNote)
		}
	}
}

// A whole deploy of a files target runs no command: with nothing on PATH
// (every command is looked up there) plan, backup, stage, validate, commit,
// reload, verify and cleanup all pass, and the files hold the new material.
func TestFilesDeployRunsNoCommand(t *testing.T) {
	ca := newCA(t)
	old, s := issue(t, ca), issue(t, ca)
	dir := t.TempDir()
	holding(old)(t, dir)
	tg := filesTarget(dir)
	t.Setenv("PATH", t.TempDir())
	a := &Activities{}
	pl := prepare(t, tg, s, false)
	if _, err := a.Validate(ctx, pl.validateInput()); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	mustCommit(t, pl)
	if _, err := a.Reload(ctx, pl.in.Request); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := a.Verify(ctx, VerifyInput{Request: pl.in.Request, Expected: pl.in.Plan.LeafSHA256}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, err := a.Cleanup(ctx, pl.cleanupInput(true)); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	assertFilesHold(t, tg, s)
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{tg.Config.CertPath, 0o644}, {tg.Config.ChainPath, 0o644}, {tg.Config.KeyPath, 0o600}} {
		if m := mode(t, f.path); m != f.mode {
			t.Errorf("%s: mode %04o, want %04o (kept from the existing file)", f.path, m, f.mode)
		}
	}
}

// holding writes s into dir as cert.pem, chain.pem and key.pem.
func holding(s testsuite.Set) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		if _, _, _, err := s.Write(dir); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, p, text string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// linkOver replaces p with a symbolic link to dst.
func linkOver(t *testing.T, dst, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dst, p); err != nil {
		t.Fatal(err)
	}
}

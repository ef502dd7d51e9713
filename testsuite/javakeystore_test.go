package testsuite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// TestIntegrationJavaKeystore deploys to a real Java TLS server reading a
// JKS or a PKCS12 keystore (testsuite/java/KeystoreServer.java, compiled
// with javac), through certctl, the dev server and the host worker, with
// the real keytool as the server check: every case runs for both types.
// Each case starts its own server on a store that keytool and openssl made
// (the initial leaf under "tomcat", a key pair "other", a trusted
// certificate).
func TestIntegrationJavaKeystore(t *testing.T) {
	for _, typ := range []string{javakeystore.TypeJKS, javakeystore.TypePKCS12} {
		t.Run(typ, func(t *testing.T) { testJavaKeystore(t, typ) })
	}
}

// noPasswordIn checks the workflow histories of ids (and their host runs)
// decoded through the codec: each names keystore_password_file (so the
// check reads payloads in clear) and none holds a password's bytes.
func noPasswordIn(t *testing.T, j *testsuite.JavaKeystore, extra []string, ids ...string) {
	t.Helper()
	store, key, other := testsuite.KeystorePasswords(j.Type)
	pws := append([]string{store, key, other}, extra...)
	url := codecServer(t)
	for _, wf := range ids {
		for _, id := range []string{wf, wf + contract.HostRunSuffix} {
			raw, err := temporalCLI(t, "workflow", "show", "--workflow-id", id, "--output", "json", "--codec-endpoint", url)
			if err != nil {
				if id != wf {
					continue // this deploy ran no host run
				}
				t.Fatal(err)
			}
			decoded := false
			eachPayloadData(raw, func(b []byte) { decoded = decoded || strings.Contains(string(b), j.StorePassFile) })
			if !decoded {
				t.Fatalf("%s: no payload of the decoded history names keystore_password_file: not a history this check can read", id)
			}
			for _, pw := range pws {
				found := strings.Contains(string(raw), pw)
				eachPayloadData(raw, func(b []byte) { found = found || strings.Contains(string(b), pw) })
				if found {
					t.Errorf("%s: the history holds the password %q", id, pw)
				}
			}
		}
	}
}

func testJavaKeystore(t *testing.T, typ string) {
	id := func(name string) string { return strings.ToLower(typ) + "-" + name }
	start := func(t *testing.T) (*testsuite.JavaKeystore, testsuite.Set) {
		t.Helper()
		initial := issue(t)
		dir := t.TempDir()
		_ = os.Chmod(dir, 0o711)
		j, err := testsuite.StartJavaKeystore(dir, typ, initial)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(j.Stop)
		return j, initial
	}
	served := func(t *testing.T, j *testsuite.JavaKeystore, leaf string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := j.WaitServing(ctx, leaf); err != nil {
			t.Fatalf("java server: %v\n%s", err, j.Logs())
		}
	}
	kept := func(t *testing.T, j *testsuite.JavaKeystore) {
		t.Helper()
		if err := j.Kept(); err != nil {
			t.Error(err)
		}
	}

	t.Run("first deploy, then the same again is skipped", func(t *testing.T) {
		j, _ := start(t)
		tg := j.Target(id("first"), testHost)
		fresh := issue(t)
		r := deploy(t, tg, fresh, "--output", "json")
		if res := r.result(t); r.code != 0 || res.Outcome != contract.Deployed {
			t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
		} else if d := stepDetails(res)["validate"]; !strings.Contains(d, "keytool -list") {
			t.Errorf("validate %q: want keytool's check", d)
		}
		served(t, j, fresh.LeafSHA256)
		kept(t, j)
		wantMode(t, j.Keystore, 0o600, 0)
		wantNoLeftovers(t, filepath.Dir(j.Keystore), 1)

		first := r.workflowID()
		before := snapshot(t, j.Keystore)
		r = deploy(t, tg, fresh, "--output", "json")
		if res := r.result(t); r.code != 0 || res.Outcome != contract.SkippedIdempotent {
			t.Fatalf("identical deploy: exit %d outcome %s", r.code, res.Outcome)
		}
		wantUnchanged(t, before)
		served(t, j, fresh.LeafSHA256)

		// The passwords stay on the host's worker: no payload of either
		// deploy's histories holds them, even decoded through the codec.
		noPasswordIn(t, j, nil, first, r.workflowID())

		// A renewal replaces the alias again, the others still kept.
		next := issue(t)
		if r := deploy(t, tg, next); r.code != 0 {
			t.Fatalf("renewal: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		served(t, j, next.LeafSHA256)
		kept(t, j)
	})

	t.Run("dry run: keytool checks the staged store, nothing live changes", func(t *testing.T) {
		j, initial := start(t)
		before := snapshot(t, j.Keystore)
		r := deploy(t, j.Target(id("dry"), testHost), issue(t), "--dry-run", "--output", "json")
		res := r.result(t)
		if r.code != 0 || res.Outcome != "DryRunPassed" {
			t.Fatalf("exit %d outcome %s", r.code, res.Outcome)
		}
		if d := stepDetails(res)["validate"]; !strings.Contains(d, "material ok") || !strings.Contains(d, "keytool -list") {
			t.Errorf("validate %q: want the material read back from the staged store and keytool's check", d)
		}
		wantUnchanged(t, before)
		wantNoLeftovers(t, filepath.Dir(j.Keystore), 0)
		served(t, j, initial.LeafSHA256)
	})

	t.Run("password file a symbolic link: refused, nothing written", func(t *testing.T) {
		j, initial := start(t)
		real := j.StorePassFile + ".real"
		if err := os.Rename(j.StorePassFile, real); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, j.StorePassFile); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, j.Keystore)
		r := deploy(t, j.Target(id("pwlink"), testHost), issue(t))
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "target_config.keystore_password_file") || !strings.Contains(r.stdout+r.stderr, "symbolic link") {
			t.Fatalf("exit %d: want a refusal naming keystore_password_file\n%s%s", r.code, r.stdout, r.stderr)
		}
		wantUnchanged(t, before)
		served(t, j, initial.LeafSHA256)
	})

	t.Run("wrong store password: refused naming keystore_password_file, nothing written", func(t *testing.T) {
		j, initial := start(t)
		if err := os.WriteFile(j.StorePassFile, []byte("not-the-password\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, j.Keystore)
		r := deploy(t, j.Target(id("badpw"), testHost), issue(t))
		if r.code != 2 || r.lastLine() != "outcome: InvalidInput" || !strings.Contains(r.stdout+r.stderr, "target_config.keystore_password_file") || !strings.Contains(r.stdout+r.stderr, "does not open") {
			t.Fatalf("exit %d: want an error naming keystore_password_file\n%s%s", r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "store-secret") || strings.Contains(r.stdout+r.stderr, "not-the-password") {
			t.Fatal("a password is in certctl's output")
		}
		if strings.Contains(j.Logs(), "not-the-password") {
			t.Fatal("a password is in the server's log")
		}
		noPasswordIn(t, j, []string{"not-the-password"}, r.workflowID())
		wantUnchanged(t, before)
		wantNoLeftovers(t, filepath.Dir(j.Keystore), 0)
		served(t, j, initial.LeafSHA256)
	})

	t.Run("keytool check fails: the live store is untouched", func(t *testing.T) {
		j, initial := start(t)
		tg := j.Target(id("badcheck"), testHost)
		tg.Config.ValidateCommand = target.Command{"keytool", "-list", "-keystore", j.Keystore, "-storetype", j.Type,
			"-storepass:file", j.StorePassFile, "-alias", "no-such-alias"}
		before := snapshot(t, j.Keystore)
		r := deploy(t, tg, issue(t))
		if r.code != 1 || r.lastLine() != "outcome: ValidateFailed" {
			t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
		}
		if !strings.Contains(r.stdout, "no-such-alias") {
			t.Errorf("the error does not carry keytool's message")
		}
		wantUnchanged(t, before)
		served(t, j, initial.LeafSHA256)
		kept(t, j)
	})

	t.Run("verify fails: the store is rolled back and the old leaf served", func(t *testing.T) {
		j, initial := start(t)
		tg := j.Target(id("noreload"), testHost)
		tg.Config.ReloadCommand = target.Command{"true"} // the server never re-reads the store
		tg.Config.PostDeployVerifyAttempts = 2
		before := snapshot(t, j.Keystore)
		r := deploy(t, tg, issue(t))
		if r.code != 1 || r.lastLine() != "outcome: VerifyFailed" {
			t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
		}
		wantUnchanged(t, before)
		served(t, j, initial.LeafSHA256)
		kept(t, j)
		noPasswordIn(t, j, nil, r.workflowID())
	})

	// The conformance suite's rollback cases (testsuite/conformance_test.go:
	// ReloadFailsRestoresOldLeaf, VerifySeesAnotherLeafRollsBack), here
	// with a JVM that really re-reads the store on the rollback's reload.
	t.Run("reload fails: the old store is restored and re-read", func(t *testing.T) {
		j, initial := start(t)
		tg := j.Target(id("reloadfail"), testHost)
		marker := filepath.Join(t.TempDir(), "failed-once")
		tg.Config.ReloadCommand = script(t, fmt.Sprintf(
			"if [ ! -e %[1]s ]; then touch %[1]s; echo 'reload refused (test)' >&2; exit 1; fi\nexec %[2]s\n", marker, strings.Join(tg.Config.ReloadCommand, " ")))
		before := snapshot(t, j.Keystore)
		r := deploy(t, tg, issue(t))
		if r.code != 1 || r.lastLine() != "outcome: ReloadFailed" {
			t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
		}
		for _, step := range []string{"rollback ", "rollback-reload ", "rollback-verify "} {
			if !strings.Contains(r.stdout, "  "+step) {
				t.Errorf("step %s not run", step)
			}
		}
		wantUnchanged(t, before)
		served(t, j, initial.LeafSHA256)
		kept(t, j)
	})

	t.Run("verify sees another leaf: the server re-read the new store, the rollback restores and re-reads the old", func(t *testing.T) {
		j, initial := start(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		addr, err := testsuite.FakeServer(ctx, issue(t), j.Protocol())
		if err != nil {
			t.Fatal(err)
		}
		tg := j.Target(id("otherleaf"), testHost)
		tg.Config.PostDeployVerify.Endpoint = addr
		tg.Config.PostDeployVerifyAttempts = 2
		before := snapshot(t, j.Keystore)
		fresh := issue(t)
		r := deploy(t, tg, fresh)
		if r.code != 1 || r.lastLine() != "outcome: VerifyFailed" {
			t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
		}
		b, err := material.Parse(fresh.Material)
		if err != nil {
			t.Fatal(err)
		}
		if serial := b.Leaf.SerialNumber.Text(16); !strings.Contains(j.Logs(), "serial "+serial+"\n") {
			t.Errorf("the JVM never loaded the new store (its log lacks serial %s):\n%s", serial, j.Logs())
		}
		wantUnchanged(t, before)
		served(t, j, initial.LeafSHA256)
		kept(t, j)
		noPasswordIn(t, j, nil, r.workflowID())
	})
}

package testsuite

import (
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certctl/certctl/connectors/javakeystore"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// JavaKeystore is a real Java TLS server (testsuite/java/KeystoreServer.java,
// compiled by javac from openjdk-17-jdk-headless) serving the key and chain
// under Alias of a JKS or PKCS12 keystore, as a Java application server
// does; SIGHUP makes it re-read the keystore. The store also holds two
// entries certctl must keep: "other", a key pair keytool generated (JKS:
// under its own key password; PKCS12: keytool ignores -keypass, so under
// the store's), and "trusted", a trusted certificate.
type JavaKeystore struct {
	server
	Keystore, StorePassFile, KeyPassFile, OtherPassFile, Alias, Type string
}

// KeystorePasswords are the passwords StartJavaKeystore writes into the
// password files of a store of type typ (store, key, other): the bytes no
// workflow history may hold. keytool writes a PKCS12 store's keys under
// the store's password whatever -keypass says.
func KeystorePasswords(typ string) (store, key, other string) {
	if typ == javakeystore.TypePKCS12 {
		return "store-secret", "store-secret", "store-secret"
	}
	return "store-secret", "key-secret", "other-secret"
}

// The other entries StartJavaKeystore puts in the store beside Alias.
const (
	KeystoreOtherAlias   = "other"
	KeystoreTrustedAlias = "trusted"
)

var (
	javaOnce  sync.Once
	javaClass string
	javaErr   error
)

// javaServerClasses compiles KeystoreServer.java once per test process.
func javaServerClasses() (string, error) {
	javaOnce.Do(func() {
		src, err := RepoFile("testsuite/java/KeystoreServer.java")
		if err != nil {
			javaErr = err
			return
		}
		if javaClass, javaErr = os.MkdirTemp("", "certctl-java-"); javaErr != nil {
			return
		}
		if _, err := exec.LookPath("javac"); err != nil {
			javaErr = fmt.Errorf("javac not found: install it with `apt-get install -y openjdk-17-jdk-headless` (make apt-deps does)")
			return
		}
		if out, err := exec.Command("javac", "-nowarn", "-XDignore.symbol.file", "-d", javaClass, src).CombinedOutput(); err != nil {
			javaErr = fmt.Errorf("javac %s: %v\n%s", src, err, out)
		}
	})
	return javaClass, javaErr
}

// Keytool runs the real keytool with args (passwords only from files) and
// returns its output.
func Keytool(args ...string) (string, error) {
	out, err := exec.Command("keytool", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("keytool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// StartJavaKeystore builds a store of type typ (JKS or PKCS12) under dir
// with keytool and openssl alone (initial under alias "tomcat", imported
// from an `openssl pkcs12 -export` file, plus the other entries), starts
// the Java server on a free loopback port and waits until it serves
// initial.
func StartJavaKeystore(dir, typ string, initial Set) (*JavaKeystore, error) {
	classes, err := javaServerClasses()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	ext := map[string]string{javakeystore.TypeJKS: "jks", javakeystore.TypePKCS12: "p12"}[typ]
	if ext == "" {
		return nil, fmt.Errorf("keystore type %q: want JKS or PKCS12", typ)
	}
	j := &JavaKeystore{server: newServer("javakeystore", dir, ProtoTLS, port),
		Keystore: filepath.Join(dir, "server."+ext), StorePassFile: filepath.Join(dir, "store.pw"),
		KeyPassFile: filepath.Join(dir, "key.pw"), OtherPassFile: filepath.Join(dir, "other.pw"), Alias: "tomcat", Type: typ}
	otherPW, p12PW := j.OtherPassFile, filepath.Join(dir, "p12.pw")
	storeSecret, keySecret, otherSecret := KeystorePasswords(typ)
	if err := writeFiles(map[string]string{j.StorePassFile: storeSecret + "\n", j.KeyPassFile: keySecret + "\n",
		otherPW: otherSecret + "\n", p12PW: "p12-secret\n"}, j.StorePassFile, j.KeyPassFile, otherPW, p12PW); err != nil {
		return nil, err
	}
	cert, chain, key, err := initial.Write(dir)
	if err != nil {
		return nil, err
	}
	p12 := filepath.Join(dir, "initial.p12")
	if out, err := exec.Command("openssl", "pkcs12", "-export", "-in", cert, "-certfile", chain, "-inkey", key,
		"-name", j.Alias, "-passout", "file:"+p12PW, "-out", p12).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("openssl pkcs12 -export: %v\n%s", err, out)
	}
	store := []string{"-keystore", j.Keystore, "-storetype", j.Type, "-storepass:file", j.StorePassFile}
	for _, args := range [][]string{
		{"-importkeystore", "-noprompt", "-srckeystore", p12, "-srcstoretype", "PKCS12", "-srcstorepass:file", p12PW, "-srcalias", j.Alias,
			"-destkeystore", j.Keystore, "-deststoretype", j.Type, "-deststorepass:file", j.StorePassFile, "-destalias", j.Alias, "-destkeypass:file", j.KeyPassFile},
		append([]string{"-genkeypair", "-alias", KeystoreOtherAlias, "-keyalg", "EC", "-groupname", "secp256r1", "-dname", "CN=other", "-keypass:file", otherPW}, store...),
		append([]string{"-importcert", "-noprompt", "-alias", KeystoreTrustedAlias, "-file", chain}, store...),
	} {
		if _, err := Keytool(args...); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{cert, chain, key, p12, p12PW} {
		_ = os.Remove(f)
	}
	if err := os.Chmod(j.Keystore, 0o600); err != nil {
		return nil, err
	}
	// The JVM binds the port a while after FreePort chose it; another
	// process on the machine may take it meanwhile: then a new port.
	for attempt := 1; ; attempt++ {
		if err := j.start(nil, "java", "-cp", classes, "KeystoreServer", strconv.Itoa(port), j.Keystore, j.Type, j.Alias, j.StorePassFile, j.KeyPassFile); err != nil {
			return nil, err
		}
		err := j.waitFirst(initial.LeafSHA256)
		if err == nil {
			return j, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "java.net.BindException") {
			return nil, err
		}
		if port, err = FreePort(); err != nil {
			return nil, err
		}
		j.server = newServer("javakeystore", dir, ProtoTLS, port)
	}
}

// Config is the connector's own fields for this server's store.
func (j *JavaKeystore) Config() *javakeystore.Config {
	return &javakeystore.Config{KeystorePath: j.Keystore, KeystoreType: j.Type, Alias: j.Alias,
		KeystorePasswordFile: j.StorePassFile, KeyPasswordFile: j.KeyPassFile}
}

// Target is a javakeystore target for this server's store: reload by
// SIGHUP, verify by a handshake with the server.
func (j *JavaKeystore) Target(id, host string) target.Target {
	return target.Target{
		TargetID: id, TargetType: javakeystore.Name, Host: host,
		Config: target.Config{
			Own:                      j.Config(),
			ReloadCommand:            target.Command{"kill", "-HUP", strconv.Itoa(j.proc.Pid())},
			PostDeployVerify:         target.Verify{Endpoint: j.endpoint, Timeout: target.Duration(5 * time.Second)},
			PostDeployVerifyAttempts: 5,
		},
	}
}

// List is `keytool -list` of the live store, with extra arguments (-v).
func (j *JavaKeystore) List(extra ...string) (string, error) {
	return Keytool(append(javakeystore.ListCommand(*j.Config())[1:], extra...)...)
}

// LiveFiles is the keystore: the one file a deploy writes.
func (j *JavaKeystore) LiveFiles() []string { return []string{j.Keystore} }

// Layout is nil: a keystore is not PEM and its bytes depend on the store it
// replaced (salts, the other entries); Holds reads it back with keytool
// instead.
func (j *JavaKeystore) Layout(Set) map[string]string { return nil }

// BrokenCheck is keytool -list of the store asking for an alias it lacks:
// it fails whatever the store holds.
func (j *JavaKeystore) BrokenCheck() (target.Command, error) {
	return append(javakeystore.ListCommand(*j.Config()), "-alias", "no-such-alias"), nil
}

// ReloadScript sends the JVM SIGHUP: it re-reads the store.
func (j *JavaKeystore) ReloadScript() string { return "kill -HUP " + strconv.Itoa(j.proc.Pid()) }

// Holds checks with keytool alone that the live store is of its type and
// holds s's leaf and intermediate under Alias, and that the other entries
// are kept (Kept).
func (j *JavaKeystore) Holds(s Set) error {
	list, err := j.List("-v", "-alias", j.Alias)
	if err != nil {
		return err
	}
	if !strings.Contains(list, "Entry type: PrivateKeyEntry") || !strings.Contains(list, "Certificate chain length: 2\n") {
		return fmt.Errorf("keytool -list -alias %s: not a key entry with the leaf and its intermediate:\n%s", j.Alias, list)
	}
	pemOut, err := Keytool("-exportcert", "-rfc", "-alias", j.Alias, "-keystore", j.Keystore, "-storetype", j.Type, "-storepass:file", j.StorePassFile)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode([]byte(pemOut))
	if blk == nil {
		return fmt.Errorf("keytool -exportcert -alias %s printed no certificate:\n%s", j.Alias, pemOut)
	}
	if got := material.Fingerprint(blk.Bytes); got != s.LeafSHA256 {
		return fmt.Errorf("%s holds leaf %s under %s, want %s", j.Keystore, got, j.Alias, s.LeafSHA256)
	}
	return j.Kept()
}

// Kept checks with keytool alone that the store still holds the entries
// StartJavaKeystore put beside Alias, of its type, the other key still
// opening with its own password.
func (j *JavaKeystore) Kept() error {
	list, err := j.List("-v")
	if err != nil {
		return err
	}
	for _, want := range []string{"contains 3 entries", "Alias name: " + j.Alias + "\n", "Alias name: " + KeystoreOtherAlias + "\n", "Alias name: " + KeystoreTrustedAlias + "\n", "Entry type: trustedCertEntry"} {
		if !strings.Contains(list, want) {
			return fmt.Errorf("keytool -list lacks %q:\n%s", want, list)
		}
	}
	if !strings.Contains(list, "Keystore type: "+j.Type) && !strings.Contains(list, "Keystore type: "+strings.ToLower(j.Type)) {
		return fmt.Errorf("keytool -list: not a %s store:\n%s", j.Type, list)
	}
	if _, err := Keytool("-certreq", "-alias", KeystoreOtherAlias, "-keystore", j.Keystore, "-storetype", j.Type,
		"-storepass:file", j.StorePassFile, "-keypass:file", j.OtherPassFile); err != nil {
		return fmt.Errorf("the other key no longer opens with its own password: %v", err)
	}
	return nil
}

var _ RealServer = (*JavaKeystore)(nil)

package sshfs

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/certctl/certctl/target"
)

// The remote shell must see exactly the argv certctl was given, whatever it
// holds: quotes, $(…), globs, semicolons, spaces, an empty argument.
func TestQuoteIsWhatShSees(t *testing.T) {
	argv := []string{"printf", "%s\\n", "it's", "$(touch /tmp/certctl-pwned)", "*", "a; b", "  spaced  ", "", "'", `\"`}
	out, err := exec.Command("sh", "-c", Join(argv)).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(argv[2:], "\n") + "\n"
	if string(out) != want {
		t.Errorf("sh saw %q, want %q", out, want)
	}
	if _, err := os.Stat("/tmp/certctl-pwned"); err == nil {
		t.Error("a quoted $(…) ran")
	}
}

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Host keys: the known one passes; another key for the host (changed) and a
// host known_hosts does not list (unknown) are HostKeyErrors saying which;
// a pinned key other than the presented one is refused too.
func TestHostKeyCheck(t *testing.T) {
	good, other := newKey(t), newKey(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := "[127.0.0.1]:2222 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(good))) + "\n"
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}
	cb, algos, err := hostKeyCheck(&target.SSH{Address: "127.0.0.1:2222", KnownHostsPath: kh})
	if err != nil {
		t.Fatal(err)
	}
	if len(algos) != 1 || algos[0] != ssh.KeyAlgoED25519 {
		t.Errorf("asks for host key algorithms %v, want the known key's", algos)
	}
	if err := cb("127.0.0.1:2222", addr, good); err != nil {
		t.Errorf("the known key: %v", err)
	}
	var he *HostKeyError
	if err := cb("127.0.0.1:2222", addr, other); !errors.As(err, &he) || !strings.Contains(err.Error(), "changed") {
		t.Errorf("a changed key: %v", err)
	}
	cb2, _, _ := hostKeyCheck(&target.SSH{Address: "127.0.0.1:2223", KnownHostsPath: kh})
	other2 := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2223}
	if err := cb2("127.0.0.1:2223", other2, good); !errors.As(err, &he) || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("an unknown host: %v", err)
	}
	pin, _, err := hostKeyCheck(&target.SSH{Address: "127.0.0.1:2222", HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(good)))})
	if err != nil {
		t.Fatal(err)
	}
	if err := pin("127.0.0.1:2222", addr, good); err != nil {
		t.Errorf("the pinned key: %v", err)
	}
	if err := pin("127.0.0.1:2222", addr, other); !errors.As(err, &he) {
		t.Errorf("another key than the pinned one: %v", err)
	}
}

func TestRingKeepsTheTail(t *testing.T) {
	r := &ring{max: 4}
	_, _ = r.Write([]byte("abc"))
	_, _ = r.Write([]byte("defg"))
	if got := r.String(); got != "…defg" {
		t.Errorf("ring %q", got)
	}
}

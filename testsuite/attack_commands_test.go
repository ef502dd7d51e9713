package testsuite_test

// Attacks through the commands a target runs (issue 10, "Commands without
// bounds"), against a real nginx, through the certctl binary and the real
// workers: a reload that never ends, one that prints a gigabyte, one that
// prints the private key in other encodings than PEM, and a reload binary
// that does not exist.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// hostWorkerPID finds the shared host worker ("certctl-worker --host itest").
func hostWorkerPID(t *testing.T) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 3 && args[0] == env.worker && args[1] == "--host" && args[2] == testHost {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	t.Fatalf("no host worker %s --host %s running", env.worker, testHost)
	return 0
}

// statusKB reads a "VmHWM:   1234 kB" line of /proc/PID/status.
func statusKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("%s: %q", field, l)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// bootTicks is a process's start time (clock ticks since boot), 0 if gone.
func bootTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 20 || f[0] == "Z" {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// newestTicks is the start time of the newest process now: processes that
// start later have a start time above it.
func newestTicks() uint64 {
	var top uint64
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		top = max(top, bootTicks(pid))
	}
	return top
}

// sleepsSince lists live "sleep infinity" processes started after ticks.
func sleepsSince(ticks uint64) []int {
	var out []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || string(b) != "sleep\x00infinity\x00" {
			continue
		}
		if st := bootTicks(pid); st > ticks {
			out = append(out, pid)
		}
	}
	return out
}

// A reload that never returns is killed at command_timeout, process group
// and all, in the deploy and again in the rollback; the deploy ends in
// bounded time and no process of it survives.
func TestIntegrationReloadHangIsBounded(t *testing.T) {
	n, initial := startNginx(t)
	tg := n.Target("cmd-hang", testHost)
	// The reload and a child it forked both sleep forever.
	tg.Config.ReloadCommand = script(t, "sleep infinity &\nexec sleep infinity\n")
	tg.Config.CommandTimeout = (*target.Duration)(ptrTo(2 * time.Second))
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	since := newestTicks()
	start := time.Now()
	r := deploy(t, tg, issue(t))
	took := time.Since(start)
	if last := r.lastLine(); last != "outcome: RollbackFailed" && last != "outcome: ReloadFailed" {
		t.Fatalf("exit %d, last line %q", r.code, last)
	}
	if !strings.Contains(r.stdout+r.stderr, "command_timeout (2s)") {
		t.Errorf("the error does not say the reload hit command_timeout:\n%s%s", r.stdout, r.stderr)
	}
	if took > 45*time.Second {
		t.Errorf("the deploy took %s with a 2s command_timeout", took)
	}
	// The rollback restored the files; nginx never reloaded.
	wantUnchanged(t, before)
	wantServed(t, n, initial.LeafSHA256)
	testsuite.Poll(10*time.Second, func() (bool, string) { return len(sleepsSince(since)) == 0, "sleep processes left" })
	if left := sleepsSince(since); len(left) > 0 {
		t.Errorf("sleep processes of the reload survived: %v", left)
		for _, pid := range left {
			_ = (&os.Process{Pid: pid}).Kill()
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// A reload that prints 1 GiB costs the host worker its bounded output tail:
// its peak resident memory stays far below the gigabyte.
func TestIntegrationReloadFloodKeepsWorkerSmall(t *testing.T) {
	n, _ := startNginx(t)
	pid := hostWorkerPID(t)
	tg := n.Target("cmd-flood", testHost)
	tg.Config.ReloadCommand = script(t, "head -c 1073741824 /dev/zero\nexec "+strings.Join(n.ReloadCommand(), " ")+"\n")
	fresh := issue(t)
	r := deploy(t, tg, fresh)
	if r.code != 0 || r.lastLine() != "outcome: Deployed" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	wantServed(t, n, fresh.LeafSHA256)
	if hwm := statusKB(t, pid, "VmHWM"); hwm > 300<<10 {
		t.Errorf("host worker peak RSS %d MiB after a reload printed 1 GiB", hwm>>10)
	}
	if len(r.stdout) > 64<<10 {
		t.Errorf("certctl printed %d bytes", len(r.stdout))
	}
}

// keyEncodings are the ways of spelling a key a command can print: its PEM
// body lines, base64 of its DER, and the hex lines of its private scalar as
// `openssl pkey -text` prints them (with and without colons).
func keyEncodings(t *testing.T, keyPEM string) []string {
	t.Helper()
	blk, _ := pem.Decode([]byte(keyPEM))
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(keyPEM), "\n") {
		if !strings.HasPrefix(l, "-----") && len(l) >= 40 {
			out = append(out, l)
		}
	}
	b64 := base64.StdEncoding.EncodeToString(blk.Bytes)
	out = append(out, b64[40:80], b64[len(b64)-44:len(b64)-4])
	f := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(f, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("openssl", "pkey", "-text", "-noout", "-in", f).Output()
	if err != nil {
		t.Fatalf("openssl: %v", err)
	}
	priv := ""
	in := false
	for _, l := range strings.Split(string(text), "\n") {
		switch {
		case strings.HasPrefix(l, "priv:"), strings.HasPrefix(l, "privateExponent:"):
			in = true
		case !strings.HasPrefix(l, " "):
			in = false
		case in:
			if l := strings.TrimSpace(l); len(l) >= 20 { // a short last line is a byte or two: no key
				out = append(out, l)
			}
			priv += strings.ReplaceAll(strings.TrimSpace(l), ":", "")
		}
	}
	if len(priv) < 40 {
		t.Fatalf("no private scalar in openssl's text:\n%s", text)
	}
	out = append(out, priv[2:42], strings.ToUpper(priv[2:42]), hex.EncodeToString(blk.Bytes)[80:120])
	return out
}

func holdsAny(b []byte, needles []string) string {
	for _, n := range needles {
		if bytes.Contains(b, []byte(n)) {
			return n
		}
	}
	return ""
}

// A reload that prints the key's base64 body and openssl's hex of it fails
// the deploy, and neither the new key nor the old one (printed by the
// rollback's reload) reaches the operator's output, a worker's log or the
// workflow history.
func TestIntegrationReloadPrintingKeyIsScrubbed(t *testing.T) {
	n, initial := startNginx(t)
	url := codecServer(t)
	tg := n.Target("cmd-leak", testHost)
	tg.Config.ReloadCommand = append(script(t,
		"grep -v -- ----- \"$1\"\nopenssl pkey -text -noout -in \"$1\"\nopenssl pkey -in \"$1\" -outform DER | base64 -w0\necho\nexit 1\n"), n.KeyPath)
	fresh := issue(t)
	r := deploy(t, tg, fresh)
	if last := r.lastLine(); last != "outcome: RollbackFailed" {
		t.Fatalf("exit %d, last line %q", r.code, last)
	}
	if !strings.Contains(r.stdout+r.stderr, "[key material redacted]") {
		t.Errorf("the output does not show the redaction (did the reload print?):\n%s%s", r.stdout, r.stderr)
	}
	newKey, oldKey := keyEncodings(t, fresh.KeyPEM), keyEncodings(t, initial.KeyPEM)
	all := append(append([]string{}, newKey...), oldKey...)
	if s := holdsAny([]byte(r.stdout+r.stderr), all); s != "" {
		t.Errorf("certctl's output holds the key (%q)", s)
	}
	for _, f := range []string{"worker.log", "worker--hostitest.log"} {
		b, err := os.ReadFile(filepath.Join(env.workDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if s := holdsAny(b, all); s != "" {
			t.Errorf("%s holds the key (%q)", f, s)
		}
	}
	id := r.workflowID()
	raw, err := temporalCLI(t, "workflow", "show", "--workflow-id", id, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	if s := holdsAny(raw, all); s != "" {
		t.Errorf("the exported history holds the key (%q)", s)
	}
	if found := secretsIn(raw, fresh.KeyPEM); len(found) > 0 {
		t.Errorf("the exported history holds the new key: %v", found)
	}
	decoded, err := temporalCLI(t, "workflow", "show", "--workflow-id", id, "--output", "json", "--codec-endpoint", url)
	if err != nil {
		t.Fatal(err)
	}
	// Decoded (every payload of the history through the codec, failures
	// included), the input holds the new key's PEM: that is the request. No
	// other spelling of it, and nothing of the old key, may be there.
	decoded = append(decoded, decodedPayloads(t, id)...)
	if !bytes.Contains(decoded, []byte("[key material redacted]")) {
		t.Errorf("the decoded history does not show the redacted output")
	}
	for _, enc := range all {
		if strings.Contains(fresh.KeyPEM, enc) {
			continue
		}
		if bytes.Contains(decoded, []byte(enc)) {
			t.Errorf("the decoded history holds key material (%q)", enc)
		}
	}
}

// decodedPayloads is every payload of a workflow's history, decoded through
// the codec (inputs, results, failures' encoded messages and details).
func decodedPayloads(t *testing.T, id string) []byte {
	t.Helper()
	var out bytes.Buffer
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			dec, err := env.codec.Decode([]*commonpb.Payload{p})
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			out.Write(dec[0].Data)
			out.WriteByte('\n')
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					walk(mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				walk(v.Message())
			}
			return true
		})
	}
	it := env.client.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		walk(ev.ProtoReflect())
	}
	return out.Bytes()
}

// A reload binary that does not exist is found before anything is staged:
// ValidateFailed naming the field and the binary, live files unchanged, no
// temp or backup left.
func TestIntegrationMissingReloadBinaryRefusedBeforeStage(t *testing.T) {
	n, initial := startNginx(t)
	tg := n.Target("cmd-missing", testHost)
	tg.Config.ReloadCommand = target.Command{"/usr/sbin/certctl-no-such-reload", "-s", "reload"}
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	r := deploy(t, tg, issue(t))
	if r.lastLine() != "outcome: ValidateFailed" {
		t.Fatalf("exit %d, last line %q", r.code, r.lastLine())
	}
	out := r.stdout + r.stderr
	if !strings.Contains(out, "target_config.reload_command") || !strings.Contains(out, "certctl-no-such-reload") {
		t.Errorf("the error does not name the field and the binary:\n%s", out)
	}
	for _, step := range []string{"stage ", "commit ", "rollback "} {
		if strings.Contains(r.stdout, step) {
			t.Errorf("step %s ran", step)
		}
	}
	wantUnchanged(t, before)
	wantNoLeftovers(t, n.CertDir, 0)
	wantServed(t, n, initial.LeafSHA256)
}

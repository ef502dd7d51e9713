package testsuite_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// keyForms are the spellings of a key's material an export must not hold:
// the PEM marker plainly and JSON-escaped, pieces of the base64 body, and
// the DER in hex.
func keyForms(keyPEM string) []string {
	blk, _ := pem.Decode([]byte(keyPEM))
	b64 := base64.StdEncoding.EncodeToString(blk.Bytes)
	hx := hex.EncodeToString(blk.Bytes)
	return []string{"PRIVATE KEY", `\u0050RIVATE`, `u0050RIVATE`, b64[:40], b64[len(b64)-40 : len(b64)-4], hx[20:60]}
}

// holdsKey reports which forms of the key b holds, as text or inside any
// base64 "data" of a payload.
func holdsKey(b []byte, keyPEM string) []string {
	var found []string
	look := func(where string, data []byte) {
		for _, n := range keyForms(keyPEM) {
			if bytes.Contains(data, []byte(n)) {
				found = append(found, where+" holds "+n[:8]+"…")
			}
		}
	}
	look("text", b)
	eachPayloadData(b, func(raw []byte) { look("payload data", raw) })
	return found
}

// exportEvents is a workflow's history as the temporal CLI exports it, one
// raw JSON event each.
func exportEvents(t *testing.T, id string) []json.RawMessage {
	t.Helper()
	raw, err := temporalCLI(t, "workflow", "show", "--workflow-id", id, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || len(h.Events) == 0 {
		t.Fatalf("history export of %s: %v\n%s", id, err, raw)
	}
	return h.Events
}

// A plain `temporal workflow start` (no codec) whose JSON spells the key's
// PEM type with a JSON escape was deployed, its key in the history in the
// clear. The workflow worker now decodes the input and refuses it: nothing
// is deployed, and no event past the start (which holds what the CLI sent)
// holds any form of the key.
func TestIntegrationAttackPlaintextEscapedKey(t *testing.T) {
	n, initial := startNginx(t)
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	fresh := issue(t)
	in, err := json.Marshal(workflows.DeployRequest{Target: n.Target("atk-escaped", testHost), Material: fresh.Material})
	if err != nil {
		t.Fatal(err)
	}
	escaped := bytes.ReplaceAll(in, []byte("PRIVATE KEY"), []byte(`\u0050RIVATE KEY`))
	if bytes.Contains(escaped, []byte("PRIVATE KEY")) {
		t.Fatal("setup: the input still spells the marker")
	}
	f := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(f, escaped, 0o600); err != nil {
		t.Fatal(err)
	}
	id := "deploy/atk-escaped/" + time.Now().UTC().Format("150405.000")
	if _, err := temporalCLI(t, "workflow", "start", "--type", "DeployWorkflow", "--task-queue", contract.TaskQueue,
		"--workflow-id", id, "--input-file", f); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.DeployResult
	err = env.client.GetWorkflow(ctx, id, "").Get(ctx, &res)
	if err == nil || res.Outcome == "Deployed" {
		t.Fatalf("the plaintext deploy ran: outcome %q, err %v", res.Outcome, err)
	}
	for _, w := range []string{"unencrypted payload that holds a private key", "--codec-endpoint", "certctl"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal %q does not say %q", err, w)
		}
	}
	wantUnchanged(t, before)
	wantServed(t, n, initial.LeafSHA256)
	events := exportEvents(t, id)
	if !bytes.Contains(events[0], []byte("workflowExecutionStartedEventAttributes")) {
		t.Fatalf("first event is not the start: %s", events[0][:100])
	}
	for i, ev := range events[1:] {
		if bytes.Contains(ev, []byte("activityTaskScheduledEventAttributes")) {
			t.Errorf("event %d schedules an activity: the refused input went on", i+2)
		}
		if found := holdsKey(ev, fresh.KeyPEM); len(found) > 0 {
			t.Errorf("event %d holds key material: %v", i+2, found)
		}
	}
	// The check can find the key: the start event holds what the CLI sent.
	if found := holdsKey(events[0], fresh.KeyPEM); len(found) == 0 {
		t.Fatal("the start event shows no key: the check above proves nothing")
	}
}

// Material and targets an attacker (or a careless operator) hands to
// `certctl deploy` are refused before anything starts: exit 2, the message
// naming the field, no workflow, nothing live changed.
func TestIntegrationAttackRefusedBeforeStart(t *testing.T) {
	n, initial := startNginx(t)
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	caLeaf, err := env.ca.IssueOdd(testsuite.OddLeaf{IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	weak, err := testsuite.WeakRSAKey(1024)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := env.ca.IssueOdd(testsuite.OddLeaf{Key: weak})
	if err != nil {
		t.Fatal(err)
	}
	mode := func(m target.Mode) *target.Mode { return &m }
	started := time.Now()
	var ids []string
	for _, c := range []struct {
		name, id string
		want     []string // in stderr
		edit     func(*target.Target, *testsuite.Set)
	}{
		{"CA:TRUE leaf", "atk-ca-leaf", []string{"--cert", "cert_pem", "CA:TRUE"}, func(_ *target.Target, s *testsuite.Set) { *s = caLeaf }},
		{"RSA-1024 key", "atk-rsa1024", []string{"--key", "key_pem", "1024 bits"}, func(_ *target.Target, s *testsuite.Set) { *s = rsa1024 }},
		{"cert_file_mode 0666", "atk-mode-cert", []string{"target_config.cert_file_mode", "0666"}, func(tg *target.Target, _ *testsuite.Set) { tg.Config.CertFileMode = mode(0o666) }},
		{"key_file_mode 0660", "atk-mode-key", []string{"target_config.key_file_mode", "0660"}, func(tg *target.Target, _ *testsuite.Set) { tg.Config.KeyFileMode = mode(0o660) }},
		{"setuid cert mode", "atk-mode-suid", []string{"target_config.cert_file_mode"}, func(tg *target.Target, _ *testsuite.Set) { tg.Config.CertFileMode = mode(0o4644) }},
		{"control character in target_id", "atk-ctl\x1b[2J", []string{"target_id", "U+001B"}, nil},
		{"newline in key_path", "atk-nl-path", []string{"target_config.key_path", "newline"}, func(tg *target.Target, _ *testsuite.Set) { tg.Config.KeyPath = n.CertDir + "/key.pem\n/var/tmp/x" }},
		{"line separator in server_name", "atk-sep-sni", []string{"target_config.post_deploy_verify.server_name", "U+2028"}, func(tg *target.Target, _ *testsuite.Set) { tg.Config.PostDeployVerify.ServerName = "localhost\u2028" }},
		{"escape in a reload word", "atk-esc-cmd", []string{"target_config.reload_command[1]", "ESC"}, func(tg *target.Target, _ *testsuite.Set) {
			tg.Config.ReloadCommand = target.Command{"nginx", "-s\x1b]0;x\a", "reload"}
		}},
		{"1 MB of junk before the key", "atk-junk-1mb", []string{"--key", "bytes, more than the 65536"}, func(_ *target.Target, s *testsuite.Set) {
			s.KeyPEM = strings.Repeat("junk junk\n", 100_000) + s.KeyPEM
		}},
	} {
		ids = append(ids, c.id)
		t.Run(c.name, func(t *testing.T) {
			tg, set := n.Target(c.id, testHost), issue(t)
			if c.edit != nil {
				c.edit(&tg, &set)
			}
			r := deploy(t, tg, set)
			if r.code != 2 || strings.Contains(r.stdout, "workflow:") {
				t.Fatalf("want exit 2 before any workflow; exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not say %q", r.stderr, w)
				}
			}
			if strings.ContainsAny(r.stderr, "\x1b\u2028") || strings.Contains(r.stderr, "PRIVATE KEY") {
				t.Errorf("the refusal carries what it refused: %q", r.stderr)
			}
			wantUnchanged(t, before)
		})
	}
	wantServed(t, n, initial.LeafSHA256)
	wantNoLeftovers(t, n.CertDir, 0)
	// None of them reached Temporal.
	resp, err := env.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Query: "WorkflowType = 'DeployWorkflow' AND StartTime >= '" + started.UTC().Format(time.RFC3339) + "'"})
	if err != nil {
		t.Fatal(err)
	}
	// Other tests run deploys in parallel: only this test's target IDs count.
	for _, e := range resp.GetExecutions() {
		for _, id := range ids {
			if strings.HasPrefix(e.GetExecution().GetWorkflowId(), "deploy/"+id+"/") {
				t.Errorf("workflow %q started", e.GetExecution().GetWorkflowId())
			}
		}
	}
}

// What servers accept is accepted, but only the re-encoded blocks are
// written: junk before the key, an EC PARAMETERS block, comments, CRLF and
// PEM headers never reach the live files.
func TestIntegrationAttackJunkNeverReachesLiveKey(t *testing.T) {
	n, _ := startNginx(t)
	set := issue(t)
	odd, canonicalKey, err := set.ECParamsKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	const marker = "ATTACKER-TEXT"
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	sent := set
	sent.KeyPEM = strings.Repeat(marker+" \x1b[31m junk\n", 2000) + crlf(odd) + "# " + marker + " trailing comment\n"
	sent.CertPEM = "subject=CN = localhost " + marker + "\n" + crlf(set.CertPEM) + marker + "\n"
	sent.ChainPEM = "# " + marker + "\n" + set.ChainPEM
	if len(sent.KeyPEM) < 40_000 {
		t.Fatalf("setup: only %d bytes of key text", len(sent.KeyPEM))
	}
	r := deploy(t, n.Target("atk-junk", testHost), sent)
	if r.code != 0 || r.lastLine() != "outcome: Deployed" {
		t.Fatalf("exit %d, %q\n%s", r.code, r.lastLine(), r.stderr)
	}
	wantServed(t, n, set.LeafSHA256)
	for _, w := range []struct{ path, want string }{
		{n.KeyPath, canonicalKey},
		{n.CertPath, set.CertPEM + set.ChainPEM}, // nginx: the chain after the leaf
		{n.ChainPath, set.ChainPEM},
	} {
		got, err := os.ReadFile(w.path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != w.want {
			t.Errorf("%s holds %d bytes, want only the canonical blocks (%d bytes):\n%q", w.path, len(got), len(w.want), tail(string(got), 300))
		}
	}

	// A request that bypasses certctl's starter (the temporal CLI, through
	// the codec) with 1 MB before the key is refused on the host: the
	// material's bound holds there too.
	before := snapshot(t, n.CertPath, n.ChainPath, n.KeyPath)
	big := issue(t)
	big.KeyPEM = strings.Repeat(marker+"\n", 80_000) + big.KeyPEM
	in, err := json.Marshal(workflows.DeployRequest{Target: n.Target("atk-junk-cli", testHost), Material: big.Material})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(f, in, 0o600); err != nil {
		t.Fatal(err)
	}
	id := "deploy/atk-junk-cli/" + time.Now().UTC().Format("150405.000")
	if _, err := temporalCLI(t, "workflow", "start", "--type", "DeployWorkflow", "--task-queue", contract.TaskQueue,
		"--workflow-id", id, "--input-file", f, "--codec-endpoint", codecServer(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.DeployResult
	var ae *temporal.ApplicationError
	if err := env.client.GetWorkflow(ctx, id, "").Get(ctx, &res); !errors.As(err, &ae) || ae.Details(&res) != nil {
		t.Fatalf("want a failed deploy with its result, got %v", err)
	}
	if res.Outcome != "InvalidInput" || !strings.Contains(res.Error, "key_pem") || !strings.Contains(res.Error, "bytes") {
		t.Fatalf("outcome %q, error %q; want InvalidInput naming key_pem and its size", res.Outcome, res.Error)
	}
	wantUnchanged(t, before)
	wantServed(t, n, set.LeafSHA256)
}

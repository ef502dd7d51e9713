package testsuite_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// The attack of issue 10: two targets with different target_ids name the
// same cert, chain and key files. Deploys to both, started at once, some of
// them failing at verify so they roll back, must never interleave: each
// deploy finds the files the one before it left, a rollback never restores
// its old files over another deploy's committed ones, and at the end the
// files and the served leaf are those of the last deploy that reported
// Deployed.
func TestIntegrationSharedFilesNeverInterleave(t *testing.T) {
	n, _ := startNginx(t)
	// A slow reload widens the window a second deploy could slip into.
	slow := filepath.Join(n.Dir, "slow-reload")
	body := "#!/bin/sh\nsleep 1\nexec " + strings.Join(n.ReloadCommand(), " ") + "\n"
	if err := os.WriteFile(slow, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	good := n.Target("shared-good", testHost)
	good.Config.ReloadCommand = target.Command{slow}
	// bad verifies against an endpoint that serves another leaf: every one
	// of its deploys commits, reloads, fails verify and rolls back.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wrong, err := testsuite.FakeServer(ctx, issue(t), "")
	if err != nil {
		t.Fatal(err)
	}
	bad := n.Target("shared-bad", testHost)
	bad.Config.ReloadCommand = target.Command{slow}
	bad.Config.PostDeployVerify.Endpoint = wrong
	bad.Config.PostDeployVerifyAttempts = 1

	const rounds = 4
	type job struct {
		tg   target.Target
		set  testsuite.Set
		want string
		run  deployRun
	}
	var jobs []*job
	for i := 0; i < rounds; i++ {
		jobs = append(jobs, &job{tg: good, set: issue(t), want: "Deployed"}, &job{tg: bad, set: issue(t), want: "VerifyFailed"})
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() { defer wg.Done(); j.run = deploy(t, j.tg, j.set, "--output", "json") }()
	}
	wg.Wait()

	type span struct {
		leaseSpan
		outcome string
		files   map[string][2]string // path -> found, planned
	}
	var spans []*span
	for _, j := range jobs {
		res := j.run.result(t)
		if res.Outcome != j.want {
			t.Fatalf("%s: %s (%s), want %s", j.tg.TargetID, res.Outcome, res.Error, j.want)
		}
		s := &span{leaseSpan: spanOf(t, j.run.workflowID(), res, res.LeafSHA256), outcome: res.Outcome, files: map[string][2]string{}}
		for _, f := range res.Files {
			s.files[f.Path] = [2]string{f.CurrentSHA256, f.SHA256}
		}
		if len(s.files) != 3 {
			t.Fatalf("%s planned %d files, want cert, chain and key", s.id, len(s.files))
		}
		// Both targets' deploys asked for the three files among their keys.
		for _, p := range []string{n.CertPath, n.ChainPath, n.KeyPath} {
			if !strings.Contains(s.keys+",", "file:"+p+",") {
				t.Fatalf("%s held keys %s: %s missing", s.id, s.keys, p)
			}
		}
		spans = append(spans, s)
	}
	// In the order the host's lease table granted them (tickets): never
	// interleaved, each found what the one before it left: the new files if
	// it deployed, the files it found if it rolled back.
	sort.Slice(spans, func(i, j int) bool { return spans[i].ticket < spans[j].ticket })
	var last *span
	for i, s := range spans {
		if i > 0 {
			prev := spans[i-1]
			for p, f := range s.files {
				left := prev.files[p][0]
				if prev.outcome == "Deployed" {
					left = prev.files[p][1]
				}
				if f[0] != left {
					t.Fatalf("%s (ticket %d) found %s = %s, but %s (ticket %d, %s) left %s", s.id, s.ticket, p, f[0], prev.id, prev.ticket, prev.outcome, left)
				}
			}
		}
		if s.outcome == "Deployed" {
			last = s
		}
	}
	for p, f := range last.files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f[1] {
			t.Fatalf("%s is not what %s, the last deploy that reported Deployed, wrote", p, last.id)
		}
	}
	wantServed(t, n, last.leaf)
	wantNoLeftovers(t, n.CertDir, -1)

	record(t, last.id, "deploy-host-shared-deployed")
	for _, s := range spans {
		if s.outcome == "VerifyFailed" {
			record(t, s.id, "deploy-host-shared-verify-failed")
			break
		}
	}
}

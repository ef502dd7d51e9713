package workflows

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	sdktest "go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/renewal"
	"github.com/certctl/certctl/target"
	certtest "github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/testsuite/histories"
)

// inspectEnv runs InspectWorkflow with the real InspectDeployed behind a
// host worker's policy that allows only dir.
func inspectEnv(t *testing.T, allow string) *sdktest.TestWorkflowEnvironment {
	t.Helper()
	var s sdktest.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{
		policy.Interceptor(&policy.Policy{File: "worker.yaml", AllowPaths: []string{allow}, AllowCommands: [][]string{{policy.Wildcard}}}),
	}})
	env.RegisterWorkflow(InspectWorkflow)
	env.RegisterActivity(renewal.New(filepath.Join(t.TempDir(), "audit.log")))
	return env
}

func inspectTarget(dir string) target.Target {
	return target.Target{TargetID: "web-1", TargetType: "nginx", Host: "web-1", Config: target.Config{
		CertPath: filepath.Join(dir, "cert.pem"), KeyPath: filepath.Join(dir, "key.pem"),
	}}
}

// It reads the leaf in the target's cert_path: its SHA-256 and not-after.
func TestInspectWorkflowReadsTheLeafOnDisk(t *testing.T) {
	ca, err := certtest.NewCA("inspect test")
	if err != nil {
		t.Fatal(err)
	}
	set, err := ca.Issue(certtest.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte(set.CertPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	env := inspectEnv(t, dir)
	env.ExecuteWorkflow(InspectWorkflow, inspectTarget(dir))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var d renewal.Deployed
	if err := env.GetWorkflowResult(&d); err != nil {
		t.Fatal(err)
	}
	if !d.Exists || d.LeafSHA256 != set.LeafSHA256 || d.Path != filepath.Join(dir, "cert.pem") || d.Problem != "" {
		t.Fatalf("inspected %+v, want %s in %s", d, set.LeafSHA256, dir)
	}
	if d.NotAfter.Before(time.Now()) {
		t.Fatalf("not after %s", d.NotAfter)
	}
}

// No file yet is a fact, not an error.
func TestInspectWorkflowNoCertificateYet(t *testing.T) {
	dir := t.TempDir()
	env := inspectEnv(t, dir)
	env.ExecuteWorkflow(InspectWorkflow, inspectTarget(dir))
	var d renewal.Deployed
	if err := env.GetWorkflowResult(&d); err != nil {
		t.Fatal(err)
	}
	if d.Exists || d.Problem != "no certificate deployed yet" {
		t.Fatalf("inspected %+v", d)
	}
}

// Whoever can start a workflow on the host's queue cannot read a file
// outside the host's policy through it: the read is refused, PolicyRefused
// naming the field, before it runs.
func TestInspectWorkflowRefusedOutsideThePolicy(t *testing.T) {
	env := inspectEnv(t, t.TempDir())
	env.ExecuteWorkflow(InspectWorkflow, inspectTarget("/etc/ssl/private"))
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "PolicyRefused") || !strings.Contains(err.Error(), "cert_path") {
		t.Fatalf("want PolicyRefused naming cert_path, got %v", err)
	}
}

// The recorded histories hold an InspectWorkflow (testsuite's status test
// records it), so TestReplayRecordedHistories replays one.
func TestReplayHistoriesCoverTheInspection(t *testing.T) {
	hs := histories.Load(t, "../testsuite/histories/inspect-read.json")
	if len(hs) != 1 {
		t.Fatal("no recorded history inspect-read.json (make record-histories)")
	}
	events := hs[0].History.GetEvents()
	if typ := events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName(); typ != contract.InspectWorkflow {
		t.Fatalf("inspect-read.json is a %s", typ)
	}
	markers := 0
	for _, ev := range events {
		if ev.GetMarkerRecordedEventAttributes() != nil {
			markers++
		}
	}
	if markers != 1 {
		t.Fatalf("inspect-read.json records %d local activities, want the one read", markers)
	}
}

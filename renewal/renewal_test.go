package renewal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.temporal.io/sdk/testsuite"

	"github.com/certctl/certctl/audit"
	_ "github.com/certctl/certctl/connectors/all"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/issuers/localca"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/target"
)

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

func activityEnv(a *Activities) *testsuite.TestActivityEnvironment {
	s := &testsuite.WorkflowTestSuite{}
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return env
}

// A retried Audit writes its line once and counts the closing decision once.
func TestAuditWritesOnceAndCountsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a := New(path)
	env := activityEnv(a)
	counter := metrics.ApprovalDecisionsTotal.WithLabelValues("approved", "p-audit-test")
	before := value(t, counter)
	ev := audit.Event{ID: "approval/r-9:run#2", Event: audit.Approved, State: "approved", ProfileID: "p-audit-test",
		RequestID: "r-9", Actor: "bob", PendingSeconds: 120, Via: "update"}
	for i, want := range []bool{true, false} {
		v, err := env.ExecuteActivity(a.Audit, ev)
		if err != nil {
			t.Fatal(err)
		}
		var res AuditResult
		if err := v.Get(&res); err != nil || res.Written != want {
			t.Fatalf("attempt %d: written %v, want %v (%v)", i, res.Written, want, err)
		}
	}
	if got := value(t, counter) - before; got != 1 {
		t.Fatalf("certctl_approval_decisions_total grew by %v, want 1", got)
	}
	pending := ev
	pending.ID, pending.State = "approval/r-9:run#1", "pending"
	if _, err := env.ExecuteActivity(a.Audit, pending); err != nil {
		t.Fatal(err)
	}
	if got := value(t, counter) - before; got != 1 {
		t.Fatal("an approval that leaves the request pending must not count as a decision")
	}
	lines, _ := audit.Read(path)
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
}

func TestIssueThroughLocalCA(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := localca.Create(caCert, caKey, "renewal test CA", 24*time.Hour*30); err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other.key")
	if err := localca.Create(otherCert, otherKey, "another CA", 24*time.Hour*30); err != nil {
		t.Fatal(err)
	}
	profiles := filepath.Join(dir, "profiles")
	installProfile := func(key string) {
		t.Helper()
		text := fmt.Sprintf("profile_id: p\nsubject: {common_name: localhost}\nsans: [localhost, 127.0.0.1]\nkey_type: ecdsa-p256\nvalidity: 24h\n"+
			"issuer: {type: localca, ca_cert: %s, ca_key: %s}\n"+
			"targets: [{target_id: w, target_type: nginx, host: h, target_config: {cert_path: /a/c.pem, key_path: /a/k.pem, post_deploy_verify: {enabled: false}}}]\n", caCert, key)
		if err := os.MkdirAll(profiles, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(profiles, "p.yaml"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	installProfile(caKey)
	a := New(filepath.Join(dir, "audit.jsonl"))
	a.ProfilesDir = profiles
	env := activityEnv(a)
	// The input names another CA and other names: the installed profile's
	// issuer and names are what is used.
	in := IssueInput{RequestID: "r-1", CertID: "shop", ProfileID: "p", Issuer: profile.Issuer{Type: profile.IssuerLocalCA, CACert: otherCert, CAKey: otherKey},
		Subject: profile.Subject{CommonName: "evil.example"}, SANs: []string{"evil.example"}, KeyType: profile.KeyECDSAP256,
		Validity: target.Duration(24 * time.Hour)}
	v, err := env.ExecuteActivity(a.Issue, in)
	if err != nil {
		t.Fatal(err)
	}
	var res IssueResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	b, err := material.Parse(res.Material)
	if err != nil || b.LeafSHA256() != res.LeafSHA256 || b.Check(time.Now(), "127.0.0.1") != nil {
		t.Fatalf("issued material: %v", err)
	}
	if res.Issuer != "CN=renewal test CA" || res.Serial == "" || b.Leaf.VerifyHostname("evil.example") == nil {
		t.Fatalf("result %+v: the input's issuer or names were used", res)
	}

	// A bad CA path is InvalidInput naming the field, never retried, and no
	// key text in the error.
	installProfile(filepath.Join(dir, "missing.key"))
	_, err = env.ExecuteActivity(a.Issue, in)
	if contract.Of(err) != contract.InvalidInput || !strings.Contains(err.Error(), "issuer.ca_key") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("got %v", err)
	}
	// A profile not installed: nothing issued.
	in.ProfileID = "p-none"
	if _, err = env.ExecuteActivity(a.Issue, in); contract.Of(err) != contract.InvalidInput {
		t.Fatalf("got %v", err)
	}
}

func TestInspectDeployed(t *testing.T) {
	dir := t.TempDir()
	a := New(filepath.Join(dir, "audit.jsonl"))
	env := activityEnv(a)
	tg := target.Target{TargetID: "web-1", TargetType: "nginx", Config: target.Config{CertPath: filepath.Join(dir, "cert.pem")}}
	inspect := func() Deployed {
		t.Helper()
		v, err := env.ExecuteActivity(a.InspectDeployed, tg)
		if err != nil {
			t.Fatal(err)
		}
		var d Deployed
		if err := v.Get(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := inspect(); d.Exists || d.Problem == "" {
		t.Fatalf("missing file: %+v", d)
	}
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	_ = localca.Create(caCert, caKey, "inspect CA", 24*time.Hour*30)
	ca, _ := localca.Load(caCert, caKey)
	is, err := ca.Issue(localca.Request{SANs: []string{"localhost"}, Validity: 48 * time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(tg.Config.CertPath, []byte(is.Material.CertPEM+is.Material.ChainPEM), 0o644)
	d := inspect()
	if !d.Exists || d.Problem != "" || d.LeafSHA256 != material.Fingerprint(is.Leaf.Raw) || !d.NotAfter.Equal(is.NotAfter.UTC()) {
		t.Fatalf("deployed: %+v", d)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv(EnvBypass, "")
	t.Setenv(EnvApprovalTimeout, "")
	if b, err := BypassFromEnv(); b || err != nil {
		t.Fatal("bypass must default off")
	}
	if d, err := ApprovalTimeoutFromEnv(); d != 168*time.Hour || err != nil {
		t.Fatalf("default timeout %s %v", d, err)
	}
	t.Setenv(EnvBypass, "true")
	t.Setenv(EnvApprovalTimeout, "24h")
	if b, _ := BypassFromEnv(); !b {
		t.Fatal("bypass not read")
	}
	if d, _ := ApprovalTimeoutFromEnv(); d != 24*time.Hour {
		t.Fatalf("timeout %s", d)
	}
	t.Setenv(EnvBypass, "yes please")
	t.Setenv(EnvApprovalTimeout, "a week")
	if _, err := BypassFromEnv(); err == nil {
		t.Fatal("a bad bypass value must be refused")
	}
	if _, err := ApprovalTimeoutFromEnv(); err == nil {
		t.Fatal("a bad timeout must be refused")
	}
}

// A haproxy target writes its leaf to pem_path, not cert_path: the file
// inspected is the connector's, so a current certificate there is not due
// (before, every scheduled renewal of a haproxy target asked approval).
func TestInspectDeployedHAProxy(t *testing.T) {
	dir := t.TempDir()
	a := New(filepath.Join(dir, "audit.jsonl"))
	env := activityEnv(a)
	pem := filepath.Join(dir, "site.pem")
	tg := target.Target{TargetID: "lb-1", TargetType: "haproxy", Config: target.Config{Own: &haproxy.Config{PEMPath: pem}}}
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := localca.Create(caCert, caKey, "inspect CA", 24*time.Hour*30); err != nil {
		t.Fatal(err)
	}
	ca, err := localca.Load(caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	is, err := ca.Issue(localca.Request{SANs: []string{"localhost"}, Validity: 48 * time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := is.Material
	if err := os.WriteFile(pem, []byte(m.CertPEM+m.ChainPEM+m.KeyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := env.ExecuteActivity(a.InspectDeployed, tg)
	if err != nil {
		t.Fatal(err)
	}
	var d Deployed
	if err := v.Get(&d); err != nil {
		t.Fatal(err)
	}
	if d.Path != pem || !d.Exists || d.Problem != "" || d.LeafSHA256 != material.Fingerprint(is.Leaf.Raw) {
		t.Fatalf("a haproxy target with a current leaf in pem_path reads as due: %+v", d)
	}
}

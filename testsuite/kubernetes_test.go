package testsuite_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certctl/certctl/connectors/kubernetes"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/policy"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// One real kube-apiserver (KubeVersion, with Debian's etcd) for the
// kubernetes tests, started by the first that needs it.
var kube struct {
	once sync.Once
	k    *testsuite.Kube
	err  error
	dir  string
}

func startKube(t *testing.T) *testsuite.Kube {
	t.Helper()
	kube.once.Do(func() {
		kube.dir = filepath.Join(env.workDir, "kube")
		if kube.err = mkdir(kube.dir); kube.err != nil {
			return
		}
		kube.k, kube.err = testsuite.StartKube(kube.dir)
	})
	if kube.err != nil {
		t.Fatal(kube.err)
	}
	return kube.k
}

// stopKube stops the apiserver and etcd, if a test started them.
func stopKube() {
	if kube.k != nil {
		kube.k.Stop()
	}
}

func mkdir(d string) error { return os.MkdirAll(d, 0o700) }

// kubeNamespace makes a fresh namespace in which the deployer has the Role
// of docs/connectors/kubernetes-rbac.yaml (get, create, update, delete on
// Secrets there).
func kubeNamespace(t *testing.T, k *testsuite.Kube, ns string) {
	t.Helper()
	ctx := context.Background()
	if err := k.Namespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := k.Grant(ctx, ns, testsuite.KubeDeployerUser); err != nil {
		t.Fatal(err)
	}
}

// kubeTarget is a kubernetes target whose kubeconfig holds the deployer's
// token.
func kubeTarget(t *testing.T, k *testsuite.Kube, own kubernetes.Config) target.Target {
	t.Helper()
	if own.KubeconfigPath == "" {
		kc, err := k.WriteKubeconfig(filepath.Join(t.TempDir(), "kubeconfig"), "deployer", k.DeployerToken)
		if err != nil {
			t.Fatal(err)
		}
		own.KubeconfigPath, own.Context = kc, "deployer"
	}
	return target.Target{TargetID: "k8s-" + strings.ReplaceAll(t.Name(), "/", "-"), TargetType: kubernetes.Name, Config: target.Config{Own: &own}}
}

func openSecrets(t *testing.T, tg target.Target) *kubernetes.Secrets {
	t.Helper()
	s, err := kubernetes.Open(tg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func kubeLeaf(t *testing.T) (material.Material, map[string][]byte) {
	t.Helper()
	s, err := env.ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := material.Parse(s.Material)
	if err != nil {
		t.Fatal(err)
	}
	return s.Material, kubernetes.Data(b)
}

func wantType(t *testing.T, err error, typ string, words ...string) {
	t.Helper()
	if contract.Of(err) != typ {
		t.Fatalf("error %v (type %q), want type %s", err, contract.Of(err), typ)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func getSecret(t *testing.T, k *testsuite.Kube, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := k.Admin.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// First deploy with the deployer's Role only (get, create, update, delete
// on Secrets in its namespace): plan finds nothing, the dry run writes
// nothing, commit creates a kubernetes.io/tls Secret with tls.crt = leaf +
// chain, tls.key and the target's labels, verify reads it back; a second
// plan matches (the idempotent skip); a new leaf updates it, keeping a label
// and a data key someone else set.
func TestKubernetesFirstDeployAndSkip(t *testing.T) {
	k := startKube(t)
	ctx := context.Background()
	kubeNamespace(t, k, "first")
	tg := kubeTarget(t, k, kubernetes.Config{Namespace: "first", SecretName: "site-tls", Labels: map[string]string{"app": "shop"}, Annotations: map[string]string{"certctl.io/by": "test"}})
	s := openSecrets(t, tg)
	m, data := kubeLeaf(t)

	plan, err := s.Plan(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || plan[0].Exists || kubernetes.Matches(plan) {
		t.Fatalf("plan %+v", plan)
	}
	priors, err := s.Backup(ctx, plan)
	if err != nil || len(priors) != 1 || priors[0].Exists {
		t.Fatalf("backup %+v, %v", priors, err)
	}
	if err := s.Validate(ctx, plan, data); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Admin.CoreV1().Secrets("first").Get(ctx, "site-tls", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after the dry run: %v, want not found", err)
	}
	done, err := s.Commit(ctx, plan, data)
	if err != nil || len(done) != 1 || done[0] != "first/site-tls" {
		t.Fatalf("commit %v, %v", done, err)
	}
	if err := s.Verify(ctx, plan); err != nil {
		t.Fatal(err)
	}
	sec := getSecret(t, k, "first", "site-tls")
	if sec.Type != corev1.SecretTypeTLS || string(sec.Data["tls.crt"]) != m.CertPEM+m.ChainPEM || !bytes.Equal(sec.Data["tls.key"], data["tls.key"]) {
		t.Fatalf("secret type %s, tls.crt %q", sec.Type, sec.Data["tls.crt"])
	}
	if sec.Labels["app"] != "shop" || sec.Annotations["certctl.io/by"] != "test" {
		t.Errorf("labels %v, annotations %v", sec.Labels, sec.Annotations)
	}

	// The same material again: a skip.
	again, err := s.Plan(ctx, data)
	if err != nil || !kubernetes.Matches(again) || again[0].ResourceVersion != sec.ResourceVersion {
		t.Fatalf("second plan %+v, %v", again, err)
	}

	// Someone else's label and data key are kept; a label the target sets
	// that someone changed is work to do.
	sec.Labels["team"], sec.Labels["app"], sec.Data["ca.crt"] = "web", "other", []byte("their CA")
	if _, err := k.Admin.CoreV1().Secrets("first").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	changed, err := s.Plan(ctx, data)
	if err != nil || kubernetes.Matches(changed) {
		t.Fatalf("a changed managed label must not be a skip: %+v, %v", changed, err)
	}
	_, data2 := kubeLeaf(t)
	p2, err := s.Plan(ctx, data2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, p2, data2); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, p2); err != nil {
		t.Fatal(err)
	}
	sec = getSecret(t, k, "first", "site-tls")
	if sec.Labels["team"] != "web" || sec.Labels["app"] != "shop" || string(sec.Data["ca.crt"]) != "their CA" || !bytes.Equal(sec.Data["tls.crt"], data2["tls.crt"]) {
		t.Errorf("after update: labels %v, ca.crt %q", sec.Labels, sec.Data["ca.crt"])
	}
}

// A foreign update between plan and commit is ConcurrentChange: the commit
// writes nothing over it (and neither does the dry run).
func TestKubernetesConflict(t *testing.T) {
	k := startKube(t)
	ctx := context.Background()
	kubeNamespace(t, k, "conflict")
	tg := kubeTarget(t, k, kubernetes.Config{Namespace: "conflict", SecretName: "site-tls"})
	s := openSecrets(t, tg)
	_, old := kubeLeaf(t)
	p, err := s.Plan(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, p, old); err != nil {
		t.Fatal(err)
	}
	_, data := kubeLeaf(t)
	plan, err := s.Plan(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else writes between plan and commit.
	sec := getSecret(t, k, "conflict", "site-tls")
	sec.Data["tls.crt"] = []byte("someone else's")
	if _, err := k.Admin.CoreV1().Secrets("conflict").Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Backup(ctx, plan)
	wantType(t, err, contract.ConcurrentChange, "conflict/site-tls", "changed by someone else", plan[0].ResourceVersion)
	err = s.Validate(ctx, plan, data)
	wantType(t, err, contract.ConcurrentChange)
	_, err = s.Commit(ctx, plan, data)
	wantType(t, err, contract.ConcurrentChange, "nothing written over it")
	if got := getSecret(t, k, "conflict", "site-tls"); string(got.Data["tls.crt"]) != "someone else's" {
		t.Fatalf("the foreign change was overwritten: %q", got.Data["tls.crt"])
	}

	// Someone creates the Secret after a plan that found none.
	kubeNamespace(t, k, "conflict-create")
	tg2 := kubeTarget(t, k, kubernetes.Config{Namespace: "conflict-create", SecretName: "site-tls"})
	s2 := openSecrets(t, tg2)
	plan2, err := s2.Plan(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-tls"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")}}
	if _, err := k.Admin.CoreV1().Secrets("conflict-create").Create(ctx, theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = s2.Commit(ctx, plan2, data)
	wantType(t, err, contract.ConcurrentChange, "created by someone else")
	if got := getSecret(t, k, "conflict-create", "site-tls"); string(got.Data["tls.crt"]) != "x" {
		t.Fatalf("the foreign Secret was overwritten")
	}
}

// RBAC: the deployer may write Secrets in its namespace only. A namespace
// it has no Role in is Forbidden, naming the verb, the resource and the
// namespace; a namespace that does not exist is NamespaceNotFound; a Role
// without update refuses the dry run, so nothing is written.
func TestKubernetesForbiddenAndMissingNamespace(t *testing.T) {
	k := startKube(t)
	ctx := context.Background()
	if err := k.Namespace(ctx, "not-mine"); err != nil {
		t.Fatal(err)
	}
	_, data := kubeLeaf(t)
	s := openSecrets(t, kubeTarget(t, k, kubernetes.Config{Namespace: "not-mine", SecretName: "site-tls"}))
	_, err := s.Plan(ctx, data)
	wantType(t, err, contract.Forbidden, `get of secrets in namespace "not-mine"`, `the verb "get" on secrets in "not-mine"`, "docs/connectors/kubernetes.md")

	admin, err := k.WriteKubeconfig(filepath.Join(t.TempDir(), "admin"), "admin", k.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	s = openSecrets(t, kubeTarget(t, k, kubernetes.Config{KubeconfigPath: admin, Namespace: "no-such-ns", SecretName: "site-tls"}))
	_, err = s.Plan(ctx, data)
	wantType(t, err, contract.NamespaceNotFound, `namespace "no-such-ns" does not exist`)

	// get and create only: the plan passes, the dry run of the create
	// does too, but an existing Secret's update is refused at validate.
	if err := k.Namespace(ctx, "read-only"); err != nil {
		t.Fatal(err)
	}
	if err := k.GrantSecrets(ctx, "read-only", testsuite.KubeDeployerUser, "get", "create"); err != nil {
		t.Fatal(err)
	}
	existing := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-tls"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("old"), "tls.key": []byte("old")}}
	if _, err := k.Admin.CoreV1().Secrets("read-only").Create(ctx, existing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s = openSecrets(t, kubeTarget(t, k, kubernetes.Config{Namespace: "read-only", SecretName: "site-tls"}))
	plan, err := s.Plan(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Validate(ctx, plan, data)
	wantType(t, err, contract.Forbidden, `update of secrets in namespace "read-only"`)
	if got := getSecret(t, k, "read-only", "site-tls"); string(got.Data["tls.crt"]) != "old" {
		t.Fatal("a refused dry run wrote")
	}

	// A Secret of another type cannot become a TLS one: InvalidInput.
	opaque := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "opaque"}, Data: map[string][]byte{"a": []byte("b")}}
	if _, err := k.Admin.CoreV1().Secrets("read-only").Create(ctx, opaque, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s = openSecrets(t, kubeTarget(t, k, kubernetes.Config{Namespace: "read-only", SecretName: "opaque"}))
	_, err = s.Plan(ctx, data)
	wantType(t, err, contract.InvalidInput, "target_config.secret_name", `type "Opaque"`)
}

// The worker policy bounds the namespaces, whatever the credentials allow:
// a namespace outside allow_kubernetes_namespaces is refused, one of
// namespaces outside it refuses the whole target, and a policy without the
// field refuses every kubernetes target.
func TestKubernetesPolicy(t *testing.T) {
	tg := func(own kubernetes.Config) target.Target {
		own.SecretName = "site-tls"
		return target.Target{TargetID: "k", TargetType: kubernetes.Name, Config: target.Config{Own: &own}}
	}
	p, err := policy.Parse([]byte("allow_paths: [/etc/nginx/]\nallow_kubernetes_namespaces: [shop, web]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p.File = "/etc/certctl/worker.yaml"
	if err := p.CheckTarget(tg(kubernetes.Config{Namespace: "shop"})); err != nil {
		t.Fatal(err)
	}
	if err := p.CheckTarget(tg(kubernetes.Config{Namespaces: []string{"shop", "web"}})); err != nil {
		t.Fatal(err)
	}
	err = policy.Error(p.CheckTarget(tg(kubernetes.Config{Namespace: "kube-system"})))
	wantType(t, err, contract.PolicyRefused, `target_config.namespace "kube-system"`, "allow_kubernetes_namespaces [shop web]", "/etc/certctl/worker.yaml")
	err = policy.Error(p.CheckTarget(tg(kubernetes.Config{Namespaces: []string{"shop", "billing"}})))
	wantType(t, err, contract.PolicyRefused, `target_config.namespaces[1] "billing"`)

	none, err := policy.Parse([]byte("allow_paths: [/etc/nginx/]\nallow_commands: [['*']]\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = policy.Error(none.CheckTarget(tg(kubernetes.Config{Namespace: "shop"})))
	wantType(t, err, contract.PolicyRefused, "has no allow_kubernetes_namespaces")
}

// Rollback restores the old Secret (data, labels and annotations) where the
// deploy wrote it, and deletes one the deploy created; a second rollback
// changes nothing. Namespaces are all or nothing: a foreign change in the
// second namespace after the plan stops the commit there, and the rollback
// restores the first.
func TestKubernetesRollbackAndMultiNamespace(t *testing.T) {
	k := startKube(t)
	ctx := context.Background()
	kubeNamespace(t, k, "rb-old")
	kubeNamespace(t, k, "rb-new")
	oldSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-tls", Labels: map[string]string{"v": "1"}}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("old cert"), "tls.key": []byte("old key")}}
	if _, err := k.Admin.CoreV1().Secrets("rb-old").Create(ctx, oldSecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := openSecrets(t, kubeTarget(t, k, kubernetes.Config{Namespaces: []string{"rb-old", "rb-new"}, SecretName: "site-tls", Labels: map[string]string{"v": "2"}}))
	_, data := kubeLeaf(t)
	plan, err := s.Plan(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 2 || !plan[0].Exists || plan[1].Exists {
		t.Fatalf("plan %+v", plan)
	}
	priors, err := s.Backup(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if !priors[0].Exists || string(priors[0].Data["tls.key"]) != "old key" {
		t.Fatalf("backup %v", priors)
	}
	if done, err := s.Commit(ctx, plan, data); err != nil || len(done) != 2 {
		t.Fatalf("commit %v, %v", done, err)
	}
	// Verify failed (say, the endpoint served the old leaf): roll back.
	restored, removed, err := s.Rollback(ctx, plan, priors)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(restored, ",") != "rb-old/site-tls" || strings.Join(removed, ",") != "rb-new/site-tls" {
		t.Fatalf("restored %v, removed %v", restored, removed)
	}
	got := getSecret(t, k, "rb-old", "site-tls")
	if string(got.Data["tls.crt"]) != "old cert" || string(got.Data["tls.key"]) != "old key" || got.Labels["v"] != "1" {
		t.Fatalf("not restored: %q, labels %v", got.Data["tls.crt"], got.Labels)
	}
	if _, err := k.Admin.CoreV1().Secrets("rb-new").Get(ctx, "site-tls", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the created Secret is still there: %v", err)
	}
	if r2, d2, err := s.Rollback(ctx, plan, priors); err != nil || len(r2)+len(d2) != 0 {
		t.Fatalf("a second rollback: %v %v %v", r2, d2, err)
	}

	// All or nothing: someone creates the Secret in the second namespace
	// after the plan; the commit writes the first, stops at the second
	// (ConcurrentChange), and the rollback restores the first and leaves
	// theirs alone (it holds nothing of this deploy).
	plan, err = s.Plan(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	priors, err = s.Backup(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-tls"}, Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("theirs"), "tls.key": []byte("theirs")}}
	if _, err := k.Admin.CoreV1().Secrets("rb-new").Create(ctx, theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done, err := s.Commit(ctx, plan, data)
	wantType(t, err, contract.ConcurrentChange, "rb-new/site-tls")
	if strings.Join(done, ",") != "rb-old/site-tls" {
		t.Fatalf("committed %v", done)
	}
	restored, removed, err = s.Rollback(ctx, plan, priors)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(restored, ",") != "rb-old/site-tls" || len(removed) != 0 {
		t.Fatalf("restored %v, removed %v", restored, removed)
	}
	if got := getSecret(t, k, "rb-old", "site-tls"); string(got.Data["tls.crt"]) != "old cert" {
		t.Fatal("the first namespace was not restored")
	}
	if got := getSecret(t, k, "rb-new", "site-tls"); string(got.Data["tls.crt"]) != "theirs" {
		t.Fatal("the foreign Secret was touched")
	}
}

// End to end, as an operator runs it: `certctl deploy` (the built binary)
// of a kubernetes target (no host: its steps run on the certctl worker,
// whose policy allows namespace shop only) against the real apiserver ends
// Deployed, then SkippedIdempotent on a repeat. A namespace outside the
// policy ends PolicyRefused with nothing written. A verify that fails (the
// endpoint named serves nothing) ends VerifyFailed with the old Secret
// restored.
func TestKubernetesDeployEndToEnd(t *testing.T) {
	k := startKube(t)
	ctx := context.Background()
	ns := testsuite.KubeE2ENamespace
	kubeNamespace(t, k, ns)
	tg := kubeTarget(t, k, kubernetes.Config{Namespace: ns, SecretName: "site-tls", Labels: map[string]string{"app": "shop"}})
	tf := targetFile(t, tg)
	set, err := env.ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, chain, key, err := set.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := certctl(t, "deploy", "--target", tf, "--cert", cert, "--chain", chain, "--key", key)
	wantOutcome(t, r, 0, contract.Deployed)
	sec := getSecret(t, k, ns, "site-tls")
	if string(sec.Data["tls.crt"]) != set.CertPEM+set.ChainPEM || string(sec.Data["tls.key"]) != set.KeyPEM || sec.Labels["app"] != "shop" {
		t.Fatalf("the Secret does not hold the deployed material: labels %v", sec.Labels)
	}
	if strings.Contains(r.stdout+r.stderr, "PRIVATE KEY") {
		t.Fatal("certctl deploy printed the key")
	}
	r = certctl(t, "deploy", "--target", tf, "--cert", cert, "--chain", chain, "--key", key)
	wantOutcome(t, r, 0, contract.SkippedIdempotent)
	if again := getSecret(t, k, ns, "site-tls"); again.ResourceVersion != sec.ResourceVersion {
		t.Fatalf("a skip wrote: resourceVersion %s → %s", sec.ResourceVersion, again.ResourceVersion)
	}

	// The worker's policy, not the credentials, bounds the namespaces:
	// the admin may write anywhere, the worker refuses kube-system.
	admin, err := k.WriteKubeconfig(filepath.Join(t.TempDir(), "admin"), "admin", k.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	refused := kubeTarget(t, k, kubernetes.Config{KubeconfigPath: admin, Namespace: "kube-system", SecretName: "site-tls"})
	r = certctl(t, "deploy", "--target", targetFile(t, refused), "--cert", cert, "--chain", chain, "--key", key)
	wantOutcome(t, r, 1, contract.PolicyRefused)
	if !strings.Contains(r.stdout, `target_config.namespace "kube-system"`) || !strings.Contains(r.stdout, "allow_kubernetes_namespaces") {
		t.Errorf("the refusal does not name the namespace and the rule:\n%s", r.stdout)
	}
	if _, err := k.Admin.CoreV1().Secrets("kube-system").Get(ctx, "site-tls", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused deploy wrote in kube-system: %v", err)
	}

	// Verify fails: the endpoint serving the Secret (an ingress that never
	// picks it up, played by a TLS listener holding the old leaf) serves
	// the old leaf. The rollback puts the old Secret back, as it was, and
	// the rollback's verify sees the old leaf served again.
	pair, err := tls.X509KeyPair([]byte(set.CertPEM+set.ChainPEM), []byte(set.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	bad := tg
	bad.Config.PostDeployVerify = target.Verify{Endpoint: ln.Addr().String(), Timeout: target.Duration(2 * time.Second)}
	bad.Config.PostDeployVerifyAttempts = 1
	next, err := env.ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c2, ch2, k2, err := next.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r = certctl(t, "deploy", "--target", targetFile(t, bad), "--cert", c2, "--chain", ch2, "--key", k2)
	wantOutcome(t, r, 1, contract.VerifyFailed)
	// The rollback carried the old key in its input; the output shows none.
	oldKeyBody := strings.Split(strings.TrimSpace(set.KeyPEM), "\n")[1]
	if strings.Contains(r.stdout+r.stderr, "PRIVATE KEY") || strings.Contains(r.stdout+r.stderr, oldKeyBody) {
		t.Fatal("certctl deploy printed a key")
	}
	if !strings.Contains(r.stdout, "rollback-verify  ok") {
		t.Errorf("the rollback's verify did not pass:\n%s", r.stdout)
	}
	back := getSecret(t, k, ns, "site-tls")
	if string(back.Data["tls.crt"]) != set.CertPEM+set.ChainPEM || string(back.Data["tls.key"]) != set.KeyPEM {
		t.Fatal("after VerifyFailed the Secret does not hold the old material")
	}
}

package testsuite

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// KubeVersion is the kube-apiserver the tests run: the Makefile's
// KUBE_VERSION, built by `make kube-apiserver` (part of `make deps`) into the
// tool cache.
const KubeVersion = "v1.31.0"

// KubeAPIServerBinary finds kube-apiserver: $CERTCTL_KUBE_APISERVER_BIN,
// else the tool cache for KubeVersion. It never builds (about 11 minutes).
func KubeAPIServerBinary() (string, error) {
	if p := os.Getenv("CERTCTL_KUBE_APISERVER_BIN"); p != "" {
		return p, nil
	}
	cached := filepath.Join(ToolCache(), "kube-apiserver-"+KubeVersion, "kube-apiserver")
	if _, err := os.Stat(cached); err == nil {
		return cached, nil
	}
	return "", fmt.Errorf("kube-apiserver %s not found at %s: run `make kube-apiserver` (a wrapper module around k8s.io/kubernetes %s, about 11 minutes once), or set CERTCTL_KUBE_APISERVER_BIN",
		KubeVersion, cached, KubeVersion)
}

// The tokens of the token file: an admin (system:masters) and a deployer
// that RBAC allows nothing until Grant.
const (
	KubeAdminUser    = "admin"
	KubeDeployerUser = "deployer"
)

// Kube is a real kube-apiserver on loopback, with Debian's etcd, a token
// file and --authorization-mode=RBAC.
type Kube struct {
	URL string // https://127.0.0.1:PORT
	// CAPEM is the CA that signed the serving certificate.
	CAPEM         []byte
	AdminToken    string
	DeployerToken string
	// Admin is a clientset as the admin.
	Admin k8s.Interface
	dir   string
	etcd  *Process
	api   *Process
}

// StartKube starts etcd and kube-apiserver under dir and waits until the
// apiserver is ready (/readyz, its RBAC bootstrap included).
func StartKube(dir string) (*Kube, error) {
	bin, err := KubeAPIServerBinary()
	if err != nil {
		return nil, err
	}
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd not found (%v): install Debian's etcd-server (make apt-deps)", err)
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return nil, err
		}
	}
	k := &Kube{dir: dir, URL: "https://127.0.0.1:" + strconv.Itoa(ports[2]), AdminToken: randomToken(), DeployerToken: randomToken()}
	client, peer := "http://127.0.0.1:"+strconv.Itoa(ports[0]), "http://127.0.0.1:"+strconv.Itoa(ports[1])
	if k.etcd, err = StartProcess("etcd", filepath.Join(dir, "etcd.log"), nil, etcdBin,
		"--name", "certctl-test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "certctl-test="+peer, "--logger", "zap", "--log-outputs", "stderr"); err != nil {
		return nil, err
	}
	ca, err := NewCA("kube-apiserver test")
	if err != nil {
		k.Stop()
		return nil, err
	}
	serving, err := ca.Issue(LeafOptions{})
	if err != nil {
		k.Stop()
		return nil, err
	}
	certDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		k.Stop()
		return nil, err
	}
	cert, _, key, err := serving.Write(certDir)
	if err != nil {
		k.Stop()
		return nil, err
	}
	if err := os.WriteFile(cert, []byte(serving.CertPEM+serving.ChainPEM), 0o644); err != nil {
		k.Stop()
		return nil, err
	}
	k.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		k.Stop()
		return nil, err
	}
	der, _ := x509.MarshalECPrivateKey(saKey)
	saPath := filepath.Join(certDir, "sa.key")
	if err := os.WriteFile(saPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		k.Stop()
		return nil, err
	}
	tokens := filepath.Join(certDir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(fmt.Sprintf("%s,%s,1,\"system:masters\"\n%s,%s,2\n",
		k.AdminToken, KubeAdminUser, k.DeployerToken, KubeDeployerUser)), 0o600); err != nil {
		k.Stop()
		return nil, err
	}
	if k.api, err = StartProcess("kube-apiserver", filepath.Join(dir, "kube-apiserver.log"), nil, bin,
		"--etcd-servers", client,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(ports[2]),
		"--tls-cert-file", cert, "--tls-private-key-file", key, "--cert-dir", certDir,
		"--service-account-key-file", saPath, "--service-account-signing-key-file", saPath,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		// No controller manager runs: no service account tokens to mint.
		"--disable-admission-plugins", "ServiceAccount",
		"--enable-priority-and-fairness=false",
	); err != nil {
		k.Stop()
		return nil, err
	}
	if k.Admin, err = k8s.NewForConfig(k.RestConfig(k.AdminToken)); err != nil {
		k.Stop()
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(k.CAPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ok, state := Poll(90*time.Second, func() (bool, string) {
		select {
		case <-k.api.Exited():
			return false, "kube-apiserver exited"
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, k.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+k.AdminToken)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if !ok {
		logs := k.Logs()
		k.Stop()
		return nil, fmt.Errorf("kube-apiserver not ready at %s: %s\n%s", k.URL, state, logs)
	}
	return k, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// RestConfig is a client config for the apiserver with token.
func (k *Kube) RestConfig(token string) *rest.Config {
	return &rest.Config{Host: k.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: k.CAPEM}, Timeout: 15 * time.Second}
}

// WriteKubeconfig writes a kubeconfig at path with one context, name, for
// the user of token, and returns path.
func (k *Kube) WriteKubeconfig(path, name, token string) (string, error) {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: %s
  context:
    cluster: test
    user: %s
current-context: %s
`, k.URL, b64(k.CAPEM), name, token, name, name, name)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// Namespace creates namespace ns.
func (k *Kube) Namespace(ctx context.Context, ns string) error {
	_, err := k.Admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	return err
}

// Grant applies the Role and RoleBinding of docs/connectors/kubernetes-rbac.yaml
// (what the docs ask an operator for) in ns, bound to user.
func (k *Kube) Grant(ctx context.Context, ns, user string) error {
	path, err := RepoFile("docs/connectors/kubernetes-rbac.yaml")
	if err != nil {
		return err
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	docs := strings.Split(string(text), "\n---\n")
	if len(docs) != 2 {
		return fmt.Errorf("%s: want a Role and a RoleBinding, found %d documents", path, len(docs))
	}
	var role rbacv1.Role
	var rb rbacv1.RoleBinding
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &role); err != nil {
		return fmt.Errorf("%s: the Role: %w", path, err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &rb); err != nil {
		return fmt.Errorf("%s: the RoleBinding: %w", path, err)
	}
	role.Namespace, rb.Namespace = ns, ns
	if len(rb.Subjects) != 1 {
		return fmt.Errorf("%s: want one subject", path)
	}
	rb.Subjects[0].Name = user
	return k.GrantRole(ctx, &role, &rb)
}

// GrantSecrets gives user a Role with only verbs on Secrets in ns.
func (k *Kube) GrantSecrets(ctx context.Context, ns, user string, verbs ...string) error {
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "certctl-secrets", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: verbs}},
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "certctl-secrets", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}
	return k.GrantRole(ctx, role, rb)
}

// GrantRole creates role and its binding.
func (k *Kube) GrantRole(ctx context.Context, role *rbacv1.Role, rb *rbacv1.RoleBinding) error {
	if _, err := k.Admin.RbacV1().Roles(role.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := k.Admin.RbacV1().RoleBindings(rb.Namespace).Create(ctx, rb, metav1.CreateOptions{})
	return err
}

// Logs is the apiserver's output, then etcd's.
func (k *Kube) Logs() string {
	a, _ := os.ReadFile(filepath.Join(k.dir, "kube-apiserver.log"))
	e, _ := os.ReadFile(filepath.Join(k.dir, "etcd.log"))
	return tail(string(a), 4000) + "\n--- etcd ---\n" + tail(string(e), 2000)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Stop stops the apiserver, then etcd.
func (k *Kube) Stop() {
	if k.api != nil {
		k.api.Stop()
	}
	if k.etcd != nil {
		k.etcd.Stop()
	}
}

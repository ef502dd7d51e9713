package kubernetes_test

import (
	"strings"
	"testing"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/kubernetes"
	"github.com/certctl/certctl/target"
)

func TestCheck(t *testing.T) {
	c, err := connectors.Get(kubernetes.Name)
	if err != nil {
		t.Fatal(err)
	}
	mode := target.Mode(0o600)
	for _, tc := range []struct {
		cfg  target.Config
		want string // "" passes
	}{
		{target.Config{Own: &kubernetes.Config{Namespace: "shop", SecretName: "site-tls"}}, ""},
		{target.Config{Own: &kubernetes.Config{Namespaces: []string{"a", "b"}, SecretName: "site-tls", Labels: map[string]string{"app.kubernetes.io/name": "shop"}}}, ""},
		{target.Config{Own: &kubernetes.Config{Namespace: "shop"}}, "target_config.secret_name: is required"},
		{target.Config{Own: &kubernetes.Config{SecretName: "site-tls"}}, "target_config.namespace: is required"},
		{target.Config{Own: &kubernetes.Config{Namespace: "Shop", SecretName: "site-tls"}}, `target_config.namespace: "Shop" is not a namespace name`},
		{target.Config{Own: &kubernetes.Config{Namespaces: []string{"a", "a"}, SecretName: "s"}}, `target_config.namespaces[1]: "a" is listed twice`},
		{target.Config{Own: &kubernetes.Config{Namespace: "a", Namespaces: []string{"b"}, SecretName: "s"}}, "not both"},
		{target.Config{Own: &kubernetes.Config{Namespace: "a", SecretName: "Site_TLS"}}, `target_config.secret_name: "Site_TLS" is not a Secret name`},
		{target.Config{Own: &kubernetes.Config{Namespace: "a", SecretName: "s", Context: "prod"}}, "target_config.context: is set without kubeconfig_path"},
		{target.Config{Own: &kubernetes.Config{Namespace: "a", SecretName: "s", KubeconfigPath: "kubeconfig"}}, "target_config.kubeconfig_path"},
		{target.Config{Own: &kubernetes.Config{Namespace: "a", SecretName: "s", Labels: map[string]string{"bad key!": "x"}}}, "target_config.labels: key \"bad key!\""},
		{target.Config{CertPath: "/etc/x.pem", Own: &kubernetes.Config{Namespace: "a", SecretName: "s"}}, "target_config.cert_path: is not used by kubernetes"},
		{target.Config{KeyFileMode: &mode, Own: &kubernetes.Config{Namespace: "a", SecretName: "s"}}, "target_config.key_file_mode: is not used by kubernetes"},
		{target.Config{ReloadCommand: target.Command{"true"}, Own: &kubernetes.Config{Namespace: "a", SecretName: "s"}}, "target_config.reload_command: is not used by kubernetes"},
	} {
		err := c.Check(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg.Own, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.cfg.Own, err, tc.want)
		}
	}
}

// The digest covers what a deploy manages: tls.crt, tls.key, the type and
// the labels and annotations the target sets, and nothing else.
func TestDigest(t *testing.T) {
	cfg := kubernetes.Config{Labels: map[string]string{"app": "shop"}}
	data := map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}
	base := cfg.Digest("kubernetes.io/tls", data, map[string]string{"app": "shop", "team": "x"}, nil)
	if got := cfg.Digest("kubernetes.io/tls", data, map[string]string{"app": "shop"}, map[string]string{"other": "y"}); got != base {
		t.Error("a label or annotation the target does not set changed the digest")
	}
	for name, d := range map[string]string{
		"key":   cfg.Digest("kubernetes.io/tls", map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("K")}, map[string]string{"app": "shop"}, nil),
		"label": cfg.Digest("kubernetes.io/tls", data, map[string]string{"app": "other"}, nil),
		"type":  cfg.Digest("Opaque", data, map[string]string{"app": "shop"}, nil),
	} {
		if d == base {
			t.Errorf("a changed %s kept the digest", name)
		}
	}
}

// A backup's String and GoString never show its data (a private key).
func TestPriorHidesData(t *testing.T) {
	p := kubernetes.Prior{Namespace: "shop", Name: "site-tls", Data: map[string][]byte{"tls.key": []byte("SECRET-KEY")}}
	for _, s := range []string{p.String(), p.GoString()} {
		if strings.Contains(s, "SECRET") {
			t.Errorf("%q shows the data", s)
		}
	}
}

// Package kubernetes is the connector for a Kubernetes TLS Secret
// (target_type: kubernetes), written through k8s.io/client-go. It is
// agentless: the target has no host, and its steps run on the certctl
// worker, which reaches the API server with a kubeconfig (kubeconfig_path,
// optionally context) or, without one, the in-cluster service account.
//
// A deploy writes one kubernetes.io/tls Secret, secret_name, in namespace or
// in each of namespaces (the same Secret in several namespaces, each its own
// step result; all of them or none): tls.crt is the leaf then its chain,
// tls.key the key. Other data keys (ca.crt), labels and annotations on the
// Secret are kept; labels and annotations the target names are set.
//
// The steps (Secrets) keep the pipeline's promises against the API server:
// Plan reads each Secret (its resourceVersion and the SHA-256 of what a
// deploy manages: an equal one is a skip); Backup reads it again, still at
// the planned resourceVersion, and returns its data to be carried only in the
// step's result (a payload the codec encrypts, never logged); Validate is a
// server-side dry run of the write; Commit updates with the planned
// resourceVersion (a foreign change in between is ConcurrentChange, never
// overwritten) or creates; Verify reads back and compares SHA-256; Rollback
// restores the old data, or deletes a Secret the deploy created, but only
// where the Secret still holds what the deploy wrote.
//
// RBAC: get, create, update (and delete, for a rollback of a Secret the
// deploy created) on Secrets in the named namespaces (docs/connectors/
// kubernetes.md). The worker policy's allow_kubernetes_namespaces bounds the
// namespaces whatever the credentials allow (package policy).
package kubernetes

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// Name is the target_type.
const Name = "kubernetes"

// RoleSecret is the role of a Secret in a plan's files; its path is
// "namespace/secret_name" (Ref).
const RoleSecret = "secret"

func init() { connectors.Register(Name, Connector{connectors.Owned[Config]{Name: Name}}) }

// Config is the kubernetes connector's own fields of target_config.
type Config struct {
	// KubeconfigPath is the kubeconfig on the certctl worker's machine;
	// empty: the in-cluster service account.
	KubeconfigPath string `json:"kubeconfig_path,omitempty" yaml:"kubeconfig_path,omitempty"`
	// Context is the kubeconfig's context to use; empty: its current one.
	Context    string `json:"context,omitempty" yaml:"context,omitempty"`
	Namespace  string `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	SecretName string `json:"secret_name,omitempty" yaml:"secret_name,omitempty"`
	// Namespaces, instead of Namespace: the same Secret in each.
	Namespaces  []string          `json:"namespaces,omitempty" yaml:"namespaces,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

const (
	fieldKubeconfig  = "target_config.kubeconfig_path"
	fieldContext     = "target_config.context"
	fieldNamespace   = "target_config.namespace"
	fieldNamespaces  = "target_config.namespaces"
	fieldSecretName  = "target_config.secret_name"
	fieldLabels      = "target_config.labels"
	fieldAnnotations = "target_config.annotations"
)

// Validate checks the fields' form: Kubernetes names, label and annotation
// keys and values as the API server would take them.
func (c *Config) Validate() error {
	if err := target.CheckFields(
		target.OwnField{Field: fieldKubeconfig, Value: c.KubeconfigPath, Check: target.CheckPath},
		target.OwnField{Field: fieldContext, Value: c.Context},
	); err != nil {
		return err
	}
	if c.Context != "" && c.KubeconfigPath == "" {
		return contract.Fieldf(fieldContext, "is set without kubeconfig_path: the in-cluster service account has no contexts; set kubeconfig_path, or remove context")
	}
	if c.SecretName != "" {
		if errs := validation.IsDNS1123Subdomain(c.SecretName); len(errs) > 0 {
			return contract.Fieldf(fieldSecretName, "%q is not a Secret name: %s", c.SecretName, strings.Join(errs, "; "))
		}
	}
	if c.Namespace != "" && len(c.Namespaces) > 0 {
		return contract.Fieldf(fieldNamespaces, "is set with namespace: give namespace (one) or namespaces (several), not both")
	}
	seen := map[string]bool{}
	for i, ns := range c.namespaces() {
		field := fieldNamespace
		if len(c.Namespaces) > 0 {
			field = fmt.Sprintf("%s[%d]", fieldNamespaces, i)
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return contract.Fieldf(field, "%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		if seen[ns] {
			return contract.Fieldf(field, "%q is listed twice: name each namespace once", ns)
		}
		seen[ns] = true
	}
	for _, k := range sortedKeys(c.Labels) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return contract.Fieldf(fieldLabels, "key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(c.Labels[k]); len(errs) > 0 {
			return contract.Fieldf(fieldLabels+"."+k, "%q: %s", c.Labels[k], strings.Join(errs, "; "))
		}
	}
	for _, k := range sortedKeys(c.Annotations) {
		if errs := validation.IsQualifiedName(strings.ToLower(k)); len(errs) > 0 {
			return contract.Fieldf(fieldAnnotations, "key %q: %s", k, strings.Join(errs, "; "))
		}
	}
	return nil
}

// namespaces is namespaces, else namespace alone.
func (c *Config) namespaces() []string {
	if len(c.Namespaces) > 0 {
		return c.Namespaces
	}
	if c.Namespace != "" {
		return []string{c.Namespace}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Connector implements connectors.Connector for kubernetes; its own fields
// are Config.
type Connector struct{ connectors.Owned[Config] }

// Files is the Secret's data, one entry per key (Role tls.crt: the leaf
// then its chain; tls.key: the key), each named "namespace/secret_name"
// after the first namespace: no file on any machine (Data, as a list).
func (c Connector) Files(cfg target.Config, b *material.Bundle) ([]connectors.File, error) {
	o, err := c.check(cfg)
	if err != nil {
		return nil, err
	}
	ref, data := Ref(o.namespaces()[0], o.SecretName), Data(b)
	return []connectors.File{
		{Role: corev1.TLSCertKey, Path: ref, Bytes: data[corev1.TLSCertKey]},
		{Role: corev1.TLSPrivateKeyKey, Path: ref, Bytes: data[corev1.TLSPrivateKeyKey], HoldsKey: true},
	}, nil
}

// Destinations is nil: no file on any machine (the worker policy bounds the
// namespaces instead: KubernetesNamespaces).
func (Connector) Destinations(target.Config) []connectors.Destination { return nil }

// KubernetesNamespaces lists the namespaces a deploy of cfg writes in, for
// the worker policy's allow_kubernetes_namespaces.
func (c Connector) KubernetesNamespaces(cfg target.Config) []string {
	o, _ := c.Of(cfg)
	return o.namespaces()
}

// Defaults: no command, no owner; verify reads the Secret back.
func (Connector) Defaults() connectors.Defaults { return connectors.Defaults{} }

// VerifiesByReadBack is true: verify reads every Secret back and compares
// its SHA-256; post_deploy_verify.endpoint is optional (a TLS endpoint
// serving the Secret, probed as well when set).
func (Connector) VerifiesByReadBack() bool { return true }

// Check needs secret_name and namespace (or namespaces), and refuses every
// field of a file target: a Secret has no path, mode or owner, and nothing
// runs a command.
func (c Connector) Check(cfg target.Config) error {
	_, err := c.check(cfg)
	return err
}

func (c Connector) check(cfg target.Config) (Config, error) {
	o, err := c.Of(cfg)
	if err != nil {
		return o, err
	}
	if o.SecretName == "" {
		return o, contract.Fieldf(fieldSecretName, "is required for kubernetes: the name of the kubernetes.io/tls Secret to write")
	}
	if len(o.namespaces()) == 0 {
		return o, contract.Fieldf(fieldNamespace, "is required for kubernetes: the namespace of the Secret (or namespaces: [a, b] for the same Secret in several)")
	}
	const notFile = "is not used by kubernetes: a Secret has no path, mode or owner on a machine (tls.crt holds the leaf and chain, tls.key the key): remove it"
	const noCommand = "is not used by kubernetes: a Secret is written through the API server and nothing runs a command (whatever reads the Secret picks it up): remove it"
	for _, f := range []struct {
		field string
		set   bool
		msg   string
	}{
		{"cert_path", cfg.CertPath != "", notFile},
		{"key_path", cfg.KeyPath != "", notFile},
		{"chain_path", cfg.ChainPath != "", notFile},
		{"cert_file_mode", cfg.CertFileMode != nil, notFile},
		{"key_file_mode", cfg.KeyFileMode != nil, notFile},
		{"chain_file_mode", cfg.ChainFileMode != nil, notFile},
		{"cert_owner", cfg.CertOwner != "", notFile},
		{"key_owner", cfg.KeyOwner != "", notFile},
		{"chain_owner", cfg.ChainOwner != "", notFile},
		{"ssh", cfg.SSH != nil, "is not used by kubernetes: the certctl worker reaches the API server with kubeconfig_path (or in-cluster), not over SSH: remove it"},
		{"backup_retention", cfg.BackupRetention != nil, "is not used by kubernetes: the previous Secret is kept inside the deploy's own (encrypted) history, not as backup files: remove it"},
		{"validate_command", len(cfg.ValidateCommand) > 0, noCommand},
		{"reload_command", len(cfg.ReloadCommand) > 0, noCommand},
		{"reload_signal", cfg.ReloadSignal != "", noCommand},
		{"pid_file", cfg.PIDFile != "", noCommand},
		{"command_timeout", cfg.CommandTimeout != nil, noCommand},
	} {
		if f.set {
			return o, &contract.FieldError{Field: "target_config." + f.field, Msg: f.msg}
		}
	}
	return o, nil
}

// Ref names one Secret: "namespace/name".
func Ref(namespace, name string) string { return namespace + "/" + name }

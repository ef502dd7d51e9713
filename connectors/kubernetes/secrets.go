package kubernetes

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
)

// FieldManager names certctl's writes in each Secret's managedFields.
const FieldManager = "certctl"

// Secrets runs a deploy's steps against one target's Secrets.
type Secrets struct {
	cfg    Config
	client k8s.Interface
	// where says which API server, for errors.
	where string
}

// Open decodes the target's own fields and builds a client from its
// kubeconfig (and context) or, without kubeconfig_path, the in-cluster
// service account. Nothing is asked of the API server yet.
func Open(t target.Target) (*Secrets, error) {
	var c Connector
	c.Name = Name
	o, err := c.check(t.Config)
	if err != nil {
		return nil, contract.InvalidField(err, "target_config")
	}
	var rc *rest.Config
	if o.KubeconfigPath == "" {
		if rc, err = rest.InClusterConfig(); err != nil {
			return nil, contract.Invalid(fieldKubeconfig, fmt.Sprintf("is not set and this worker is not in a cluster (%v): set kubeconfig_path to a kubeconfig on the certctl worker's machine", err))
		}
	} else {
		rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: o.KubeconfigPath}
		overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
		if rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig(); err != nil {
			field := fieldKubeconfig
			if o.Context != "" {
				field = fieldKubeconfig + " / " + fieldContext
			}
			return nil, contract.Invalid(field, fmt.Sprintf("%v: point kubeconfig_path at a readable kubeconfig on the certctl worker's machine (and context at one of its contexts)", err))
		}
	}
	return New(o, rc)
}

// New is Secrets for cfg through the API server rc names.
func New(cfg Config, rc *rest.Config) (*Secrets, error) {
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "certctl"
	cs, err := k8s.NewForConfig(rc)
	if err != nil {
		return nil, contract.Invalid(fieldKubeconfig, err.Error())
	}
	return &Secrets{cfg: cfg, client: cs, where: rc.Host}, nil
}

// Data is what a deploy writes in each Secret: tls.crt the leaf then its
// chain, tls.key the key.
func Data(b *material.Bundle) map[string][]byte {
	return map[string][]byte{
		corev1.TLSCertKey:       append(b.LeafPEM(), b.ChainPEM()...),
		corev1.TLSPrivateKeyKey: b.KeyPEM(),
	}
}

// Planned is one Secret as Plan found it.
type Planned struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Exists    bool   `json:"exists"`
	// ResourceVersion is the Secret's when planned: Backup, Validate and
	// Commit write only over that one.
	ResourceVersion string `json:"resource_version,omitempty"`
	// SHA256 is Digest of what the deploy writes; CurrentSHA256 of what
	// the Secret holds now.
	SHA256        string `json:"sha256"`
	CurrentSHA256 string `json:"current_sha256,omitempty"`
	// Leaf is the SHA-256 of the first certificate in the Secret's tls.crt
	// now, when it has one.
	Leaf string `json:"leaf,omitempty"`
}

// Ref is "namespace/name".
func (p Planned) Ref() string { return Ref(p.Namespace, p.Name) }

// Prior is a Secret as it was before the deploy: what Rollback restores. It
// holds a private key: carry it only inside step results (encrypted by the
// codec), never in a log, an error or a workflow's result.
type Prior struct {
	Namespace       string            `json:"namespace"`
	Name            string            `json:"name"`
	Exists          bool              `json:"exists"`
	ResourceVersion string            `json:"resource_version,omitempty"`
	Data            map[string][]byte `json:"data,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

// String names the Secret, never its data.
func (p Prior) String() string { return Ref(p.Namespace, p.Name) }

// GoString names the Secret, never its data (%#v).
func (p Prior) GoString() string { return "kubernetes.Prior(" + p.String() + ")" }

// Digest is the SHA-256 of what a deploy of cfg manages in a Secret: its
// type, tls.crt, tls.key, and the values of the labels and annotations cfg
// sets (a label cfg names that someone changed is work to do, not a skip).
func (c Config) Digest(typ corev1.SecretType, data map[string][]byte, labels, annotations map[string]string) string {
	pick := func(want, have map[string]string) map[string]string {
		m := map[string]string{}
		for k := range want {
			if v, ok := have[k]; ok {
				m[k] = v
			}
		}
		return m
	}
	b, _ := json.Marshal(struct {
		Type        corev1.SecretType
		Crt, Key    []byte
		Labels      map[string]string
		Annotations map[string]string
	}{typ, data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey], pick(c.Labels, labels), pick(c.Annotations, annotations)})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s *Secrets) digestOf(sec *corev1.Secret) string {
	return s.cfg.Digest(sec.Type, sec.Data, sec.Labels, sec.Annotations)
}

// want is the digest of a Secret holding data with cfg's labels.
func (s *Secrets) want(data map[string][]byte) string {
	return s.cfg.Digest(corev1.SecretTypeTLS, data, s.cfg.Labels, s.cfg.Annotations)
}

// Namespaces are the target's, in order.
func (s *Secrets) Namespaces() []string { return s.cfg.namespaces() }

// Plan reads each Secret: whether it exists, its resourceVersion and
// digest against data's. A Secret of another type than kubernetes.io/tls
// is InvalidInput (a Secret's type cannot change).
func (s *Secrets) Plan(ctx context.Context, data map[string][]byte) ([]Planned, error) {
	want := s.want(data)
	var out []Planned
	for _, ns := range s.Namespaces() {
		p := Planned{Namespace: ns, Name: s.cfg.SecretName, SHA256: want}
		sec, err := s.get(ctx, ns)
		switch {
		case apierrors.IsNotFound(err):
			if err := s.namespaceExists(ctx, ns, err); err != nil {
				return out, err
			}
		case err != nil:
			return out, s.typed("get", ns, err)
		default:
			if sec.Type != corev1.SecretTypeTLS {
				return out, contract.Invalid(fieldSecretName, fmt.Sprintf("Secret %s exists with type %q, not %q, and a Secret's type cannot change: delete it, or name another secret_name",
					p.Ref(), sec.Type, corev1.SecretTypeTLS))
			}
			p.Exists, p.ResourceVersion, p.CurrentSHA256 = true, sec.ResourceVersion, s.digestOf(sec)
			if c, err := material.FirstCertificate(sec.Data[corev1.TLSCertKey]); err == nil {
				p.Leaf = material.Fingerprint(c.Raw)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// Matches reports whether every Secret already holds what the deploy writes.
func Matches(planned []Planned) bool {
	for _, p := range planned {
		if p.CurrentSHA256 != p.SHA256 {
			return false
		}
	}
	return len(planned) > 0
}

// Backup reads each Secret again, at its planned resourceVersion (another
// is ConcurrentChange), and returns what it holds.
func (s *Secrets) Backup(ctx context.Context, planned []Planned) ([]Prior, error) {
	var out []Prior
	for _, p := range planned {
		pr := Prior{Namespace: p.Namespace, Name: p.Name}
		sec, err := s.get(ctx, p.Namespace)
		switch {
		case apierrors.IsNotFound(err) && !p.Exists:
		case err != nil && !apierrors.IsNotFound(err):
			return out, s.typed("get", p.Namespace, err)
		default:
			if !p.Exists || sec == nil || sec.ResourceVersion != p.ResourceVersion {
				return out, s.changed(p, sec)
			}
			pr.Exists, pr.ResourceVersion = true, sec.ResourceVersion
			pr.Data, pr.Labels, pr.Annotations = sec.Data, sec.Labels, sec.Annotations
		}
		out = append(out, pr)
	}
	return out, nil
}

// Validate asks the API server to take each write without making it
// (a server-side dry run: admission, RBAC, quotas, the planned
// resourceVersion).
func (s *Secrets) Validate(ctx context.Context, planned []Planned, data map[string][]byte) error {
	for _, p := range planned {
		if _, err := s.write(ctx, p, data, []string{metav1.DryRunAll}); err != nil {
			return err
		}
	}
	return nil
}

// Commit writes each Secret in order: an update at the planned
// resourceVersion, or a create. It returns the Secrets that hold data now; a
// retry finding a Secret already holding it (its earlier attempt wrote it)
// counts it. On an error the Secrets before it were written: Rollback
// restores them (all of them or none).
func (s *Secrets) Commit(ctx context.Context, planned []Planned, data map[string][]byte) ([]string, error) {
	var done []string
	for _, p := range planned {
		if _, err := s.write(ctx, p, data, nil); err != nil {
			if cur, gerr := s.get(ctx, p.Namespace); gerr == nil && s.digestOf(cur) == p.SHA256 {
				done = append(done, p.Ref())
				continue
			}
			return done, err
		}
		done = append(done, p.Ref())
	}
	return done, nil
}

// write updates (at the planned resourceVersion) or creates p's Secret
// with data, keeping its other data keys, labels and annotations and
// setting the target's.
func (s *Secrets) write(ctx context.Context, p Planned, data map[string][]byte, dryRun []string) (*corev1.Secret, error) {
	api := s.client.CoreV1().Secrets(p.Namespace)
	if !p.Exists {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: maps.Clone(s.cfg.Labels), Annotations: maps.Clone(s.cfg.Annotations)},
			Type:       corev1.SecretTypeTLS,
			Data:       maps.Clone(data),
		}
		out, err := api.Create(ctx, sec, metav1.CreateOptions{DryRun: dryRun, FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			cur, _ := s.get(ctx, p.Namespace)
			return nil, s.changed(p, cur)
		}
		return out, s.typed("create", p.Namespace, err)
	}
	cur, err := s.get(ctx, p.Namespace)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, s.typed("get", p.Namespace, err)
	}
	if err != nil || cur.ResourceVersion != p.ResourceVersion {
		return nil, s.changed(p, cur)
	}
	sec := cur.DeepCopy()
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	maps.Copy(sec.Data, data)
	if len(s.cfg.Labels) > 0 && sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	maps.Copy(sec.Labels, s.cfg.Labels)
	if len(s.cfg.Annotations) > 0 && sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	maps.Copy(sec.Annotations, s.cfg.Annotations)
	// The precondition: the server refuses (409) if the Secret changed
	// since the plan read it.
	sec.ResourceVersion = p.ResourceVersion
	out, err := api.Update(ctx, sec, metav1.UpdateOptions{DryRun: dryRun, FieldManager: FieldManager})
	if apierrors.IsConflict(err) {
		cur, _ := s.get(ctx, p.Namespace)
		return nil, s.changed(p, cur)
	}
	return out, s.typed("update", p.Namespace, err)
}

// Verify reads each Secret back and compares its digest with the planned
// one: a mismatch is VerifyMismatch naming the Secret.
func (s *Secrets) Verify(ctx context.Context, planned []Planned) error {
	for _, p := range planned {
		sec, err := s.get(ctx, p.Namespace)
		if err != nil {
			return s.typed("get", p.Namespace, err)
		}
		if got := s.digestOf(sec); got != p.SHA256 {
			return mismatchErr("Secret %s on %s holds %s, not %s (what this deploy wrote)", p.Ref(), s.where, short(got), short(p.SHA256))
		}
	}
	return nil
}

// VerifyServed reads each Secret back and checks what a reader of it gets:
// tls.crt's first certificate is the leaf expected (its SHA-256), followed by
// chain's intermediates when chain (leaf first) is given, and tls.key is that
// leaf's key. Anything else is VerifyMismatch naming the Secret.
func (s *Secrets) VerifyServed(ctx context.Context, expected string, chain []material.CertRef) error {
	for _, ns := range s.Namespaces() {
		ref := Ref(ns, s.cfg.SecretName)
		sec, err := s.get(ctx, ns)
		if err != nil {
			return s.typed("get", ns, err)
		}
		b, err := material.Parse(material.Material{CertPEM: string(sec.Data[corev1.TLSCertKey]), KeyPEM: string(sec.Data[corev1.TLSPrivateKeyKey])})
		if err != nil {
			return mismatchErr("Secret %s on %s: %v", ref, s.where, err)
		}
		got := material.Refs(append([]*x509.Certificate{b.Leaf}, b.Chain...)...)
		switch {
		case got[0].SHA256 != expected:
			return mismatchErr("Secret %s on %s holds leaf %s, not %s", ref, s.where, got[0], expected)
		case len(chain) > 0 && material.RefList(got) != material.RefList(chain):
			return mismatchErr("Secret %s on %s holds the chain %s, not %s", ref, s.where, material.RefList(got), material.RefList(chain))
		}
		if pub, ok := b.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(b.Leaf.PublicKey) {
			return mismatchErr("Secret %s on %s: tls.key is not the key of the leaf in tls.crt", ref, s.where)
		}
	}
	return nil
}

// Rollback puts each Secret back as prior had it, where it holds what the
// deploy wrote (SHA256): its old data, labels and annotations restored, or,
// when there was none before, the Secret deleted (at the UID and
// resourceVersion read: never one someone changed since). A Secret that
// does not hold what the deploy wrote holds nothing of this deploy (it was
// never written, was restored by an earlier attempt, or someone else wrote
// it since) and is left as it is: a rollback never overwrites a foreign
// change either.
func (s *Secrets) Rollback(ctx context.Context, planned []Planned, priors []Prior) (restored, removed []string, err error) {
	byRef := map[string]Prior{}
	for _, pr := range priors {
		byRef[pr.String()] = pr
	}
	for _, p := range planned {
		pr, ok := byRef[p.Ref()]
		if !ok {
			// No backup: the deploy stopped before Backup, so it wrote nothing.
			continue
		}
		api := s.client.CoreV1().Secrets(p.Namespace)
		cur, err := s.get(ctx, p.Namespace)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return restored, removed, s.rollbackErr("get", p.Namespace, err)
		case s.digestOf(cur) != p.SHA256:
			continue
		}
		if !pr.Exists {
			rv := cur.ResourceVersion
			err := api.Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID, ResourceVersion: &rv}})
			if err != nil && !apierrors.IsNotFound(err) {
				return restored, removed, s.rollbackErr("delete", p.Namespace, err)
			}
			removed = append(removed, p.Ref())
			continue
		}
		sec := cur.DeepCopy()
		sec.Data, sec.Labels, sec.Annotations = pr.Data, pr.Labels, pr.Annotations
		if _, err := api.Update(ctx, sec, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			return restored, removed, s.rollbackErr("update", p.Namespace, err)
		}
		restored = append(restored, p.Ref())
	}
	return restored, removed, nil
}

func (s *Secrets) get(ctx context.Context, ns string) (*corev1.Secret, error) {
	return s.client.CoreV1().Secrets(ns).Get(ctx, s.cfg.SecretName, metav1.GetOptions{})
}

// namespaceExists tells a missing namespace from a missing Secret: the
// Secret's 404 names its kind ("secrets"); a namespace the server does
// not know is checked with a get on it, which the RBAC of docs/ does not
// grant, so a refused namespace get counts as the namespace existing.
func (s *Secrets) namespaceExists(ctx context.Context, ns string, notFound error) error {
	_, err := s.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return typedErr(contract.NamespaceNotFound, "namespace %q does not exist on %s: create it, or name an existing one in %s", ns, s.where, fieldNamespace)
	}
	return nil
}

// changed is the ConcurrentChange for p's Secret, found as cur.
func (s *Secrets) changed(p Planned, cur *corev1.Secret) error {
	switch {
	case cur == nil && p.Exists:
		return typedErr(contract.ConcurrentChange, "Secret %s on %s was deleted by someone else after the plan read it (resourceVersion %s): nothing written over it; deploy again", p.Ref(), s.where, p.ResourceVersion)
	case cur == nil:
		return typedErr(contract.ConcurrentChange, "Secret %s on %s changed after the plan read it: nothing written over it; deploy again", p.Ref(), s.where)
	case !p.Exists:
		return typedErr(contract.ConcurrentChange, "Secret %s on %s was created by someone else after the plan found none (resourceVersion %s): nothing written over it; deploy again", p.Ref(), s.where, cur.ResourceVersion)
	}
	return typedErr(contract.ConcurrentChange, "Secret %s on %s was changed by someone else after the plan read it (resourceVersion %s, now %s): nothing written over it; deploy again", p.Ref(), s.where, p.ResourceVersion, cur.ResourceVersion)
}

// typed turns an API error of verb on Secrets in ns into a typed,
// non-retryable application error where retrying cannot help (forbidden,
// a namespace that does not exist, refused by the server as invalid);
// others (timeouts, the server unavailable) stay retryable.
func (s *Secrets) typed(verb, ns string, err error) error {
	if err == nil {
		return nil
	}
	ref := Ref(ns, s.cfg.SecretName)
	switch {
	case apierrors.IsForbidden(err):
		return typedErr(contract.Forbidden, "%s on %s refused %s of secrets in namespace %q (Secret %s): %s; grant the credentials of %s the verb %q on secrets in %q (a Role and RoleBinding: docs/connectors/kubernetes.md)",
			verb, s.where, verb, ns, ref, message(err), fieldKubeconfig, verb, ns)
	case apierrors.IsUnauthorized(err):
		return typedErr(contract.Forbidden, "%s on %s: the credentials of %s were not accepted (%s): renew the token or certificate in the kubeconfig", verb, s.where, fieldKubeconfig, message(err))
	case apierrors.IsNotFound(err) && (verb == "create" || verb == "update"):
		return typedErr(contract.NamespaceNotFound, "%s of Secret %s on %s: %s: create namespace %q, or name an existing one in %s", verb, ref, s.where, message(err), ns, fieldNamespace)
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		return typedErr(contract.ValidateFailed, "%s of Secret %s on %s was refused as invalid: %s", verb, ref, s.where, message(err))
	}
	return fmt.Errorf("%s of Secret %s on %s: %w", verb, ref, s.where, err)
}

func (s *Secrets) rollbackErr(verb, ns string, err error) error {
	e := s.typed(verb, ns, err)
	if contract.Of(e) != "" {
		return rollbackFailed(errMessage(e))
	}
	return e
}

func message(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	return err.Error()
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return sum
}

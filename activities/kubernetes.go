package activities

import (
	"context"
	"fmt"
	"strings"

	"go.temporal.io/sdk/activity"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/kubernetes"
	"github.com/certctl/certctl/failpoint"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/probe"
	"github.com/certctl/certctl/target"
)

// store is a target whose storage is an API, not files on a machine (a
// Kubernetes Secret): each step hands it its input whole, at its top, and
// the file pipeline below it does not run. The workflow is the same; so are
// the step names, the outcomes and their promises.
type store interface {
	Plan(ctx context.Context, in PlanInput) (Plan, error)
	Backup(ctx context.Context, in StageInput) (Backups, error)
	Stage(ctx context.Context, in StageInput) (Staged, error)
	Validate(ctx context.Context, in ValidateInput) (ValidateResult, error)
	Commit(ctx context.Context, in CommitInput) (CommitResult, error)
	// Verify reads back; the caller probes post_deploy_verify.endpoint
	// after it when one is set.
	Verify(ctx context.Context, in VerifyInput) (VerifyResult, error)
	Rollback(ctx context.Context, in RollbackInput) (RollbackResult, error)
	Cleanup(ctx context.Context, in CleanupInput) (CleanupResult, error)
}

// store is t's store, when its storage is an API.
func (a *Activities) store(t target.Target) (store, bool) {
	if t.TargetType == kubernetes.Name {
		return kubeStore{a}, true
	}
	return nil, false
}

// kubeStore runs the steps of a kubernetes target through package
// connectors/kubernetes. Plan.Files are its Secrets, one per namespace
// (Path "namespace/name", SHA256 the digest of what the deploy writes).
type kubeStore struct{ a *Activities }

func (k kubeStore) open(t target.Target) (*kubernetes.Secrets, error) {
	return kubernetes.Open(t)
}

// preflight is Preflight for a kubernetes target (which has no host): the
// target, its connector's fields and the material, before any call.
func (k kubeStore) preflight(in PlanInput) (*material.Bundle, error) {
	t := in.Target
	if err := t.Validate(); err != nil {
		return nil, invalid(err)
	}
	c, err := connectorOf(t)
	if err != nil {
		return nil, err
	}
	if err := c.Check(t.Config); err != nil {
		return nil, invalid(err)
	}
	b, err := material.Parse(in.Material)
	if err != nil {
		return nil, invalid(err)
	}
	host := ""
	if t.Config.VerifyEnabled() && t.Config.PostDeployVerify.Endpoint != "" {
		host = probe.Host(t.Config.PostDeployVerify)
	}
	if err := b.Check(in.clock(k.a.now()), host); err != nil {
		return nil, invalid(err)
	}
	return b, nil
}

func (k kubeStore) Plan(ctx context.Context, in PlanInput) (Plan, error) {
	b, err := k.preflight(in)
	if err != nil {
		return Plan{}, err
	}
	s, err := k.open(in.Target)
	if err != nil {
		return Plan{}, err
	}
	planned, err := s.Plan(ctx, kubernetes.Data(b))
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Action: ActionDeploy, LeafSHA256: b.LeafSHA256(), Chain: b.ServedChain()}
	served := ""
	for i, sp := range planned {
		p.Files = append(p.Files, PlannedFile{Role: kubernetes.RoleSecret, Path: sp.Ref(), SHA256: sp.SHA256, Exists: sp.Exists,
			CurrentSHA256: sp.CurrentSHA256, HoldsKey: true, ResourceVersion: sp.ResourceVersion, ModeFrom: "kubernetes", OwnerFrom: "kubernetes"})
		// The leaf a reader gets now, when every Secret holds the same one:
		// after a rollback, verify expects it again.
		if i == 0 || sp.Leaf == served {
			served = sp.Leaf
		} else {
			served = ""
		}
	}
	p.ServedSHA256 = served
	if kubernetes.Matches(planned) {
		p.Action = ActionSkip
	}
	failpoint.Hit("plan:done")
	return p, nil
}

// planned is p's Secrets as package kubernetes has them.
func (k kubeStore) planned(p Plan) ([]kubernetes.Planned, error) {
	var out []kubernetes.Planned
	for _, f := range p.Files {
		ns, name, ok := strings.Cut(f.Path, "/")
		if !ok || f.Role != kubernetes.RoleSecret {
			return nil, mismatch("plan names %s %q, not a Secret namespace/name", f.Role, f.Path)
		}
		out = append(out, kubernetes.Planned{Namespace: ns, Name: name, Exists: f.Exists, ResourceVersion: f.ResourceVersion, SHA256: f.SHA256, CurrentSHA256: f.CurrentSHA256})
	}
	return out, nil
}

// secrets opens the target's Secrets and reads the plan's.
func (k kubeStore) secrets(r Request, p Plan) (*kubernetes.Secrets, []kubernetes.Planned, error) {
	s, err := k.open(r.Target)
	if err != nil {
		return nil, nil, err
	}
	planned, err := k.planned(p)
	if err != nil {
		return nil, nil, err
	}
	if len(planned) != len(s.Namespaces()) {
		return nil, nil, mismatch("plan names %d Secret(s), the target %d", len(planned), len(s.Namespaces()))
	}
	for i, ns := range s.Namespaces() {
		if planned[i].Namespace != ns {
			return nil, nil, mismatch("plan names namespace %q where the target has %q", planned[i].Namespace, ns)
		}
	}
	return s, planned, nil
}

func (k kubeStore) Backup(ctx context.Context, in StageInput) (Backups, error) {
	s, planned, err := k.secrets(in.Request, in.Plan)
	if err != nil {
		return Backups{}, err
	}
	priors, err := s.Backup(ctx, planned)
	return Backups{Files: []Backup{}, Secrets: priors}, err
}

// Stage lays the material out as the Secrets' data, carried in its result
// to Validate and Commit; nothing is written anywhere.
func (k kubeStore) Stage(_ context.Context, in StageInput) (Staged, error) {
	b, err := k.preflight(in.PlanInput)
	if err != nil {
		return Staged{}, err
	}
	data := kubernetes.Data(b)
	st := Staged{Files: []StagedFile{}, Secret: data}
	for _, f := range in.Plan.Files {
		st.Files = append(st.Files, StagedFile{Path: f.Path, SHA256: f.SHA256})
	}
	return st, nil
}

// data is the staged Secret data, checked against the plan's digest.
func (k kubeStore) data(r Request, planned []kubernetes.Planned, st Staged) (map[string][]byte, error) {
	for _, p := range planned {
		if got := kubeDigest(r.Target, st.Secret); got != p.SHA256 {
			return nil, mismatch("the staged Secret data for %s is not the planned one", p.Ref())
		}
	}
	return st.Secret, nil
}

func kubeDigest(t target.Target, data map[string][]byte) string {
	own, _ := target.DecodeOwn[kubernetes.Config](t.Config, kubernetes.Name)
	return own.Digest("kubernetes.io/tls", data, own.Labels, own.Annotations)
}

// Validate is a server-side dry run of every write (the API server's
// admission, RBAC and the planned resourceVersion; nothing stored).
func (k kubeStore) Validate(ctx context.Context, in ValidateInput) (ValidateResult, error) {
	s, planned, err := k.secrets(in.Request, in.Plan)
	if err != nil {
		return ValidateResult{}, err
	}
	data, err := k.data(in.Request, planned, in.Staged)
	if err != nil {
		return ValidateResult{}, err
	}
	res := ValidateResult{ServerCheck: CheckStaged, Command: "server-side dry run (dryRun=All) of " + refs(planned)}
	return res, s.Validate(ctx, planned, data)
}

func (k kubeStore) Commit(ctx context.Context, in CommitInput) (CommitResult, error) {
	s, planned, err := k.secrets(in.Request, in.Plan)
	if err != nil {
		return CommitResult{}, err
	}
	data, err := k.data(in.Request, planned, in.Staged)
	if err != nil {
		return CommitResult{}, err
	}
	failpoint.Hit("commit:before")
	done, err := s.Commit(ctx, planned, data)
	return CommitResult{Committed: done}, err
}

func (k kubeStore) Verify(ctx context.Context, in VerifyInput) (VerifyResult, error) {
	res := VerifyResult{Endpoint: "kubernetes: " + strings.Join(kubeRefs(in.Target), ", "), Served: in.Expected}
	if activity.IsActivity(ctx) {
		res.Attempt = activity.GetInfo(ctx).Attempt
	}
	s, err := k.open(in.Target)
	if err != nil {
		return res, err
	}
	return res, s.VerifyServed(ctx, in.Expected, in.ExpectedChain)
}

func (k kubeStore) Rollback(ctx context.Context, in RollbackInput) (RollbackResult, error) {
	s, planned, err := k.secrets(in.Request, in.Plan)
	if err != nil {
		return RollbackResult{}, err
	}
	restored, removed, err := s.Rollback(ctx, planned, in.Backups.Secrets)
	return RollbackResult{Restored: restored, Removed: removed}, err
}

// Cleanup has nothing to remove (nothing was staged on a disk, the backup
// lives in the history); it releases the lease when asked.
func (k kubeStore) Cleanup(ctx context.Context, in CleanupInput) (CleanupResult, error) {
	var res CleanupResult
	if in.Release {
		if err := k.a.leases().Release(ownerOf(ctx)); err != nil {
			return res, fmt.Errorf("release the lease: %w", err)
		}
		res.Released = true
	}
	return res, nil
}

func refs(planned []kubernetes.Planned) string {
	var r []string
	for _, p := range planned {
		r = append(r, p.Ref())
	}
	return strings.Join(r, ", ")
}

func kubeRefs(t target.Target) []string {
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		return nil
	}
	own, _ := target.DecodeOwn[kubernetes.Config](t.Config, kubernetes.Name)
	var r []string
	if kc, ok := c.(kubernetes.Connector); ok {
		for _, ns := range kc.KubernetesNamespaces(t.Config) {
			r = append(r, kubernetes.Ref(ns, own.SecretName))
		}
	}
	return r
}

// Package renewal holds the activities of renewal and approval: Audit (the
// append-only audit log), Issue (mint through the profile's issuer) and
// InspectDeployed (read the certificate a target holds, for a scheduled
// renewal's window check), and the environment the starter reads for them.
package renewal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certctl/certctl/audit"
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/issuers"
	_ "github.com/certctl/certctl/issuers/all"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/metrics"
	"github.com/certctl/certctl/profile"
	"github.com/certctl/certctl/safefs"
	"github.com/certctl/certctl/sshfs"
	"github.com/certctl/certctl/target"
)

// Environment read outside workflow code: EnvBypass by the workflow worker
// only (LoadProfile), never the starter; EnvApprovalTimeout by the starter.
const (
	// EnvBypass=true in the workflow worker's environment makes every
	// approval of its renewals auto-approve as system-bypass. Dev and CI
	// only: the worker logs a WARN at start when it is set.
	EnvBypass = "CERTCTL_APPROVAL_BYPASS"
	// EnvApprovalTimeout is how long a request waits for its decisions
	// (a Go duration; default 168h).
	EnvApprovalTimeout = "CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT"
)

// DefaultApprovalTimeout is a request's life without a decision.
const DefaultApprovalTimeout = 168 * time.Hour

// BypassFromEnv reads CERTCTL_APPROVAL_BYPASS (strconv.ParseBool; unset is false).
func BypassFromEnv() (bool, error) {
	v := os.Getenv(EnvBypass)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", EnvBypass, v)
	}
	return b, nil
}

// ApprovalTimeoutFromEnv reads CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT, else
// the default.
func ApprovalTimeoutFromEnv() (time.Duration, error) {
	v := os.Getenv(EnvApprovalTimeout)
	if v == "" {
		return DefaultApprovalTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a positive duration such as 24h", EnvApprovalTimeout, v)
	}
	return d, nil
}

// Activities are renewal's activities. Register a *Activities (New) with the
// certctl worker; the host workers register it too, for InspectDeployed.
type Activities struct {
	// AuditLog is the audit log's path (audit.PathFromEnv on the worker).
	AuditLog string
	// Now is the clock for issuing; nil means time.Now.
	Now func() time.Time
	// ProfilesDir is where LoadProfile reads <profile_id>.yaml; "" means
	// CERTCTL_PROFILES_DIR, else /etc/certctl/profiles.
	ProfilesDir string

	once sync.Once
	log  *audit.Log
}

// New returns the activities writing the audit log at auditLog.
func New(auditLog string) *Activities { return &Activities{AuditLog: auditLog} }

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// AuditResult says whether this attempt wrote the line (false: an earlier
// attempt had).
type AuditResult struct {
	Written bool `json:"written"`
}

// Audit appends one event to the audit log, once: a retry finds the line by
// its id. The line that closes a request counts in
// certctl_approval_decisions_total and certctl_approval_pending_age_seconds.
func (a *Activities) Audit(_ context.Context, ev audit.Event) (AuditResult, error) {
	a.once.Do(func() {
		path := a.AuditLog
		if path == "" {
			path = audit.PathFromEnv()
		}
		a.log = &audit.Log{Path: path}
	})
	written, err := a.log.Append(ev)
	if err != nil {
		return AuditResult{}, err
	}
	if written && ev.Closing() {
		metrics.ApprovalDecisionsTotal.WithLabelValues(ev.Event, ev.ProfileID).Inc()
		metrics.ApprovalPendingAge.Observe(ev.PendingSeconds)
	}
	return AuditResult{Written: written}, nil
}

// IssueInput is what Issue mints: the profile's certificate fields, as the
// workflow read them. Issue uses the installed profile's own (ProfileID).
type IssueInput struct {
	RequestID string          `json:"request_id"`
	CertID    string          `json:"cert_id"`
	ProfileID string          `json:"profile_id"`
	Issuer    profile.Issuer  `json:"issuer"`
	Subject   profile.Subject `json:"subject"`
	SANs      []string        `json:"sans"`
	KeyType   string          `json:"key_type"`
	Validity  target.Duration `json:"validity"`
}

// IssueResult carries the new material (the key too: payloads are
// encrypted) and facts about the leaf.
type IssueResult struct {
	Material   material.Material `json:"material"`
	LeafSHA256 string            `json:"leaf_sha256"`
	Serial     string            `json:"serial"`
	Issuer     string            `json:"issuer"`
	NotBefore  time.Time         `json:"not_before"`
	NotAfter   time.Time         `json:"not_after"`
}

// Issue mints a key and a certificate through the profile's issuer. A bad
// issuer configuration is InvalidInput (not retried); errors never carry key
// bytes.
//
// The issuer and the certificate's fields are those of the profile
// in.ProfileID installed on this worker, never the input's: whoever can
// schedule an activity in the namespace cannot have this worker sign with
// a CA key of their choosing, or for names the profile does not hold.
func (a *Activities) Issue(_ context.Context, in IssueInput) (IssueResult, error) {
	p, err := profile.LoadID(a.profilesDir(), in.ProfileID)
	if err != nil {
		return IssueResult{}, contract.Invalid("profile_id", strings.TrimPrefix(err.Error(), "profile_id: "))
	}
	p.ApplyDefaults()
	in.Issuer, in.Subject, in.SANs, in.KeyType, in.Validity = p.Issuer, p.Subject, p.SANs, p.KeyType, p.Validity
	iss, err := issuers.Get(in.Issuer.Type)
	if err != nil {
		return IssueResult{}, contract.Invalid("issuer.type", err.Error())
	}
	is, err := iss.Issue(in.Issuer, issuers.Request{Subject: in.Subject, SANs: in.SANs, KeyType: in.KeyType, Validity: in.Validity.D()}, a.now())
	if err != nil {
		return IssueResult{}, issueErr(err)
	}
	return IssueResult{
		Material:   is.Material,
		LeafSHA256: material.Fingerprint(is.Leaf.Raw),
		Serial:     fmt.Sprintf("%x", is.Leaf.SerialNumber),
		Issuer:     is.Issuer,
		NotBefore:  is.NotBefore.UTC(),
		NotAfter:   is.NotAfter.UTC(),
	}, nil
}

func issueErr(err error) error {
	var fe *contract.FieldError
	if errors.As(err, &fe) {
		return contract.Invalid(fe.Field, fe.Msg)
	}
	return err
}

// Deployed is what a target holds now.
type Deployed struct {
	TargetID   string    `json:"target_id"`
	Path       string    `json:"path"`
	Exists     bool      `json:"exists"`
	LeafSHA256 string    `json:"leaf_sha256,omitempty"`
	NotAfter   time.Time `json:"not_after,omitempty"`
	// Problem says why the file could not be read as a certificate (then
	// the renewal is due).
	Problem string `json:"problem,omitempty"`
}

// InspectDeployed reads the leaf in the file the target's connector puts it
// (connectors.LeafFile: cert_path, haproxy's pem_path …), run on the
// target's queue: its host's worker. A missing or unreadable file is
// reported, not an error: it makes the renewal due.
func (a *Activities) InspectDeployed(ctx context.Context, t target.Target) (Deployed, error) {
	d := Deployed{TargetID: t.TargetID}
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		d.Problem = err.Error()
		return d, nil
	}
	leaf, ok := connectors.LeafFile(c, t.Config)
	if !ok {
		d.Problem = "the target names no file for the certificate"
		return d, nil
	}
	d.Path = leaf.Path
	var data []byte
	if t.Remote() {
		// An agentless SSH target: its file is on the remote host.
		data, err = readRemoteLeafFile(ctx, t.Config.SSH, d.Path)
	} else {
		data, err = readLeafFile(d.Path)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.Problem = "no certificate deployed yet"
		return d, nil
	case errors.Is(err, safefs.ErrSymlink) || errors.Is(err, safefs.ErrNotRegular) || errors.Is(err, errTooLarge):
		d.Problem = err.Error()
		return d, nil
	case err != nil:
		return d, err
	}
	d.Exists = true
	cert, err := material.FirstCertificate(data)
	if err != nil {
		d.Problem = err.Error()
		return d, nil
	}
	d.LeafSHA256, d.NotAfter = material.Fingerprint(cert.Raw), cert.NotAfter.UTC()
	return d, nil
}

// maxLeafFile bounds what InspectDeployed reads: more than any file a
// connector writes (each material field is at most 64 KiB).
const maxLeafFile = 1 << 20

var errTooLarge = fmt.Errorf("is larger than %d bytes: not a file certctl wrote", maxLeafFile)

// readLeafFile reads path as a deploy step would: through its directory
// opened without following links, only a regular file (never a link, a FIFO
// or a device), at most maxLeafFile bytes. It runs as root on the host.
// readRemoteLeafFile reads path on the remote host of s, over SFTP through
// the worker's connection pool (no link on the way or at the file).
func readRemoteLeafFile(ctx context.Context, s *target.SSH, path string) ([]byte, error) {
	c, err := sshfs.Default.Get(ctx, s)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	dir, err := c.OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	data, _, err := dir.ReadLimited(filepath.Base(path), maxLeafFile)
	if errors.Is(err, sshfs.ErrTooLarge) {
		return nil, fmt.Errorf("%s %w", path, errTooLarge)
	}
	return data, err
}

func readLeafFile(path string) ([]byte, error) {
	dir, err := safefs.OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	f, _, err := dir.Open(filepath.Base(path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLeafFile+1))
	if err == nil && len(data) > maxLeafFile {
		return nil, fmt.Errorf("%s %w", path, errTooLarge)
	}
	return data, err
}

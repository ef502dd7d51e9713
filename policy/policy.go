// Package policy is a worker's host policy: the file, owned by the host's
// operator, that says which paths a deploy may write and which commands it
// may run there. Writing to the Temporal namespace must not make anyone root
// on a host: a host worker checks every step's target against this file and
// refuses, as PolicyRefused naming the rule, whatever lies outside it.
//
//	allow_paths: [/etc/nginx/certs/, /etc/haproxy/]
//	allow_commands:
//	  - [nginx, -t]
//	  - [nginx, -s, reload]
//	allow_ssh_hosts: [web-1.example.com:22]
//	allow_kubernetes_namespaces: [shop]
//
// With no file every target is refused, and the refusal says where the file
// goes.
package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/strictyaml"
	"github.com/certctl/certctl/target"
)

// EnvPath names the policy file; DefaultPath is where it is when unset.
const (
	EnvPath     = "CERTCTL_WORKER_POLICY"
	DefaultPath = "/etc/certctl/worker.yaml"
)

// Wildcard, as the only element of an allow_commands entry (["*"]) or as an
// allow_ssh_hosts / allow_kubernetes_namespaces entry, matches anything: for
// dev and tests only (the worker WARNs at start).
const Wildcard = "*"

// MaxFileSize bounds a policy file.
const MaxFileSize = 64 << 10

// Policy is one host's policy file, as read.
type Policy struct {
	// File is where it was read from (or looked for): every refusal names it.
	File string `yaml:"-"`
	// Missing: there was no file; every target is refused.
	Missing bool `yaml:"-"`

	AllowPaths                []string   `yaml:"allow_paths"`
	AllowCommands             [][]string `yaml:"allow_commands"`
	AllowSSHHosts             []string   `yaml:"allow_ssh_hosts"`
	AllowKubernetesNamespaces []string   `yaml:"allow_kubernetes_namespaces"`
}

// PathFromEnv is CERTCTL_WORKER_POLICY, else DefaultPath.
func PathFromEnv() string {
	if p := os.Getenv(EnvPath); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads the policy file at path. A file that does not exist is not an
// error: the policy is Missing and refuses every target. A file that exists
// but cannot be read or is malformed is an error: the worker must not start
// on a policy it misread.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Policy{File: path, Missing: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("worker policy %s (%s): %w", path, EnvPath, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("worker policy %s (%s): %w", path, EnvPath, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("worker policy %s: larger than %d bytes", path, MaxFileSize)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("worker policy %s (%s): %w", path, EnvPath, err)
	}
	p.File = path
	return p, nil
}

// Parse reads a policy strictly (unknown fields refused) and checks it:
// allow_paths are absolute and hold no "..", allow_commands entries are
// non-empty argv prefixes and "*" stands alone.
func Parse(data []byte) (*Policy, error) {
	var p Policy
	if err := strictyaml.Decode(data, &p); err != nil {
		if msg, ok := strictyaml.Describe(err, "policy"); ok {
			return nil, errors.New(msg)
		}
		return nil, err
	}
	for i, a := range p.AllowPaths {
		if !filepath.IsAbs(a) || hasDotDot(a) || strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("allow_paths[%d]: %q must be an absolute path without \"..\"", i, a)
		}
		p.AllowPaths[i] = filepath.Clean(a)
	}
	for i, c := range p.AllowCommands {
		switch {
		case len(c) == 0:
			return nil, fmt.Errorf("allow_commands[%d]: is empty: give an argv prefix such as [nginx, -t]", i)
		case len(c) > 1 && contains(c, Wildcard):
			return nil, fmt.Errorf("allow_commands[%d]: \"*\" matches any command and must stand alone ([\"*\"])", i)
		}
		for j, a := range c {
			if a == "" {
				return nil, fmt.Errorf("allow_commands[%d][%d]: is empty", i, j)
			}
		}
	}
	return &p, nil
}

// Wildcards names the fields that allow anything, for the worker's WARN at
// start.
func (p *Policy) Wildcards() []string {
	var w []string
	for _, c := range p.AllowCommands {
		if len(c) == 1 && c[0] == Wildcard {
			w = append(w, "allow_commands")
			break
		}
	}
	if contains(p.AllowSSHHosts, Wildcard) {
		w = append(w, "allow_ssh_hosts")
	}
	if contains(p.AllowKubernetesNamespaces, Wildcard) {
		w = append(w, "allow_kubernetes_namespaces")
	}
	return w
}

// Refused is a target the policy does not allow. Rule is the policy field
// (allow_paths, allow_commands, or "file" when there is none); Field and
// Value are what the target asked for.
type Refused struct {
	File   string
	Rule   string
	Field  string
	Value  string
	Reason string
}

func (r *Refused) Error() string {
	switch r.Rule {
	case "file":
		return fmt.Sprintf("refused by the host policy: no policy file at %s, so this worker refuses every target; "+
			"write one there (or point %s at it) listing allow_paths and allow_commands", r.File, EnvPath)
	case "target", "target_type":
		return fmt.Sprintf("refused by the host policy %s: %s %s %s", r.File, r.Field, r.Value, r.Reason)
	}
	return fmt.Sprintf("refused by the host policy %s: %s %s %s; add it to %s on this host if it is meant to be allowed",
		r.File, r.Field, r.Value, r.Reason, r.Rule)
}

// CheckTarget allows a target whose every destination (and every file a
// connectors.CurrentLayout reads) lies under an allow_paths entry and whose validate and reload commands (the connector's
// defaults included) each start with an allow_commands entry.
func (p *Policy) CheckTarget(t target.Target) error {
	if p.Missing {
		return &Refused{File: p.File, Rule: "file"}
	}
	c, err := connectors.Get(t.TargetType)
	if err != nil {
		return &Refused{File: p.File, Rule: "target_type", Field: "target_type", Value: fmt.Sprintf("%q", t.TargetType), Reason: "is not a connector this worker knows"}
	}
	if kc, ok := c.(KubernetesConnector); ok {
		return p.CheckNamespaces(kc.KubernetesNamespaces(t.Config))
	}
	if t.Config.SSH != nil {
		// Agentless over SSH: the host first, then its paths and commands
		// under the same allow_paths and allow_commands.
		if err := p.CheckSSHHost("target_config.ssh.address", t.Config.SSH.Address); err != nil {
			return err
		}
	}
	paths := c.Destinations(t.Config)
	if cl, ok := c.(connectors.CurrentLayout); ok {
		// The files its layout reads (a keystore's password files) too:
		// the worker reads nothing on a namespace writer's word that it
		// would not write.
		paths = append(paths, cl.Reads(t.Config)...)
	}
	for _, d := range paths {
		if err := p.CheckPath(d.Field, d.Path); err != nil {
			return err
		}
	}
	if err := p.CheckCommand("target_config.validate_command", connectors.ValidateCommand(c, t.Config)); err != nil {
		return err
	}
	return p.CheckCommand("target_config.reload_command", connectors.ReloadFor(c, t.Config).Command)
}

// KubernetesConnector is a connector that writes Kubernetes Secrets, in the
// namespaces it lists for a target: allow_kubernetes_namespaces bounds them.
// It writes no file and runs no command.
type KubernetesConnector interface {
	KubernetesNamespaces(cfg target.Config) []string
}

// CheckNamespaces allows namespaces that are each an
// allow_kubernetes_namespaces entry ("*": any). With the field left out,
// every Kubernetes target is refused: whatever the worker's credentials
// allow, it writes Secrets only where its operator said.
func (p *Policy) CheckNamespaces(namespaces []string) error {
	if p.Missing {
		return &Refused{File: p.File, Rule: "file"}
	}
	for i, ns := range namespaces {
		field := "target_config.namespace"
		if len(namespaces) > 1 {
			field = fmt.Sprintf("target_config.namespaces[%d]", i)
		}
		if len(p.AllowKubernetesNamespaces) == 0 {
			return &Refused{File: p.File, Rule: "allow_kubernetes_namespaces", Field: field, Value: fmt.Sprintf("%q", ns),
				Reason: "is refused: the policy has no allow_kubernetes_namespaces, so this worker writes no Kubernetes Secret"}
		}
		if !contains(p.AllowKubernetesNamespaces, ns) && !contains(p.AllowKubernetesNamespaces, Wildcard) {
			return &Refused{File: p.File, Rule: "allow_kubernetes_namespaces", Field: field, Value: fmt.Sprintf("%q", ns),
				Reason: fmt.Sprintf("is none of allow_kubernetes_namespaces %v", p.AllowKubernetesNamespaces)}
		}
	}
	return nil
}

// CheckSSHHost allows an address (host:port) that allow_ssh_hosts lists
// (compared case-folded), or any when it lists "*". Without allow_ssh_hosts
// the worker reaches no host over SSH.
func (p *Policy) CheckSSHHost(field, address string) error {
	if p.Missing {
		return &Refused{File: p.File, Rule: "file"}
	}
	for _, h := range p.AllowSSHHosts {
		if h == Wildcard || strings.EqualFold(h, address) {
			return nil
		}
	}
	reason := fmt.Sprintf("is none of allow_ssh_hosts %v", p.AllowSSHHosts)
	if len(p.AllowSSHHosts) == 0 {
		reason = "is not allowed: the policy has no allow_ssh_hosts, so this worker reaches no host over SSH"
	}
	return &Refused{File: p.File, Rule: "allow_ssh_hosts", Field: field, Value: fmt.Sprintf("%q", address), Reason: reason}
}

// CheckPath allows an absolute path without ".." that is an allow_paths
// entry or lies beneath one, compared at a directory boundary on cleaned
// paths: /etc/nginx/certs2/x is not under /etc/nginx/certs/.
func (p *Policy) CheckPath(field, path string) error {
	if p.Missing {
		return &Refused{File: p.File, Rule: "file"}
	}
	refuse := func(reason string) error {
		return &Refused{File: p.File, Rule: "allow_paths", Field: field, Value: fmt.Sprintf("%q", path), Reason: reason}
	}
	if !filepath.IsAbs(path) || hasDotDot(path) || strings.ContainsRune(path, 0) {
		return refuse("is not an absolute path without \"..\"")
	}
	clean := filepath.Clean(path)
	for _, a := range p.AllowPaths {
		if under(clean, a) {
			return nil
		}
	}
	return refuse(fmt.Sprintf("lies under none of allow_paths %v", p.AllowPaths))
}

// CheckCommand allows an argv that starts with an allow_commands entry,
// element by element; ["*"] allows any. An empty argv (no command) is
// allowed: nothing runs.
func (p *Policy) CheckCommand(field string, argv target.Command) error {
	if p.Missing {
		return &Refused{File: p.File, Rule: "file"}
	}
	if len(argv) == 0 {
		return nil
	}
	for _, prefix := range p.AllowCommands {
		if len(prefix) == 1 && prefix[0] == Wildcard {
			return nil
		}
		if hasPrefix(argv, prefix) {
			return nil
		}
	}
	return &Refused{File: p.File, Rule: "allow_commands", Field: field, Value: fmt.Sprintf("%q", []string(argv)),
		Reason: "starts with none of the allowed argv prefixes"}
}

func under(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

func hasPrefix(argv, prefix []string) bool {
	if len(prefix) > len(argv) {
		return false
	}
	for i := range prefix {
		if argv[i] != prefix[i] {
			return false
		}
	}
	return true
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

package envoy_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/activities"
	"github.com/certctl/certctl/connectors"
	"github.com/certctl/certctl/connectors/envoy"
	"github.com/certctl/certctl/connectors/haproxy"
	"github.com/certctl/certctl/connectors/traefik"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/material"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// These tests check the SDS file against envoy's documented format and the
// atomic replacement the shared activities give it. They do not run envoy:
// it cannot be had on these machines.

// dataSource, secret and sdsFile mirror envoy's v3 API as its file-based SDS
// reads it: a DiscoveryResponse-shaped document with resources, each an
// envoy.extensions.transport_sockets.tls.v3.Secret (config.core.v3.DataSource
// for the chain and the key).
type dataSource struct {
	Filename     string `yaml:"filename"`
	InlineString string `yaml:"inline_string"`
}

type secret struct {
	Type           string `yaml:"@type"`
	Name           string `yaml:"name"`
	TLSCertificate struct {
		CertificateChain dataSource `yaml:"certificate_chain"`
		PrivateKey       dataSource `yaml:"private_key"`
	} `yaml:"tls_certificate"`
}

type sdsFile struct {
	Resources []secret `yaml:"resources"`
}

func parseSDS(t *testing.T, b []byte) sdsFile {
	t.Helper()
	var f sdsFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // nothing beyond the documented fields
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("the SDS file does not parse as envoy's format: %v\n%s", err, b)
	}
	return f
}

func issue(t *testing.T) testsuite.Set {
	t.Helper()
	ca, err := testsuite.NewCA("envoy test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func config(dir string) target.Config {
	off := false
	return target.Config{
		CertPath: filepath.Join(dir, "cert.pem"), KeyPath: filepath.Join(dir, "key.pem"),
		Own:              &envoy.Config{SDSPath: filepath.Join(dir, "sds.yaml"), SDSSecretName: "server_cert"},
		PostDeployVerify: target.Verify{Enabled: &off},
	}
}

func TestSDSFileFormat(t *testing.T) {
	for _, name := range []string{"server_cert", `odd: "name" # with YAML in it`} {
		b := envoy.SDSFile(name, "/etc/envoy/certs/a cert.pem", "/etc/envoy/certs/key.pem", "ab12")
		f := parseSDS(t, b)
		if len(f.Resources) != 1 {
			t.Fatalf("%d resources, want 1", len(f.Resources))
		}
		r := f.Resources[0]
		if r.Type != "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret" {
			t.Errorf("@type %q", r.Type)
		}
		if r.Name != name {
			t.Errorf("name %q, want %q", r.Name, name)
		}
		if r.TLSCertificate.CertificateChain != (dataSource{Filename: "/etc/envoy/certs/a cert.pem"}) {
			t.Errorf("certificate_chain %+v", r.TLSCertificate.CertificateChain)
		}
		if r.TLSCertificate.PrivateKey != (dataSource{Filename: "/etc/envoy/certs/key.pem"}) {
			t.Errorf("private_key %+v", r.TLSCertificate.PrivateKey)
		}
		if !strings.Contains(string(b), "# leaf sha256: ab12\n") {
			t.Errorf("the file does not name the leaf:\n%s", b)
		}
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Error("the SDS file holds key material")
		}
	}
}

func TestLayout(t *testing.T) {
	s, other := issue(t), issue(t)
	c, err := connectors.Get(envoy.Name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config("/d")
	if err := c.Check(cfg); err != nil {
		t.Fatal(err)
	}
	files, err := c.Files(cfg, bundle(t, s.Material))
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		role, path string
		holdsKey   bool
		mode       os.FileMode
	}
	var got []file
	for _, f := range files {
		got = append(got, file{f.Role, f.Path, f.HoldsKey, f.DefaultMode})
	}
	want := []file{{"cert", "/d/cert.pem", false, 0o644}, {"key", "/d/key.pem", true, 0o600}, {"sds", "/d/sds.yaml", false, 0o644}}
	if len(got) != len(want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("file %d: %v, want %v (the SDS file comes last: its move is what envoy acts on)", i, got[i], want[i])
		}
	}
	if string(files[0].Bytes) != s.CertPEM+s.ChainPEM || string(files[1].Bytes) != s.KeyPEM {
		t.Error("cert must hold the leaf then the chain; key the key")
	}
	if string(files[2].Bytes) != string(envoy.SDSFile("server_cert", "/d/cert.pem", "/d/key.pem", s.LeafSHA256)) {
		t.Error("the SDS file is not SDSFile for the leaf")
	}
	again, _ := c.Files(cfg, bundle(t, other.Material))
	if bytes.Equal(again[2].Bytes, files[2].Bytes) {
		t.Error("the SDS file's bytes do not change with the leaf")
	}
	d := c.Defaults()
	if len(d.ValidateCommand) != 0 || len(d.ReloadCommand) != 0 || d.ReloadSignal != "" {
		t.Errorf("envoy has no check or reload command: %+v", d)
	}
}

func TestChecks(t *testing.T) {
	c, _ := connectors.Get(envoy.Name)
	good := config("/d")
	m := target.Mode(0o644)
	for _, tc := range []struct {
		edit  func(*target.Config)
		field string
	}{
		{func(c *target.Config) { c.CertPath = "" }, "target_config.cert_path"},
		{func(c *target.Config) { c.KeyPath = "" }, "target_config.key_path"},
		{func(c *target.Config) { own(c).SDSPath = "" }, "target_config.sds_path"},
		{func(c *target.Config) { own(c).SDSSecretName = "" }, "target_config.sds_secret_name"},
		{func(c *target.Config) { own(c).SDSPath = c.KeyPath }, "target_config.sds_path"},
		{func(c *target.Config) { c.ChainPath = "/d/chain.pem" }, "target_config.chain_path"},
		{func(c *target.Config) { c.ChainFileMode = &m }, "target_config.chain_path"},
		{func(c *target.Config) { c.Own = &haproxy.Config{PEMPath: "/d/p.pem"} }, "target_config.pem_path"},
		{func(c *target.Config) { c.Own = &traefik.Config{DynamicConfigPath: "/d/t.yml"} }, "target_config.dynamic_config_path"},
	} {
		cfg := good
		tc.edit(&cfg)
		err := c.Check(cfg)
		fe, ok := err.(*contract.FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%+v: got %v, want an error naming %s", cfg, err, tc.field)
		}
	}
}

func TestTargetFields(t *testing.T) {
	base := "target_id: e\ntarget_type: envoy\ntarget_config:\n  cert_path: /d/c.pem\n  key_path: /d/k.pem\n  post_deploy_verify: {enabled: false}\n"
	tg, err := target.Parse(strings.NewReader(base + "  sds_path: /etc/envoy/sds/site.yaml\n  sds_secret_name: server_cert\n"))
	if err != nil || *tg.Config.Own.(*envoy.Config) != (envoy.Config{SDSPath: "/etc/envoy/sds/site.yaml", SDSSecretName: "server_cert"}) {
		t.Fatalf("%v %+v", err, tg)
	}
	for _, tc := range []struct{ extra, field string }{
		{"  sds_path: sds/site.yaml\n", "target_config.sds_path"},
		{"  sds_path: /etc/envoy/../site.yaml\n", "target_config.sds_path"},
		{"  sds_secret_name: \" padded\"\n", "target_config.sds_secret_name"},
		{"  sds_secret_name: \"two\\nlines\"\n", "target_config.sds_secret_name"},
	} {
		_, err := target.Parse(strings.NewReader(base + tc.extra))
		fe, ok := err.(*contract.FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%q: got %v, want an error naming %s", tc.extra, err, tc.field)
		}
	}
}

// deploy runs the shared file steps for an envoy target, the way the
// workflow does: plan, backup, stage, validate (the material check of the
// staged files), commit, cleanup.
func deploy(t *testing.T, a *activities.Activities, tg target.Target, s testsuite.Set, stamp int64) {
	t.Helper()
	ctx := context.Background()
	req := activities.Request{Target: tg, Stamp: stamp}
	pin := activities.PlanInput{Request: req, Material: s.Material}
	plan, err := a.Plan(ctx, pin)
	if err != nil {
		t.Fatal(err)
	}
	backups, err := a.Backup(ctx, activities.StageInput{PlanInput: activities.PlanInput{Request: req}, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	staged, err := a.Stage(ctx, activities.StageInput{PlanInput: pin, Plan: plan})
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Validate(ctx, activities.ValidateInput{Request: req, Plan: plan, Staged: staged})
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if v.ServerCheck != activities.CheckNone {
		t.Errorf("server check %q, want %q", v.ServerCheck, activities.CheckNone)
	}
	if _, err := a.Commit(ctx, activities.CommitInput{Request: req, Plan: plan, Staged: staged}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Cleanup(ctx, activities.CleanupInput{Request: req, Plan: plan, Staged: staged, Backups: backups, Succeeded: true}); err != nil {
		t.Fatal(err)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// The SDS file is replaced by a rename, never rewritten in place: its inode
// changes, a reader only ever sees the old file or the new one whole, and
// the directory sees IN_MOVED_TO for it (what envoy's watch acts on).
func TestSDSFileReplacedByRename(t *testing.T) {
	dir := t.TempDir()
	a := &activities.Activities{StateDir: t.TempDir()}
	tg := target.Target{TargetID: "envoy-1", TargetType: envoy.Name, Host: "testhost", Config: config(dir)}
	first, second := issue(t), issue(t)
	deploy(t, a, tg, first, time.Now().UnixNano())
	sds := tg.Config.Own.(*envoy.Config).SDSPath
	oldBytes, err := os.ReadFile(sds)
	if err != nil {
		t.Fatal(err)
	}
	newBytes := envoy.SDSFile("server_cert", tg.Config.CertPath, tg.Config.KeyPath, second.LeafSHA256)
	before := inode(t, sds)

	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE|syscall.IN_MODIFY); err != nil {
		t.Fatal(err)
	}

	// A reader polls the live file by path through the whole deploy.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, torn atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			b, err := os.ReadFile(sds)
			if err != nil {
				torn.Add(1) // the path never stops naming a file
				continue
			}
			reads.Add(1)
			if !bytes.Equal(b, oldBytes) && !bytes.Equal(b, newBytes) {
				torn.Add(1)
			}
		}
	}()
	deploy(t, a, tg, second, time.Now().UnixNano())
	stop.Store(true)
	wg.Wait()

	if got, _ := os.ReadFile(sds); !bytes.Equal(got, newBytes) {
		t.Fatalf("the SDS file does not hold the new secret")
	}
	if parseSDS(t, newBytes).Resources[0].TLSCertificate.CertificateChain.Filename != tg.Config.CertPath {
		t.Error("the new SDS file does not name cert_path")
	}
	if inode(t, sds) == before {
		t.Error("the SDS file kept its inode: it was rewritten in place, not renamed over")
	}
	if n := torn.Load(); n > 0 {
		t.Errorf("%d of %d reads saw a missing or partial SDS file", n, reads.Load()+n)
	}

	// What the directory saw happen to the SDS file's name.
	_ = syscall.SetNonblock(fd, true)
	buf := make([]byte, 64<<10)
	var movedTo, written bool
	for {
		n, err := syscall.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			if name == filepath.Base(sds) {
				movedTo = movedTo || ev.Mask&syscall.IN_MOVED_TO != 0
				written = written || ev.Mask&(syscall.IN_MODIFY|syscall.IN_CLOSE_WRITE) != 0
			}
			off += syscall.SizeofInotifyEvent + int(ev.Len)
		}
	}
	if !movedTo {
		t.Error("no IN_MOVED_TO for the SDS file: envoy's watch would not fire")
	}
	if written {
		t.Error("the SDS file was written in place under its own name")
	}
	if left := testsuite.TempFiles(dir); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// own is c's envoy fields, copied so an edit leaves other configs alone.
func own(c *target.Config) *envoy.Config {
	o := *c.Own.(*envoy.Config)
	c.Own = &o
	return &o
}

// bundle parses m as Files takes it.
func bundle(t *testing.T, m material.Material) *material.Bundle {
	t.Helper()
	b, err := material.Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

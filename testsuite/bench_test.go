package testsuite_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/certctl/certctl/testsuite"
)

// BenchmarkDeployVersusBare measures, on the same machine and the same real
// nginx, the wall time of `certctl deploy` (the binary, through the dev
// server and the host worker, every step an activity) and of the bare work
// it orchestrates: write three files, `nginx -t`, `nginx -s reload`, TLS
// handshakes until the new leaf is served. It reports both and their ratio.
//
//	make bench
func BenchmarkDeployVersusBare(b *testing.B) {
	initial, err := env.ca.Issue(testsuite.LeafOptions{})
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "certctl-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o711)
	n, err := testsuite.StartNginx(dir, initial)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Stop()
	tg := n.Target("bench", testHost)
	sets := make([]testsuite.Set, 2*b.N)
	for i := range sets {
		if sets[i], err = env.ca.Issue(testsuite.LeafOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	var certctl, bare []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// certctl deploy, to a leaf not yet served.
		s := sets[2*i]
		start := time.Now()
		r := deploy(b, tg, s)
		certctl = append(certctl, time.Since(start))
		if r.code != 0 {
			b.Fatalf("certctl deploy exit %d:\n%s%s", r.code, r.stdout, r.stderr)
		}
		// The bare sequence, to the next leaf.
		s = sets[2*i+1]
		start = time.Now()
		if err := bareDeploy(n, s); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, time.Since(start))
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	c, r := med(certctl), med(bare)
	b.ReportMetric(c, "ms/certctl-deploy")
	b.ReportMetric(r, "ms/bare-sequence")
	b.ReportMetric(c/r, "ratio")
	b.ReportMetric(0, "ns/op") // the per-op figure mixes both: read the medians
}

func bareDeploy(n *testsuite.Nginx, s testsuite.Set) error {
	for _, f := range []struct{ path, data string }{{n.CertPath, s.CertPEM}, {n.ChainPath, s.ChainPEM}, {n.KeyPath, s.KeyPEM}} {
		tmp := f.path + ".bench"
		if err := os.WriteFile(tmp, []byte(f.data), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, f.path); err != nil {
			return err
		}
	}
	for _, argv := range [][]string{n.ValidateCommand(), n.ReloadCommand()} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return &exec.Error{Name: filepath.Base(argv[0]), Err: errorString(string(out))}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.WaitServing(ctx, s.LeafSHA256)
}

type errorString string

func (e errorString) Error() string { return string(e) }

package testsuite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
)

// BenchmarkHostWorkerCPU measures what a deploy costs in CPU, not wall time
// (docs/performance.md, "Where the CPU goes"): a host worker of its own
// (`certctl-worker --host bench-cpu`, its own state dir) and a private nginx;
// one warm-up deploy, then CERTCTL_BENCH_CPU_DEPLOYS (default 20)
// `certctl deploy` one after the other, and as many bare sequences
// (bareDeploy: write, `nginx -t`, `nginx -s reload`, handshakes for the
// settle window). CPU time is the kernel's account (/proc/<pid>/stat
// utime+stime, and cutime+cstime for the children it waited for: the
// supervisor and the commands it ran; getrusage for this process's
// children), so it holds on a busy machine where wall times do not. A
// benchmark never fails on a figure; only a deploy that does not end
// Deployed fails it. With CERTCTL_BENCH_CPU_BASE=<a certctl-worker binary>
// (another revision's: go build -o /tmp/base ./worker there) a second host
// worker runs that binary against its own nginx, the deploys interleaved
// one by one with this tree's, so that a before and after share the
// machine's moments.
//
//	go test -run '^$' -bench BenchmarkHostWorkerCPU -benchtime 1x ./testsuite/
func BenchmarkHostWorkerCPU(b *testing.B) {
	n := 20
	if v := os.Getenv("CERTCTL_BENCH_CPU_DEPLOYS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CERTCTL_BENCH_CPU_DEPLOYS=%q: want a positive count", v)
		}
	}
	type side struct {
		name, bin string
		p         *testsuite.Process
		bn        *testsuite.Nginx
		tg        target.Target
		w0, w1    workerCPU
		cli       float64
	}
	sides := []*side{{name: "this tree", bin: env.worker}}
	if base := os.Getenv("CERTCTL_BENCH_CPU_BASE"); base != "" {
		sides = append(sides, &side{name: "base " + base, bin: base})
	}
	dir := b.TempDir()
	newSet := func() testsuite.Set {
		s, err := env.ca.Issue(testsuite.LeafOptions{})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	for i, sd := range sides {
		host := fmt.Sprintf("bench-cpu-%d", i)
		p, err := testsuite.StartProcess("worker-"+host, filepath.Join(dir, host+".log"),
			[]string{"TEMPORAL_ADDRESS=" + env.address, "CERTCTL_STATE_DIR=" + filepath.Join(dir, "state-"+host)}, sd.bin, "--host", host)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(p.Stop)
		waitPolled(b, host)
		fmt.Fprintf(os.Stderr, "bench-cpu: host worker pid %d (%s)\n", p.Pid(), sd.name)
		sd.p, sd.bn = p, startBenchNginx(b)
		sd.tg = sd.bn.Target(host, host)
		if r := benchDeploy(b, sd.tg, newSet()); r.Outcome != contract.Deployed {
			b.Fatalf("warm-up deploy (%s): %s %s", sd.name, r.Outcome, r.Error)
		}
	}
	bn := sides[0].bn
	if _, err := bareDeploy(bn, newSet()); err != nil {
		b.Fatal(err)
	}
	sets := make([]testsuite.Set, (len(sides)+1)*n)
	for i := range sets {
		sets[i] = newSet()
	}
	for _, sd := range sides {
		sd.w0 = procCPU(b, sd.p.Pid())
	}
	// Interleaved, so that a busy moment of the shared machine falls on
	// every side alike.
	var bare float64
	for i := 0; i < n; i++ {
		for j, sd := range sides {
			c0 := childrenCPU(b)
			if r := benchDeploy(b, sd.tg, sets[i*(len(sides)+1)+j]); r.Outcome != contract.Deployed {
				b.Fatalf("certctl deploy (%s): %s %s", sd.name, r.Outcome, r.Error)
			}
			sd.cli += childrenCPU(b) - c0
		}
		c0 := childrenCPU(b)
		if _, err := bareDeploy(bn, sets[i*(len(sides)+1)+len(sides)]); err != nil {
			b.Fatal(err)
		}
		bare += childrenCPU(b) - c0
	}
	for _, sd := range sides {
		sd.w1 = procCPU(b, sd.p.Pid())
	}
	per := func(d float64) float64 { return d / float64(n) }
	fmt.Printf("certctl bench-cpu: CPU ms per deploy over %d deploys (CERTCTL_BENCH_CPU_DEPLOYS), after one warm-up; %s\n", n, time.Now().UTC().Format(time.RFC3339))
	for _, sd := range sides {
		self, kids := per(sd.w1.self-sd.w0.self), per(sd.w1.children-sd.w0.children)
		fmt.Printf("%s:\n", sd.name)
		fmt.Printf("  host worker, its own threads        %6.1f ms   (/proc/<pid>/stat utime+stime)\n", self)
		fmt.Printf("  host worker, children it waited for %6.1f ms   (cutime+cstime: the supervisors and the commands they ran)\n", kids)
		fmt.Printf("  host worker, total                  %6.1f ms\n", self+kids)
		fmt.Printf("  certctl deploy (the CLI process)    %6.1f ms   (getrusage RUSAGE_CHILDREN of the benchmark around it)\n", per(sd.cli))
		if sd == sides[0] {
			b.ReportMetric(self+kids, "cpu-ms/deploy-host-worker")
			b.ReportMetric(self, "cpu-ms/deploy-host-worker-self")
		}
	}
	fmt.Printf("bare sequence: nginx -t and nginx -s reload %6.1f ms   (the same, around bareDeploy; its writes and handshakes run in the benchmark process)\n", per(bare))
	b.ReportMetric(0, "ns/op")
}

type workerCPU struct{ self, children float64 } // ms

// procCPU reads a process's CPU time from /proc/<pid>/stat: its own threads
// (utime+stime) and the children it has waited for (cutime+cstime).
func procCPU(b *testing.B, pid int) workerCPU {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // field 3 (state) onwards
	if len(f) < 15 {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	ticks := func(i int) float64 { // i is the field number of proc(5)
		v, err := strconv.ParseFloat(f[i-3], 64)
		if err != nil {
			b.Fatal(err)
		}
		return v * 1000 / clockTicks
	}
	return workerCPU{self: ticks(14) + ticks(15), children: ticks(16) + ticks(17)}
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on Linux.
const clockTicks = 100

// childrenCPU is the CPU time (ms) of this process's waited-for children.
func childrenCPU(b *testing.B) float64 {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

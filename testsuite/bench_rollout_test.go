package testsuite_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"gopkg.in/yaml.v3"

	"github.com/certctl/certctl/connectors/files"
	"github.com/certctl/certctl/contract"
	"github.com/certctl/certctl/target"
	"github.com/certctl/certctl/testsuite"
	"github.com/certctl/certctl/workflows"
)

// The rollout group's fleets (issue 14): real nginx spread over host
// workers, each its own --host and state dir as on separate machines; and
// targets of the files connector.
const (
	rolloutNginx        = 50
	rolloutNginxWorkers = 5
	rolloutBatch        = 10
	rolloutFiles        = 1000
	rolloutFilesHosts   = 4
	rolloutFilesBatch   = 50
)

// benchRollout adds the rollout group's rows: `certctl rollout` to 50 real
// nginx, batch 10, against a bare parallel loop doing the same work with
// the same parallelism (the canary alone, then 10 at a time); and a rollout
// to 1,000 files targets, deploys per second. Both with the history events
// and bytes per target, every workflow counted.
func benchRollout(b *testing.B, tbl *benchTable, reps int, newSet func(*testing.B) testsuite.Set) {
	dir := b.TempDir()
	var fleet []*testsuite.Nginx
	var hosts []string
	for w := 0; w < rolloutNginxWorkers; w++ {
		hosts = append(hosts, fmt.Sprintf("bench-ro-%d", w))
		startBenchWorker(b, dir, hosts[w])
	}
	tdir := filepath.Join(dir, "targets")
	if err := os.Mkdir(tdir, 0o755); err != nil {
		b.Fatal(err)
	}
	var ids []string
	for i := 0; i < rolloutNginx; i++ {
		n := startBenchNginx(b)
		fleet = append(fleet, n)
		ids = append(ids, fmt.Sprintf("bench-ro-%02d", i))
		writeBenchTarget(b, tdir, i, n.Target(ids[i], hosts[i%len(hosts)]))
	}
	for _, h := range hosts {
		waitPolled(b, h)
	}
	var roMs, bareMs, ratio, evPer, bytesPer, roEv, roCPU, bareCPU []float64
	for i := 0; i < reps; i++ {
		cpu0 := cpuBusy(b)
		res, wall := benchRolloutCLI(b, tdir, newSet(b), rolloutBatch)
		if res.Outcome != contract.RolloutCompleted || res.Succeeded != rolloutNginx {
			b.Fatalf("certctl rollout: %s %s %+v", res.Outcome, res.Error, res.Failed)
		}
		cpu1 := cpuBusy(b)
		s := newSet(b)
		start := time.Now()
		if err := bareParallel(fleet, s, rolloutBatch); err != nil {
			b.Fatal(err)
		}
		bare := time.Since(start)
		roCPU, bareCPU = append(roCPU, 1000*(cpu1-cpu0)), append(bareCPU, 1000*(cpuBusy(b)-cpu1))
		roMs, bareMs, ratio = append(roMs, ms(wall)), append(bareMs, ms(bare)), append(ratio, ms(wall)/ms(bare))
		ev, by, own := rolloutCost(b, res, ids)
		evPer, bytesPer, roEv = append(evPer, ev), append(bytesPer, by), append(roEv, own)
	}
	cmd := fmt.Sprintf("certctl rollout --targets DIR (%d nginx targets on %d hosts) --cert --chain --key --batch %d --output json", rolloutNginx, rolloutNginxWorkers, rolloutBatch)
	tbl.add("rollout", fmt.Sprintf("certctl rollout, %d real nginx on %d host workers, batch %d", rolloutNginx, rolloutNginxWorkers, rolloutBatch), "ms", roMs, cmd)
	tbl.add("rollout", fmt.Sprintf("bare parallel loop, same nginx: canary alone, then %d at a time", rolloutBatch), "ms", bareMs,
		"per nginx as the bare sequence of versus-bare (write, nginx -t, nginx -s reload, handshakes until served for 150 ms); goroutines")
	tbl.add("rollout", "ratio rollout / bare, per pair (target ≤ 1.5)", "×", ratio, "the two rows above, pair by pair")
	tbl.add("rollout", "  CPU time, whole machine, during the rollout", "ms", roCPU, "/proc/stat busy jiffies (user+nice+system+irq+softirq+steal) before and after; 2 cores = 2,000 ms a second")
	tbl.add("rollout", "  CPU time, whole machine, during the bare loop", "ms", bareCPU, "the same around the bare parallel loop")
	tbl.add("rollout", "  history events per target (its deploy + its share of the rollout's)", "ev", evPer, "temporal workflow list --query 'WorkflowId = ...' (historyLength of the rollout's runs and of each deploy) / targets")
	tbl.add("rollout", "  history bytes per target (the same)", "B", bytesPer, "the same, historySizeBytes")
	tbl.add("rollout", "  history events of the RolloutWorkflow itself (every run)", "ev", roEv, "the same, the rollout's runs only")

	// 1,000 files targets on 4 hosts.
	fdir := filepath.Join(dir, "files-targets")
	if err := os.Mkdir(fdir, 0o755); err != nil {
		b.Fatal(err)
	}
	var fhosts []string
	for w := 0; w < rolloutFilesHosts; w++ {
		fhosts = append(fhosts, fmt.Sprintf("bench-rf-%d", w))
		startBenchWorker(b, dir, fhosts[w])
	}
	var fids []string
	for i := 0; i < rolloutFiles; i++ {
		fids = append(fids, fmt.Sprintf("bench-rf-%04d", i))
		d := filepath.Join(dir, fmt.Sprintf("app-%04d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		writeBenchTarget(b, fdir, i, target.Target{TargetID: fids[i], TargetType: files.Name, Host: fhosts[i%len(fhosts)],
			Config: target.Config{CertPath: filepath.Join(d, "cert.pem"), ChainPath: filepath.Join(d, "chain.pem"), KeyPath: filepath.Join(d, "key.pem")}})
	}
	for _, h := range fhosts {
		waitPolled(b, h)
	}
	var rate, fev, fbytes, fro []float64
	for i := 0; i < min(reps, 3); i++ {
		res, wall := benchRolloutCLI(b, fdir, newSet(b), rolloutFilesBatch)
		if res.Outcome != contract.RolloutCompleted || res.Succeeded != rolloutFiles {
			b.Fatalf("certctl rollout of files: %s %s", res.Outcome, res.Error)
		}
		rate = append(rate, float64(rolloutFiles)/wall.Seconds())
		ev, by, own := rolloutCost(b, res, fids)
		fev, fbytes, fro = append(fev, ev), append(fbytes, by), append(fro, own)
	}
	cmd = fmt.Sprintf("certctl rollout --targets DIR (%d files targets on %d hosts) --cert --chain --key --batch %d --output json", rolloutFiles, rolloutFilesHosts, rolloutFilesBatch)
	tbl.add("rollout", fmt.Sprintf("deploys/s, rollout of %d `files` targets, %d hosts, batch %d (target ≥ 20)", rolloutFiles, rolloutFilesHosts, rolloutFilesBatch), "/s", rate, cmd+"; targets / wall time of certctl rollout")
	tbl.add("rollout", "  history events per target", "ev", fev, "as for the nginx rollout")
	tbl.add("rollout", "  history bytes per target", "B", fbytes, "as for the nginx rollout")
	tbl.add("rollout", "  history events of the RolloutWorkflow itself (every run)", "ev", fro, "as for the nginx rollout (it continues as new every 500 deploys)")
}

func startBenchWorker(b *testing.B, dir, host string) {
	b.Helper()
	p, err := testsuite.StartProcess("worker-"+host, filepath.Join(dir, host+".log"),
		[]string{"TEMPORAL_ADDRESS=" + env.address, "CERTCTL_STATE_DIR=" + filepath.Join(dir, "state-"+host)}, env.worker, "--host", host)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Stop)
}

func writeBenchTarget(b *testing.B, dir string, i int, tg target.Target) {
	b.Helper()
	text, err := yaml.Marshal(tg)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%04d-%s.yaml", i, tg.TargetID)), text, 0o600); err != nil {
		b.Fatal(err)
	}
}

// benchRolloutCLI times one `certctl rollout --output json`.
func benchRolloutCLI(b *testing.B, dir string, set testsuite.Set, batch int) (rolloutOutputJSON, time.Duration) {
	b.Helper()
	mdir := b.TempDir()
	cert, chain, key, err := set.Write(mdir)
	if err != nil {
		b.Fatal(err)
	}
	cmd := certctlExec("rollout", "--targets", dir, "--cert", cert, "--chain", chain, "--key", key,
		"--batch", fmt.Sprint(batch), "--output", "json", "--id", fmt.Sprintf("bench-%d", time.Now().UnixNano()))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	var r rolloutOutputJSON
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		b.Fatalf("certctl rollout: %v (%v)\n%s%s", err, runErr, stdout.String(), stderr.String())
	}
	return r, wall
}

type rolloutOutputJSON struct {
	WorkflowID string `json:"workflow_id"`
	workflows.RolloutResult
}

// rolloutCost is, per target, the history events and bytes of its deploy
// plus its share of the rollout's (every run), and the rollout's own
// events.
func rolloutCost(b *testing.B, res rolloutOutputJSON, targetIDs []string) (events, bytes, own float64) {
	b.Helper()
	ctx := context.Background()
	var roEv, roBy int64
	// Walk the rollout's runs back from the last: each run's start names
	// the run it continues.
	for run := ""; ; {
		d, err := env.client.DescribeWorkflowExecution(ctx, res.WorkflowID, run)
		if err != nil {
			b.Fatal(err)
		}
		info := d.GetWorkflowExecutionInfo()
		roEv += info.GetHistoryLength()
		roBy += info.GetHistorySizeBytes()
		h := env.client.GetWorkflowHistory(ctx, res.WorkflowID, info.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		first, err := h.Next()
		if err != nil {
			b.Fatal(err)
		}
		if run = first.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId(); run == "" {
			break
		}
	}
	rid := strings.TrimPrefix(res.WorkflowID, contract.RolloutIDPrefix)
	var ev, by int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, tid := range targetIDs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d, err := env.client.DescribeWorkflowExecution(ctx, workflows.RolloutDeployID(rid, tid), "")
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			ev += d.GetWorkflowExecutionInfo().GetHistoryLength()
			by += d.GetWorkflowExecutionInfo().GetHistorySizeBytes()
			mu.Unlock()
		}()
	}
	wg.Wait()
	n := float64(len(targetIDs))
	return float64(ev+roEv) / n, float64(by+roBy) / n, float64(roEv)
}

// bareParallel does a rollout's work by hand: the first nginx alone (the
// canary), then the rest with parallel goroutines, each the bare sequence.
func bareParallel(fleet []*testsuite.Nginx, s testsuite.Set, parallel int) error {
	if _, err := bareDeploy(fleet[0], s); err != nil {
		return err
	}
	work := make(chan *testsuite.Nginx)
	errs := make(chan error, len(fleet))
	var wg sync.WaitGroup
	for i := 0; i < parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if _, err := bareDeploy(n, s); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, n := range fleet[1:] {
		work <- n
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

// cpuBusy is the machine's busy CPU time so far, in seconds, from
// /proc/stat (the clock ticks are USER_HZ, 100 a second on Linux).
func cpuBusy(b *testing.B) float64 {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	if len(f) < 9 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: %q", line)
	}
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			b.Fatal(err)
		}
		busy += v
	}
	return busy / 100
}

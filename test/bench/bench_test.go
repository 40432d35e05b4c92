package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// The floor's writes in flight, tried at the first size on fresh clusters;
// the fastest is the floor there and at the larger sizes
// (KS_BENCH_FLOOR_CONCURRENCY fixes one). The floor has no client-side rate
// limit: the apiserver's pace on this machine is the limit.
var floorConcurrencies = []int{8, 16, 32, 64}

// Users, one per contender, so the audit log tells their requests apart.
const (
	planUser     = "ks-clean-plan"
	applyUser    = "ks-clean-apply"
	floorUser    = "bench-floor"
	baselineUser = "bench-kubectl"
)

// BenchmarkTeardown measures, per size (KS_BENCH_SIZES workspace namespaces,
// default 200,1000,5000), on a fresh control plane each time, seeded alike
// and with the garbage collector on:
//
//   - ks-clean: `ks-clean plan --out` then `ks-clean apply --confirm`, with
//     their default flags, as subprocesses (wall time, peak RSS; requests by verb and persisted
//     writes from the apiserver's audit log), then proves every user object
//     kept its UID: a run that loses data fails;
//   - the floor: the same plan's writes issued directly with client-go, no
//     client-side rate limit, at the best of several concurrencies
//     (writes.go);
//   - the baseline, up to KS_BENCH_BASELINE_MAX namespaces (default 1000; 0
//     skips it): the same writes as one kubectl process each, sequentially,
//     in the official 3.x script's style.
//
// It reports ratios as metrics and a markdown table (logged, and written to
// KS_BENCH_REPORT when set). Each size runs once whatever -benchtime says.
// KS_BENCH_TRACE=DIR runs apply with -v=6 and keeps its request log in
// DIR/apply-N.log (the logging slows apply a little).
func BenchmarkTeardown(b *testing.B) {
	sizes, err := intsEnv("KS_BENCH_SIZES", []int{200, 1000, 5000})
	if err != nil {
		b.Fatal(err)
	}
	baselineMax := 1000
	if v := os.Getenv("KS_BENCH_BASELINE_MAX"); v != "" {
		if baselineMax, err = strconv.Atoi(v); err != nil {
			b.Fatalf("KS_BENCH_BASELINE_MAX=%q: %v", v, err)
		}
	}
	binDir, err := controlplane.FindBinDir()
	if err != nil {
		b.Fatal(err)
	}
	kubectl := ""
	if baselineMax > 0 {
		kubectl = filepath.Join(binDir, "kubectl")
		if _, err := os.Stat(kubectl); err != nil {
			b.Fatalf("the baseline needs kubectl in %s: run `bash scripts/testbin.sh kubectl` (make bench does), or set KS_BENCH_BASELINE_MAX=0", binDir)
		}
	}
	cli := buildCLI(b)

	floorConc := 0
	if v := os.Getenv("KS_BENCH_FLOOR_CONCURRENCY"); v != "" {
		if floorConc, err = strconv.Atoi(v); err != nil || floorConc < 1 {
			b.Fatalf("KS_BENCH_FLOOR_CONCURRENCY=%q: want a positive number", v)
		}
	}
	var rows []*row
	done := map[int]*row{}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("namespaces=%d", n), func(b *testing.B) {
			r := done[n]
			if r == nil {
				r = measure(b, n, cli, kubectl, n <= baselineMax, &floorConc)
				done[n] = r
				rows = append(rows, r)
			}
			r.report(b)
			// Written after every size: a long run that stops at a large
			// size still leaves the smaller sizes' table.
			if path := os.Getenv("KS_BENCH_REPORT"); path != "" {
				if err := os.WriteFile(path, []byte(renderTables(rows)), 0o644); err != nil {
					b.Error(err)
				}
			}
		})
	}
	if len(rows) > 0 {
		b.Log("\n" + renderTables(rows))
	}
}

// row is one size's measurements.
type row struct {
	N, Footprint, Protected int
	Seed                    time.Duration

	Least      least
	Steps      int
	Plan       proc
	PlanVerbs  map[string]int
	PlanGets   int // GETs of a named object (not discovery)
	Apply      proc
	ApplyVerbs map[string]int
	ApplyGets  int
	Writes     map[string]int // persisted, by verb
	Outcome    outcome

	FloorWrites int
	Floor       time.Duration
	// FloorConcurrency is the floor's writes in flight; FloorTried the
	// times of each concurrency tried at this size.
	FloorConcurrency int
	FloorTried       map[int]time.Duration
	FloorVerbs       map[string]int
	FloorOutcome     outcome

	Baseline        *baselineResult
	BaselineTime    time.Duration
	BaselineWrites  int
	BaselineOutcome outcome

	// Load is the 1-minute load average when each timed part ended (plan,
	// apply, floor, baseline): on 2 cores, anything else running shows.
	Load [4]string
}

// loadAvg reads the 1-minute load average ("?" where there is none).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b) + " ?")[0]
}

func (r *row) objects() int { return r.Footprint + r.Protected }

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (r *row) report(b *testing.B) {
	b.ReportMetric(float64(r.objects()), "objects")
	b.ReportMetric(r.Plan.Wall.Seconds(), "plan-s")
	b.ReportMetric(float64(r.PlanGets), "plan-object-GETs")
	b.ReportMetric(float64(sum(r.PlanVerbs)), "plan-requests")
	b.ReportMetric(r.Apply.Wall.Seconds(), "apply-s")
	b.ReportMetric(float64(r.Apply.Wall.Microseconds())/float64(r.objects()), "apply-µs/object")
	b.ReportMetric(float64(r.Apply.MaxRSSKiB)/1024, "apply-peak-RSS-MiB")
	b.ReportMetric(float64(sum(r.Writes)), "writes")
	b.ReportMetric(float64(r.Least.Total()), "least-writes")
	b.ReportMetric(float64(sum(r.Writes))/float64(r.Least.Total()), "writes/least")
	b.ReportMetric(r.Floor.Seconds(), "floor-s")
	b.ReportMetric(r.Apply.Wall.Seconds()/r.Floor.Seconds(), "apply/floor")
	if r.Baseline != nil {
		b.ReportMetric(r.BaselineTime.Seconds(), "baseline-s")
		b.ReportMetric(r.BaselineTime.Seconds()/r.Apply.Wall.Seconds(), "baseline/apply")
	}
}

// measure runs the three contenders for one size, each on its own cluster.
func measure(b *testing.B, n int, cli, kubectl string, baseline bool, floorConc *int) *row {
	ctx := context.Background()
	r := &row{N: n}
	work := b.TempDir()

	// ks-clean, as a user runs it.
	c := mustCluster(b, ctx, n)
	r.Seed, r.Footprint, r.Protected = c.seed, len(c.s.Seeded.Footprint), len(c.s.Seeded.Protected)
	b.Logf("n=%d: seeded %d KubeSphere/KubeFed and %d user objects in %s", n, r.Footprint, r.Protected, r.Seed.Round(time.Second))
	st, err := listState(ctx, c.s, append(append([]fixture.Ref{}, c.s.Seeded.Footprint...), c.s.Seeded.Protected...))
	if err != nil {
		b.Fatal(err)
	}
	r.Least = leastWrites(c.s.Seeded, st)
	_, planKC, err := c.cp.AddUser(planUser, "system:masters")
	if err != nil {
		b.Fatal(err)
	}
	_, applyKC, err := c.cp.AddUser(applyUser, "system:masters")
	if err != nil {
		b.Fatal(err)
	}
	planPath := filepath.Join(work, "plan.json")
	if r.Plan, err = runCLI(ctx, cli, "plan", "--kubeconfig", planKC, "--out", planPath, "-o", "json"); err != nil {
		b.Fatal(err)
	}
	r.Load[0] = loadAvg()
	p, err := api.Read(planPath)
	if err != nil {
		b.Fatal(err)
	}
	r.Steps = len(p.Stages[0].Steps)
	if r.PlanVerbs, r.PlanGets, _, err = audit(c.cp, planUser); err != nil {
		b.Fatal(err)
	}
	b.Logf("n=%d: plan %s, %d steps, requests %v, object GETs %d", n, r.Plan.Wall.Round(time.Millisecond), r.Steps, r.PlanVerbs, r.PlanGets)

	applyArgs := []string{"apply", planPath, "--kubeconfig", applyKC, "--confirm", "-o", "json"}
	if dir := os.Getenv("KS_BENCH_TRACE"); dir != "" {
		// client-go's log of every request, with its timing: where the
		// time between the floor and apply goes.
		applyArgs = append(applyArgs, "-v=6", "--stderr-to", filepath.Join(dir, fmt.Sprintf("apply-%d.log", n)))
	}
	r.Apply, err = runCLI(ctx, cli, applyArgs...)
	r.Load[1] = loadAvg()
	var res uninstall.Result
	if jerr := json.Unmarshal(r.Apply.Stdout, &res); jerr != nil && err == nil {
		err = fmt.Errorf("apply output: %w", jerr)
	}
	if err != nil {
		b.Fatalf("n=%d: ks-clean apply: %v", n, err)
	}
	if res.Verification == nil || !res.Verification.OK || res.Failed > 0 {
		b.Fatalf("n=%d: ks-clean apply: %d failed, verification %+v", n, res.Failed, res.Verification)
	}
	if r.ApplyVerbs, r.ApplyGets, r.Writes, err = audit(c.cp, applyUser); err != nil {
		b.Fatal(err)
	}
	var lost []fixture.Ref
	r.Outcome, lost, err = checkOutcome(ctx, c.s)
	if err != nil {
		b.Fatal(err)
	}
	if r.Outcome.Lost > 0 {
		b.Fatalf("n=%d: ks-clean apply lost %d user objects (gone, replaced or being deleted), e.g. %v", n, r.Outcome.Lost, lost)
	}
	if r.Outcome.Left > 0 {
		b.Errorf("n=%d: ks-clean apply left %d KubeSphere/KubeFed objects", n, r.Outcome.Left)
	}
	b.Logf("n=%d: apply %s (%d done, %d skipped), peak RSS %d MiB, requests %v, persisted writes %v (least %d: %+v)",
		n, r.Apply.Wall.Round(time.Millisecond), res.Done, res.Skipped, r.Apply.MaxRSSKiB/1024, r.ApplyVerbs, r.Writes, r.Least.Total(), r.Least)
	c.cp.Stop()

	// The floor, at each concurrency still to try, each on a fresh cluster.
	tries := floorConcurrencies
	if *floorConc > 0 {
		tries = []int{*floorConc}
	}
	r.FloorTried = map[int]time.Duration{}
	for _, conc := range tries {
		f := mustCluster(b, ctx, n)
		phases, nw := compilePlan(b, ctx, f)
		cfg, _, err := f.cp.AddUser(floorUser, "system:masters")
		if err != nil {
			b.Fatal(err)
		}
		fc, err := kube.New(cfg) // no client-side rate limit
		if err != nil {
			b.Fatal(err)
		}
		fc.Pace.SetMax(conc)
		start := time.Now()
		if err := runFloor(ctx, fc, phases, conc); err != nil {
			b.Fatalf("n=%d: floor at concurrency %d: %v", n, conc, err)
		}
		took := time.Since(start)
		r.FloorTried[conc] = took
		verbs, _, writes, err := audit(f.cp, floorUser)
		if err != nil {
			b.Fatal(err)
		}
		out, _, err := checkOutcome(ctx, f.s)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("n=%d: floor at concurrency %d: %s, %d writes planned, %d persisted, requests %v, outcome %+v", n, conc, took.Round(time.Millisecond), nw, sum(writes), verbs, out)
		if r.FloorConcurrency == 0 || took < r.Floor {
			r.Floor, r.FloorConcurrency, r.FloorVerbs, r.FloorWrites, r.FloorOutcome = took, conc, verbs, sum(writes), out
			r.Load[2] = loadAvg()
		}
		f.cp.Stop()
	}
	*floorConc = r.FloorConcurrency

	if !baseline {
		return r
	}
	k := mustCluster(b, ctx, n)
	phases, _ := compilePlan(b, ctx, k)
	_, kc, err := k.cp.AddUser(baselineUser, "system:masters")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	br := runBaseline(ctx, kubectl, kc, filepath.Join(work, "kubectl-cache"), phases)
	r.BaselineTime, r.Baseline = time.Since(start), &br
	r.Load[3] = loadAvg()
	_, _, writes, err := audit(k.cp, baselineUser)
	if err != nil {
		b.Fatal(err)
	}
	r.BaselineWrites = sum(writes)
	if r.BaselineOutcome, _, err = checkOutcome(ctx, k.s); err != nil {
		b.Fatal(err)
	}
	b.Logf("n=%d: baseline %s, %d kubectl processes (%d failed%s, %d not found), peak RSS %d MiB, %d persisted writes, outcome %+v",
		n, r.BaselineTime.Round(time.Millisecond), br.Processes, br.Failed, firstErr(br.FirstError), br.NotFound, br.MaxRSSKiB/1024, r.BaselineWrites, r.BaselineOutcome)
	k.cp.Stop()
	return r
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return ", first: " + s
}

func mustCluster(b *testing.B, ctx context.Context, n int) *cluster {
	b.Helper()
	c, err := startCluster(ctx, n)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.cp.Stop() })
	return c
}

// compilePlan plans in-process as the admin (untimed: the contenders are
// compared on applying the same plan) and compiles the plan's writes.
func compilePlan(b *testing.B, ctx context.Context, c *cluster) ([]phaseWrites, int) {
	b.Helper()
	admin, err := kube.New(c.cp.Config)
	if err != nil {
		b.Fatal(err)
	}
	rep, err := scan.Run(ctx, []scan.Target{{Clients: admin}}, scan.Options{})
	if err != nil {
		b.Fatal(err)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		b.Fatal(err)
	}
	phases, n, err := compile(&p.Stages[0], rep.Host().Footprint.Inv)
	if err != nil {
		b.Fatal(err)
	}
	return phases, n
}

// audit summarises one user's requests from the audit log: completed
// requests by verb, GETs of a named object, and persisted writes by verb.
func audit(cp *controlplane.ControlPlane, user string) (verbs map[string]int, objectGets int, writes map[string]int, err error) {
	ev, err := cp.AuditEvents()
	if err != nil {
		return nil, 0, nil, err
	}
	verbs, writes = map[string]int{}, map[string]int{}
	for _, e := range ev {
		if e.Stage != "ResponseComplete" || e.User.Username != user {
			continue
		}
		verbs[e.Verb]++
		if e.Verb == "get" && e.ObjectRef != nil && e.ObjectRef.Name != "" {
			objectGets++
		}
		if e.Persisted() {
			writes[e.Verb]++
		}
	}
	return verbs, objectGets, writes, nil
}

// proc is one finished CLI run.
type proc struct {
	Wall      time.Duration
	MaxRSSKiB int64
	Stdout    []byte
}

// runCLI runs ks-clean; a trailing "--stderr-to FILE" is not passed on
// but sends its standard error to FILE.
func runCLI(ctx context.Context, bin string, args ...string) (proc, error) {
	var stdout, stderr bytes.Buffer
	var errOut io.Writer = &stderr
	if n := len(args); n > 2 && args[n-2] == "--stderr-to" {
		f, err := os.Create(args[n-1])
		if err != nil {
			return proc{}, err
		}
		defer f.Close()
		errOut, args = io.MultiWriter(f, &stderr), args[:n-2]
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, errOut
	start := time.Now()
	err := cmd.Run()
	p := proc{Wall: time.Since(start), Stdout: stdout.Bytes()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.MaxRSSKiB = ru.Maxrss // KiB on Linux
		}
	}
	if err != nil {
		tail := stderr.String()
		if len(tail) > 2000 {
			tail = "…" + tail[len(tail)-2000:]
		}
		return p, fmt.Errorf("ks-clean %s: %w\n%s", args[0], err, tail)
	}
	return p, nil
}

// buildCLI builds ks-clean once, from the module this package is in.
func buildCLI(b *testing.B) string {
	b.Helper()
	root, err := moduleRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "ks-clean")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ks-clean: %v\n%s", err, out)
	}
	return bin
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = filepath.Dir(dir)
	}
}

func intsEnv(name string, def []int) ([]int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q: want sizes like 200,1000,5000", name, v)
		}
		out = append(out, n)
	}
	return out, nil
}

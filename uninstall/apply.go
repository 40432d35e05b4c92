// Package uninstall executes a teardown plan exactly: preflight checks that
// refuse before any write, a backup first, preconditions on every write,
// phases in order with a wait for each phase's deletions, a journal to resume
// from, and a rescan at the end that proves nothing of KubeSphere is left and
// every protected object is still there.
package uninstall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ks-clean/ks-clean/exitcode"
	"github.com/ks-clean/ks-clean/footprint"
	"github.com/ks-clean/ks-clean/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
)

// Options of an apply.
type Options struct {
	// DryRun sends every write with dryRun=All: admission and validation
	// run, nothing is stored.
	DryRun bool
	// BackupDir holds the backup and the journal (default: PLAN.apply/).
	BackupDir string
	// MaxAge refuses older plans unless AllowStale.
	MaxAge     time.Duration
	AllowStale bool
	// Concurrency bounds the writes in flight within a phase.
	Concurrency int
	// FinalizerTimeout is how long a phase waits for its deletions before
	// removing the finalizers of footprint objects still present.
	FinalizerTimeout time.Duration
	// PhaseTimeout bounds each wait in all.
	PhaseTimeout time.Duration
	// HelmHooks runs Helm's uninstall hooks (off: KubeSphere 4's hook Jobs
	// need images a broken cluster may not pull).
	HelmHooks bool
	// Progress receives events as steps finish (nil: none).
	Progress func(Event)
	// StopAfter, when positive, stops after that many writes as if
	// interrupted (tests use it to prove resumption).
	StopAfter int
}

// Event reports progress.
type Event struct {
	// Stage names the stage of a multi-cluster plan ("" otherwise).
	Stage       string
	Phase       plan.Phase
	Done, Total int
	Step        *plan.Step
	Status      string
	Detail      string
}

// Apply executes one plan on one cluster.
type Apply struct {
	Clients *kube.Clients
	Plan    *plan.Plan
	// PlanPath locates the default backup directory.
	PlanPath string
	Options

	noDriftCheck bool // tests only (export_test.go): the negative control
}

// StepResult is what happened to one step.
type StepResult struct {
	ID     string         `json:"id"`
	Phase  plan.Phase     `json:"phase"`
	Action plan.Action    `json:"action"`
	Target plan.ObjectRef `json:"target"`
	Status string         `json:"status"`
	Detail string         `json:"detail,omitempty"`
}

// Result is the machine-readable outcome (`apply -o json`).
type Result struct {
	DryRun       bool          `json:"dryRun"`
	BackupDir    string        `json:"backupDir"`
	BackedUp     int           `json:"backedUp"`
	Done         int           `json:"done"`
	Skipped      int           `json:"skipped"`
	Failed       int           `json:"failed"`
	Steps        []StepResult  `json:"steps"`
	Verification *Verification `json:"verification,omitempty"`
	Duration     string        `json:"duration"`
}

// resolved is a step's target mapped to its API resource.
type resolved struct {
	gvr        schema.GroupVersionResource
	namespaced bool
	gone       bool // its type no longer exists: so neither does it
}

// ErrInterrupted is returned when the context ends or StopAfter is reached;
// the journal lets a rerun resume.
var ErrInterrupted = errors.New("apply interrupted; run the same command again to resume")

func (a *Apply) defaults() {
	if a.Concurrency <= 0 {
		a.Concurrency = 8
	}
	if a.MaxAge <= 0 {
		a.MaxAge = 24 * time.Hour
	}
	if a.FinalizerTimeout <= 0 {
		a.FinalizerTimeout = 60 * time.Second
	}
	if a.PhaseTimeout <= 0 {
		a.PhaseTimeout = 10 * time.Minute
	}
	if a.BackupDir == "" {
		a.BackupDir = a.PlanPath + ".apply"
	}
}

// Check runs the preflight alone: every refusal Run would make before its
// first write, and no write.
func (a *Apply) Check(ctx context.Context) error {
	a.defaults()
	_, err := a.preflight(ctx)
	return err
}

// Run applies the plan.
func (a *Apply) Run(ctx context.Context) (*Result, error) {
	start := time.Now()
	a.defaults()
	res := &Result{DryRun: a.DryRun, BackupDir: a.BackupDir}
	defer func() { res.Duration = time.Since(start).Round(time.Millisecond).String() }()

	// Preflight: every refusal comes before the first write.
	targets, err := a.preflight(ctx)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(a.BackupDir, 0o700); err != nil {
		return res, exitcode.New(exitcode.Usage, fmt.Errorf("backup directory %s: %w (choose a writable one with --backup-dir)", a.BackupDir, err))
	}
	if err := probeWritable(a.BackupDir); err != nil {
		return res, exitcode.New(exitcode.Usage, err)
	}
	var j *journal
	if !a.DryRun {
		if j, err = openJournal(a.BackupDir, a.Plan.Digest); err != nil {
			return res, exitcode.New(exitcode.Usage, err)
		}
		defer j.close()
	}
	// The lease is the first write; the backup is taken under it, so it is
	// never a snapshot of another apply's half-done work.
	var l *lease
	if !a.DryRun {
		if l, err = acquireLease(ctx, a.Clients.Kube); err != nil {
			return res, exitcode.New(exitcode.Usage, err)
		}
		defer l.release()
	}
	var known map[string]*unstructured.Unstructured
	if res.BackedUp, known, err = a.backup(ctx, targets); err != nil {
		return res, err
	}

	x := &executor{Apply: a, targets: targets, journal: j, writeCtx: context.WithoutCancel(ctx), known: known}
	if a.DryRun {
		x.plannedHooks = a.hooksDeletedByPlan(ctx)
	}
	for _, ph := range plan.Phases {
		if ph == plan.PhasePreflight || ph == plan.PhaseVerify {
			continue
		}
		if err := x.runPhase(ctx, ph); err != nil {
			res.fill(x)
			return res, err
		}
		// A failed step stops the teardown at the end of its phase: later
		// phases rely on this one (no CRD goes while an instance still has
		// its finalizers).
		if x.failedIn(ph) {
			res.fill(x)
			return res, fmt.Errorf("%d steps failed in phase %s (see above); later phases were not run; fix the cause and run the same command again to resume", res.Failed, ph)
		}
	}
	res.fill(x)
	if res.Failed > 0 {
		return res, fmt.Errorf("%d steps failed (see above); fix the cause and run the same command again to resume", res.Failed)
	}
	// A plan with no verify step (the unjoin stage of a multi-cluster plan)
	// leaves KubeSphere in place on purpose; its waits proved its deletes.
	if a.DryRun || !hasVerify(a.Plan) {
		return res, nil
	}
	v, err := a.verify(ctx)
	res.Verification = v
	if err != nil {
		return res, err
	}
	if !v.OK {
		return res, fmt.Errorf("verification failed: %s", strings.Join(v.Problems, "; "))
	}
	return res, nil
}

func (r *Result) fill(x *executor) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r.Steps = append([]StepResult(nil), x.results...)
	sort.Slice(r.Steps, func(i, j int) bool { return r.Steps[i].ID < r.Steps[j].ID })
	r.Done, r.Skipped, r.Failed = 0, 0, 0
	for _, s := range r.Steps {
		switch s.Status {
		case StatusDone:
			r.Done++
		case StatusSkipped:
			r.Skipped++
		case StatusFailed:
			r.Failed++
		}
	}
}

func hasVerify(p *plan.Plan) bool {
	for _, s := range p.Steps {
		if s.Phase == plan.PhaseVerify {
			return true
		}
	}
	return false
}

// refuse is a refusal before any write: exit 2, nothing changed.
func refuse(format string, args ...any) error {
	return exitcode.New(exitcode.Usage, fmt.Errorf(format, args...))
}

// preflight refuses, without writing, a plan that must not run here.
func (a *Apply) preflight(ctx context.Context) (map[string]*resolved, error) {
	p := a.Plan
	if d, err := p.ComputeDigest(); err != nil || d != p.Digest {
		return nil, refuse("plan %s: %v: make a new plan instead of editing one", a.PlanPath, plan.ErrTampered)
	}
	if err := plan.Validate(p); err != nil {
		return nil, refuse("plan %s: %v", a.PlanPath, err)
	}
	targets, err := a.resolve()
	if err != nil {
		return nil, err
	}
	// Permissions first: a user who cannot even read kube-system learns
	// everything that is missing at once.
	if err := checkAccess(ctx, a.Clients.Kube, a.needed(targets)); err != nil {
		return nil, exitcode.New(exitcode.Usage, err)
	}
	var ks *corev1.Namespace
	err = kube.Retry(func() (err error) {
		ks, err = a.Clients.Kube.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read kube-system of %s: %w", a.Clients.Config.Host, err)
	}
	if string(ks.UID) != p.Cluster.UID {
		return nil, refuse("plan %s was made for cluster %s (kube-system %s, context %q), but this cluster's kube-system is %s: check --context, or make a plan for this cluster",
			a.PlanPath, p.Cluster.Server, p.Cluster.UID, p.Cluster.Context, ks.UID)
	}
	if age := time.Since(p.CreatedAt); age > a.MaxAge && !a.AllowStale {
		return nil, refuse("plan %s is %s old (limit %s): the cluster may have changed; make a new plan, or pass --allow-stale", a.PlanPath, age.Round(time.Minute), a.MaxAge)
	}
	if !a.noDriftCheck {
		if err := a.checkDrift(ctx); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// checkDrift rescans and refuses when an object the plan does not detach has
// come to be owned by something the plan deletes (a namespace added to a
// workspace since planning): deleting the owner would let the garbage
// collector delete it.
func (a *Apply) checkDrift(ctx context.Context) error {
	res, err := scan.Run(ctx, a.Clients, scan.Options{Footprint: footprint.Options{KeepWorkspaceLabels: true}})
	if err != nil {
		return fmt.Errorf("rescan before applying: %w", err)
	}
	detached, deleted := map[string]bool{}, map[string]bool{}
	for _, s := range a.Plan.Steps {
		if s.Action == plan.ActionPatch && s.Remove != nil && len(s.Remove.OwnerReferences) > 0 {
			detached[s.Target.UID] = true
		}
		if s.Action == plan.ActionDelete {
			deleted[s.Target.UID] = true
		}
	}
	// A whole teardown removes every owner in the footprint; a partial plan
	// (a multi-cluster plan's unjoin stage) only what it deletes.
	whole := hasVerify(a.Plan)
	removes := func(owners []string) bool {
		for _, uid := range owners {
			if whole || deleted[uid] {
				return true
			}
		}
		return false
	}
	var drift []string
	for _, d := range res.Footprint.Detach {
		if removes(d.Remove.OwnerReferences) && !detached[string(d.Obj.GetUID())] {
			drift = append(drift, fmt.Sprintf("%s %s (%s)", d.Obj.Resource.Kind, strings.Trim(d.Obj.GetNamespace()+"/"+d.Obj.GetName(), "/"), d.Reason))
		}
	}
	if len(drift) > 0 {
		return exitcode.New(exitcode.Usage, fmt.Errorf("the cluster changed since planning: %s would be deleted with its owner, and the plan does not detach it; make a new plan", strings.Join(drift, "; ")))
	}
	return nil
}

// resolve maps every target's apiVersion/kind to a resource by discovery:
// one request per group/version, retried like every read. A type is taken
// as gone (a resumed apply deleted its CRD) only when the server says its
// group/version does not exist or does not serve the kind: a transient
// discovery failure must never turn a detach into a skipped step.
func (a *Apply) resolve() (map[string]*resolved, error) {
	type kinds map[string]metav1.APIResource
	served := map[string]kinds{} // group/version -> kind -> resource; nil: not served
	out := map[string]*resolved{}
	for _, s := range a.Plan.Steps {
		r := &resolved{}
		out[s.ID] = r
		if s.Target.Kind == "" || s.Action == plan.ActionHelmUninstall {
			continue
		}
		gv, err := schema.ParseGroupVersion(s.Target.APIVersion)
		if err != nil {
			return nil, exitcode.New(exitcode.Usage, fmt.Errorf("step %s: apiVersion %q: %w", s.ID, s.Target.APIVersion, err))
		}
		ks, seen := served[gv.String()]
		if !seen {
			var list *metav1.APIResourceList
			err := kube.Retry(func() (err error) {
				list, err = a.Clients.Discovery.ServerResourcesForGroupVersion(gv.String())
				return err
			})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, fmt.Errorf("step %s: discover %s: %w", s.ID, gv, err)
			default:
				ks = kinds{}
				for _, res := range list.APIResources {
					if !strings.Contains(res.Name, "/") {
						ks[res.Kind] = res
					}
				}
			}
			served[gv.String()] = ks
		}
		res, ok := ks[s.Target.Kind]
		if !ok {
			r.gone = true
			continue
		}
		r.gvr, r.namespaced = gv.WithResource(res.Name), res.Namespaced
	}
	return out, nil
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("backup directory %s is not writable: %w (choose another with --backup-dir)", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// executor runs phases.
type executor struct {
	*Apply
	targets  map[string]*resolved
	journal  *journal
	writeCtx context.Context // writes in flight finish even after Ctrl-C
	// plannedHooks (dry run only): webhook name -> configuration the plan deletes.
	plannedHooks map[string]string

	mu      sync.Mutex
	results []StepResult
	writes  int
	// known holds the objects patch steps change as the backup read them,
	// by UID; each is used once, as a patch's first guess.
	known map[string]*unstructured.Unstructured
}

// takeKnown returns what the backup read of an object, once.
func (x *executor) takeKnown(uid string) *unstructured.Unstructured {
	x.mu.Lock()
	defer x.mu.Unlock()
	u := x.known[uid]
	delete(x.known, uid)
	return u
}

func (x *executor) runPhase(ctx context.Context, ph plan.Phase) error {
	var steps []*plan.Step
	for i := range x.Plan.Steps {
		if s := &x.Plan.Steps[i]; s.Phase == ph {
			steps = append(steps, s)
		}
	}
	if len(steps) == 0 {
		return nil
	}
	// One object's steps (strip finalizers, then delete) run in order;
	// different objects run concurrently.
	var groups [][]*plan.Step
	byKey := map[string]int{}
	var waits []*plan.Step
	for _, s := range steps {
		if s.Action == plan.ActionWait {
			waits = append(waits, s)
			continue
		}
		key := s.Target.String() + "/" + s.Target.UID
		if i, ok := byKey[key]; ok {
			groups[i] = append(groups[i], s)
			continue
		}
		byKey[key] = len(groups)
		groups = append(groups, []*plan.Step{s})
	}
	total, done := len(steps), 0
	if x.Progress != nil {
		x.Progress(Event{Phase: ph, Total: total}) // the phase starts
	}
	var doneMu sync.Mutex
	progress := func(s *plan.Step, status, detail string) {
		doneMu.Lock()
		done++
		n := done
		doneMu.Unlock()
		if x.Progress != nil {
			x.Progress(Event{Phase: ph, Done: n, Total: total, Step: s, Status: status, Detail: detail})
		}
	}

	g := errgroup.Group{}
	g.SetLimit(x.Concurrency)
	var interrupted bool
	var imu sync.Mutex
	for _, grp := range groups {
		if ctx.Err() != nil || x.stopReached() {
			imu.Lock()
			interrupted = true
			imu.Unlock()
			break
		}
		g.Go(func() error {
			for _, s := range grp {
				if ctx.Err() != nil || x.stopReached() {
					imu.Lock()
					interrupted = true
					imu.Unlock()
					return nil
				}
				status, detail := x.runStep(s)
				progress(s, status, detail)
				if status == StatusFailed {
					return nil // the object's next steps depend on this one
				}
			}
			return nil
		})
	}
	g.Wait()
	if interrupted {
		return exitcode.New(exitcode.Error, ErrInterrupted)
	}
	if x.failedIn(ph) {
		return nil // Run reports failures after the phase; later phases must not run
	}
	for _, w := range waits {
		if x.journal != nil && x.journal.isDone(w.ID) {
			progress(w, StatusSkipped, "done in an earlier run")
			continue
		}
		if x.DryRun {
			x.record(w, StatusSkipped, "dry run: nothing was deleted")
			progress(w, StatusSkipped, "dry run")
			continue
		}
		detail, err := x.waitPhase(ctx, ph)
		if err != nil {
			x.record(w, StatusFailed, err.Error())
			progress(w, StatusFailed, err.Error())
			return err
		}
		x.record(w, StatusDone, detail)
		progress(w, StatusDone, detail)
	}
	return nil
}

func (x *executor) failedIn(ph plan.Phase) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, r := range x.results {
		if r.Phase == ph && r.Status == StatusFailed {
			return true
		}
	}
	return false
}

func (x *executor) stopReached() bool {
	if x.StopAfter <= 0 {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.writes >= x.StopAfter
}

// written counts a persisted write (StopAfter uses it).
func (x *executor) written() {
	x.mu.Lock()
	x.writes++
	x.mu.Unlock()
}

func (x *executor) record(s *plan.Step, status, detail string) {
	x.mu.Lock()
	x.results = append(x.results, StepResult{ID: s.ID, Phase: s.Phase, Action: s.Action, Target: s.Target, Status: status, Detail: detail})
	x.mu.Unlock()
	if x.journal != nil {
		x.journal.record(s.ID, status, detail)
	}
}

package uninstall

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/lease"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// stage applies one stage of a plan on its cluster.
type stage struct {
	Clients  *kube.Clients
	Plan     *api.Stage
	PlanPath string
	Options

	// createdAt is when the plan was made.
	createdAt    time.Time
	planDigest   string
	multi        bool
	noDriftCheck bool
	noGuard      bool
	journalFault func(step string) error
	// lease is the cluster's, held by the apply for its whole run.
	lease *lease.Lease
	// journal is opened before the Lease is taken (nil in a dry run).
	journal *journal.Journal
}

// wrap names the stage in an error of a plan of several stages.
func (a *stage) wrap(err error) error {
	if !a.multi {
		return err
	}
	return fmt.Errorf("stage %s: %w", a.Plan.Name, err)
}

// open makes the stage's backup directory and opens its journal (none in a
// dry run): Run opens every stage's before the first write (the Lease).
func (a *stage) open() error {
	if err := os.MkdirAll(a.BackupDir, 0o700); err != nil {
		return api.Refuse(api.FixBackupDir, "backup directory %s: %w", a.BackupDir, err)
	}
	if err := probeWritable(a.BackupDir); err != nil {
		return api.Refuse(api.FixBackupDir, "%w", err)
	}
	if a.DryRun {
		return nil
	}
	j, err := openJournal(a.BackupDir, a.journalKey())
	if err != nil {
		return api.Refuse(api.FixBackupDir, "%w", err)
	}
	a.journal = j
	return nil
}

// run applies the stage under the Lease its apply holds for the cluster
// (none in a dry run). targets are its preflight's, if it just ran; else
// the preflight runs first.
func (a *stage) run(ctx context.Context, targets map[string]*resolved) (*StageResult, error) {
	res := &StageResult{Name: a.Plan.Name, Context: a.Plan.Cluster.Context, BackupDir: a.BackupDir, Steps: []StepResult{}}
	if a.DryRun {
		res.BackupDir = filepath.Join(a.BackupDir, "dry-run")
	}

	// Preflight: every refusal comes before the first write.
	var err error
	if targets == nil {
		if targets, err = a.preflight(ctx); err != nil {
			return res, err
		}
	}
	// The backup is taken under the Lease, so it is never a snapshot of
	// another run's half-done work. Every write runs under the Lease's
	// context: a lost Lease stops them.
	writeCtx := context.WithoutCancel(ctx)
	if !a.DryRun {
		writeCtx = a.lease.Context()
	}
	// The guard is set while the backup reads: the apiserver takes up to
	// a second to enforce a new policy, and neither needs the other. Both
	// are done before the first step.
	var g *guard
	var guardErr error
	guardSet := make(chan struct{})
	go func() {
		defer close(guardSet)
		if !a.DryRun && !a.noGuard {
			g, guardErr = installGuard(writeCtx, a.Clients, a.Plan, a.lease.Halt)
		}
	}()
	var known map[string]*unstructured.Unstructured
	res.BackedUp, known, err = a.backup(ctx, targets)
	<-guardSet
	if g != nil {
		res.Guard = g.mode
		// Removed on every way out, except after losing the Lease (the
		// apply that holds it now owns the cluster and takes it over), and
		// while protected objects are still owned by what was deleted: the
		// garbage collector would delete them the moment it went.
		defer func() {
			if v := res.Verification; v != nil && len(v.AtRisk) > 0 && g.mode == GuardPolicy {
				res.GuardKept = true
				return
			}
			if a.lease.Lost() == nil {
				g.remove(ctx)
			}
		}()
	}
	if err != nil {
		return res, err
	}
	if guardErr != nil {
		return res, guardErr
	}

	a.Clients.Pace.SetMax(a.Concurrency)
	x := &executor{stage: a, targets: targets, writeCtx: writeCtx, known: known, resolver: kube.NewResolver(a.Clients)}
	if a.DryRun {
		x.plannedHooks = a.hooksDeletedByPlan(ctx)
	}
	for _, ph := range phases(a.Plan) {
		if ph == api.PhasePreflight || ph == api.PhaseVerify {
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
	if a.DryRun || !a.Plan.Whole() {
		return res, nil
	}
	v, err := a.verify(ctx)
	res.Verification = v
	if err != nil {
		return res, err
	}
	if !v.OK {
		err := fmt.Errorf("verification failed: %s", strings.Join(v.Problems, "; "))
		if len(v.AtRisk) > 0 && res.Guard == GuardPolicy {
			// Said here, before the deferred removal decides, because the
			// decision rests on the same AtRisk list.
			err = fmt.Errorf("%w; the deletion guard %s stays in place so that the garbage collector cannot delete them: run 'ks-clean plan' again (it detaches them) and apply the new plan, which takes the guard over and removes it at the end", err, GuardName)
		}
		return res, err
	}
	return res, nil
}

func (r *StageResult) fill(x *executor) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r.Steps = append([]StepResult{}, x.results...) // [] not null in JSON when none ran
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

// phases lists the stage's phases in the order its steps run them
// (Validate has checked that order against the phase table).
func phases(st *api.Stage) []api.Phase {
	var out []api.Phase
	for _, s := range st.Steps {
		if len(out) == 0 || out[len(out)-1] != s.Phase {
			out = append(out, s.Phase)
		}
	}
	return out
}

// journalKey ties a journal to the stage it records: the plan's digest,
// and the stage's name within it.
func (a *stage) journalKey() string {
	if !a.multi {
		return a.planDigest
	}
	return a.planDigest + "/" + a.Plan.Name
}

// resolved is a step's target mapped to its API resource.
type resolved struct {
	gvr        schema.GroupVersionResource
	namespaced bool
	gone       bool // its type no longer exists: so neither does it
}

// preflight refuses, without writing, a plan that must not run here.
func (a *stage) preflight(ctx context.Context) (map[string]*resolved, error) {
	p := a.Plan
	targets, err := a.resolve(ctx)
	if err != nil {
		return nil, err
	}
	// Permissions first: a user who cannot even read kube-system learns
	// everything that is missing at once.
	if err := checkAccess(ctx, a.Clients.Kube, a.needed(targets)); err != nil {
		return nil, err
	}
	var ks *corev1.Namespace
	err = kube.Retry(ctx, func() (err error) {
		ks, err = a.Clients.Kube.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read kube-system of %s: %w", a.Clients.Config.Host, err)
	}
	if string(ks.UID) != p.Cluster.UID {
		return nil, api.Refuse(api.FixCluster, "plan %s was made for cluster %s (kube-system %s, context %q), but this cluster's kube-system is %s",
			a.PlanPath, p.Cluster.Server, p.Cluster.UID, p.Cluster.Context, ks.UID)
	}
	if age := time.Since(a.createdAt); age > a.MaxAge && !a.AllowStale {
		return nil, api.Refuse(api.FixAllowStale, "plan %s is %s old (limit %s): the cluster may have changed", a.PlanPath, age.Round(time.Minute), a.MaxAge)
	}
	if err := a.checkReleases(ctx); err != nil {
		return nil, err
	}
	// What the plan may touch is derived again from the cluster: a plan
	// file proves nothing against someone who can write it.
	fp, err := scan.Footprint(ctx, a.Clients, scan.Options{})
	if err != nil {
		return nil, fmt.Errorf("rescan before applying: %w", err)
	}
	extra, err := plan.Rederive(fp, p)
	if err != nil {
		return nil, err
	}
	if len(extra) > 0 {
		// The stage guarded and verified is the plan's plus what the fresh
		// scan protects; the plan itself (and its digest) stays as read.
		st := *p
		st.Protected = append(slices.Clone(p.Protected), extra...)
		a.Plan = &st
	}
	if !a.noDriftCheck {
		if err := a.checkDrift(fp); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// checkDrift rescans and refuses when an object the plan does not detach has
// come to be owned by something the plan deletes (a namespace added to a
// workspace since planning): deleting the owner would let the garbage
// collector delete it.
func (a *stage) checkDrift(fp *footprint.Footprint) error {
	detached, deleted := map[string]bool{}, map[string]bool{}
	for _, s := range a.Plan.Steps {
		if s.Action == api.ActionPatch && s.Remove != nil && len(s.Remove.OwnerReferences) > 0 {
			detached[s.Target.UID] = true
		}
		if s.Action == api.ActionDelete {
			deleted[s.Target.UID] = true
		}
	}
	// A whole teardown removes every owner in the footprint; a partial plan
	// (a multi-cluster plan's unjoin stage) only what it deletes.
	whole := a.Plan.Whole()
	removes := func(owners []string) bool {
		for _, uid := range owners {
			if whole || deleted[uid] {
				return true
			}
		}
		return false
	}
	var drift []string
	for _, d := range fp.Detach {
		if removes(d.Remove.OwnerReferences) && !detached[string(d.Obj.GetUID())] {
			drift = append(drift, fmt.Sprintf("%s %s (%s)", d.Obj.Resource.Kind, strings.Trim(d.Obj.GetNamespace()+"/"+d.Obj.GetName(), "/"), d.Reason))
		}
	}
	if len(drift) > 0 {
		return api.Refuse(api.FixNewPlan, "the cluster changed since planning: %s would be deleted with its owner, and the plan does not detach it", strings.Join(drift, "; "))
	}
	// What each delete takes with it, again: nothing the plan did not show
	// may have come to depend on what it deletes.
	shown := map[string]bool{}
	for _, s := range a.Plan.Steps {
		if s.Action == api.ActionDelete {
			shown[s.Target.UID] = true
		}
		if s.Cascade != nil {
			for _, r := range s.Cascade.To {
				shown[r.UID] = true
			}
		}
	}
	targets := map[string]api.ObjectRef{}
	for _, s := range a.Plan.Steps {
		targets[s.ID] = s.Target
	}
	var grown []string
	for id, c := range plan.Cascades(fp, a.Plan) {
		for _, r := range c.To {
			if !shown[r.UID] {
				grown = append(grown, fmt.Sprintf("deleting %s would now also take %s", targets[id], r))
			}
		}
	}
	if len(grown) > 0 {
		sort.Strings(grown)
		return api.Refuse(api.FixNewPlan, "the cluster changed since planning: %s, which the plan does not show", strings.Join(grown, "; "))
	}
	return nil
}

// resolve maps every target's apiVersion/kind to a resource by discovery:
// one request per group/version, retried like every read. A type is taken
// as gone (a resumed apply deleted its CRD) only when the server says its
// group/version does not exist or does not serve the kind: a transient
// discovery failure must never turn a detach into a skipped step.
func (a *stage) resolve(ctx context.Context) (map[string]*resolved, error) {
	type kinds map[string]metav1.APIResource
	served := map[string]kinds{} // group/version -> kind -> resource; nil: not served
	// The server's list of group/versions says at once which are gone (a
	// resumed apply deleted their CRDs): asking each of those would wait out
	// retries on the answers of an aggregator that has not caught up.
	var groups *metav1.APIGroupList
	if err := kube.Retry(ctx, func() (err error) {
		groups, err = a.Clients.Discovery.ServerGroups()
		return err
	}); err != nil {
		return nil, fmt.Errorf("discover API groups: %w", err)
	}
	listed := map[string]bool{"v1": true}
	for _, g := range groups.Groups {
		for _, v := range g.Versions {
			listed[v.GroupVersion] = true
		}
	}
	out := map[string]*resolved{}
	for _, s := range a.Plan.Steps {
		r := &resolved{}
		out[s.ID] = r
		if s.Target.Kind == "" || s.Action == api.ActionHelmUninstall {
			continue
		}
		gv, err := schema.ParseGroupVersion(s.Target.APIVersion)
		if err != nil {
			return nil, api.Refuse(api.FixNewPlan, "step %s: apiVersion %q: %w", s.ID, s.Target.APIVersion, err)
		}
		ks, seen := served[gv.String()]
		if !seen && listed[gv.String()] {
			var list *metav1.APIResourceList
			err := kube.Retry(ctx, func() (err error) {
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
		return fmt.Errorf("backup directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// executor runs phases.
type executor struct {
	*stage
	targets  map[string]*resolved
	writeCtx context.Context // writes in flight finish even after Ctrl-C
	// resolver maps the kinds of release manifests (discovery, read once).
	resolver *kube.Resolver
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

func (x *executor) runPhase(ctx context.Context, ph api.Phase) error {
	var steps []*api.Step
	for i := range x.Plan.Steps {
		if s := &x.Plan.Steps[i]; s.Phase == ph {
			steps = append(steps, s)
		}
	}
	if len(steps) == 0 {
		return nil
	}
	// Wave by wave (Step.Wave); within a wave, one object's steps (strip
	// finalizers, then delete) run in order, different objects
	// concurrently.
	var waves [][][]*api.Step
	wave := 0
	byKey := map[string]int{}
	var waits []*api.Step
	for _, s := range steps {
		if s.Action == api.ActionWait {
			waits = append(waits, s)
			continue
		}
		if len(waves) == 0 || s.Wave != wave {
			waves, wave = append(waves, nil), s.Wave
			byKey = map[string]int{}
		}
		groups := &waves[len(waves)-1]
		key := s.Target.String() + "/" + s.Target.UID
		if i, ok := byKey[key]; ok {
			(*groups)[i] = append((*groups)[i], s)
			continue
		}
		byKey[key] = len(*groups)
		*groups = append(*groups, []*api.Step{s})
	}
	total, done := len(steps), 0
	if x.Progress != nil {
		x.Progress(Event{Phase: ph, Total: total}) // the phase starts
	}
	var doneMu sync.Mutex
	progress := func(s *api.Step, status, detail string) {
		doneMu.Lock()
		done++
		n := done
		doneMu.Unlock()
		if x.Progress != nil {
			x.Progress(Event{Phase: ph, Done: n, Total: total, Step: s, Status: status, Detail: detail})
		}
	}

	var interrupted atomic.Bool
	stopped := func() bool {
		if ctx.Err() != nil || x.stopReached() || x.lease.Stopped() != nil {
			interrupted.Store(true)
		}
		return interrupted.Load()
	}
	for _, groups := range waves {
		g := errgroup.Group{}
		g.SetLimit(x.Concurrency)
		for _, grp := range groups {
			if stopped() {
				break
			}
			g.Go(func() error {
				for _, s := range grp {
					if stopped() {
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
		if interrupted.Load() || x.failedIn(ph) {
			break // a later wave may depend on this one
		}
	}
	if err := x.lease.Stopped(); err != nil {
		return err
	}
	if interrupted.Load() {
		return api.ErrInterrupted
	}
	if x.failedIn(ph) {
		return nil // Run reports failures after the phase; later phases must not run
	}
	for _, w := range waits {
		if x.journal != nil && x.journal.Done(w.ID) {
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

func (x *executor) failedIn(ph api.Phase) bool {
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

func (x *executor) record(s *api.Step, status, detail string) {
	x.mu.Lock()
	x.results = append(x.results, StepResult{ID: s.ID, Phase: s.Phase, Action: s.Action, Target: s.Target, Status: status, Detail: detail})
	x.mu.Unlock()
	if x.journal == nil {
		return
	}
	err := x.journal.Record(s.ID, status, detail)
	if err == nil && x.journalFault != nil {
		err = x.journalFault(s.ID)
	}
	if err != nil {
		// Unrecorded, a finished step would run again after a crash,
		// and a resume could not be trusted: no further write.
		x.lease.Halt(err)
	}
}

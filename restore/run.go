package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/lease"
)

// PlanFile and JournalFile are the restore's own files in the backup
// directory: the plan it runs, and its progress, so that the same command
// resumes after a crash.
const (
	PlanFile    = "restore-plan.json"
	JournalFile = "restore-journal.jsonl"
)

// Step outcomes.
const (
	StatusDone     = journal.Done
	StatusSkipped  = journal.Skipped
	StatusConflict = "conflict"
	StatusFailed   = journal.Failed
)

// KindResult is the kind of a restore's result.
const KindResult = "RestoreResult"

// Result is the machine-readable outcome (`restore -o json`).
type Result struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	DryRun     bool          `json:"dryRun"`
	Plan       string        `json:"plan"`
	Stages     []StageResult `json:"stages"`
	// Totals over the stages.
	Created   int `json:"created"`
	Skipped   int `json:"skipped"`
	Conflicts int `json:"conflicts"`
	Failed    int `json:"failed"`
	// Verification: every object the plan creates is there, every object
	// apply kept still has its UID. Nil on a dry run.
	Verification *Verification `json:"verification,omitempty"`
	// DurationSeconds is the wall time of the run.
	DurationSeconds float64 `json:"durationSeconds"`
}

// StageResult is one stage's outcome.
type StageResult struct {
	Name  string       `json:"name"`
	Steps []StepResult `json:"steps"`
}

// StepResult is one step's outcome.
type StepResult struct {
	ID     string        `json:"id"`
	Tier   api.Tier      `json:"tier"`
	Action api.Action    `json:"action"`
	Target api.ObjectRef `json:"target"`
	Status string        `json:"status"`
	Detail string        `json:"detail,omitempty"`
}

// Verification is the final check.
type Verification struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
}

// Restore runs a restore plan.
type Restore struct {
	Plan *api.RestorePlan
	// Clients by the stages' kubeconfig contexts.
	Clients map[string]*kube.Clients
	// PlanPath names the plan; its digest keys the journal beside it.
	PlanPath string
	Options
}

// Run restores stage after stage. Before the first write it checks every
// stage's backup is still as the plan saw it and its cluster is the one
// backed up.
func (r *Restore) Run(ctx context.Context) (*Result, error) {
	start := time.Now()
	res := &Result{APIVersion: api.APIVersion, Kind: KindResult, DryRun: r.DryRun, Plan: r.PlanPath, Stages: []StageResult{}}
	defer func() { res.DurationSeconds = time.Since(start).Seconds() }()
	d := DefaultOptions()
	for _, f := range []struct{ v, def *time.Duration }{
		{&r.EstablishTimeout, &d.EstablishTimeout}, {&r.LeaseDuration, &d.LeaseDuration}, {&r.LeaseCheck, &d.LeaseCheck},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if r.Concurrency <= 0 {
		r.Concurrency = d.Concurrency
	}
	entries := map[string]map[string]api.BackupEntry{}
	for _, st := range r.Plan.Stages {
		x, _, err := api.ReadBackup(st.Dir)
		if err != nil {
			return res, err
		}
		entries[st.Dir] = map[string]api.BackupEntry{}
		for _, e := range x.Objects {
			entries[st.Dir][e.File] = e
		}
		if x.Digest != st.BackupDigest {
			return res, api.Refuse(api.FixBackup, "backup %s changed since restore plan %s was made: move the plan away and run restore again", st.Dir, r.PlanPath)
		}
		c := r.Clients[st.Cluster.Context]
		if c == nil {
			return res, fmt.Errorf("no connection for stage %s (context %q)", st.Name, st.Cluster.Context)
		}
		if err := sameCluster(ctx, c, st.Dir, x); err != nil {
			return res, err
		}
	}
	// Journals first, then one Lease per cluster for the whole restore:
	// a refusal of either writes nothing, and no other run writes to a
	// cluster between two of its stages.
	journals := make([]*journal.Journal, len(r.Plan.Stages))
	leases := map[string]*lease.Lease{}
	if !r.DryRun {
		for i, st := range r.Plan.Stages {
			j, err := journal.Open(filepath.Join(st.Dir, JournalFile), r.Plan.Digest)
			if err != nil {
				return res, api.Refuse(api.FixBackup, "%s of %s is another restore plan's: move it away to start over (what an earlier restore created is then found present, not created twice)", JournalFile, st.Dir)
			}
			defer j.Close()
			journals[i] = j
		}
		for _, st := range r.Plan.Stages {
			if leases[st.Cluster.UID] != nil {
				continue
			}
			l, err := lease.Acquire(ctx, r.Clients[st.Cluster.Context].Kube, lease.Options{Duration: r.LeaseDuration, Check: r.LeaseCheck})
			if err != nil {
				return res, err
			}
			defer l.Release()
			leases[st.Cluster.UID] = l
		}
	}
	v := &Verification{OK: true, Problems: []string{}}
	writes := 0
	for i := range r.Plan.Stages {
		st := &r.Plan.Stages[i]
		sr, err := r.runStage(ctx, st, entries[st.Dir], journals[i], leases[st.Cluster.UID], &writes)
		res.Stages = append(res.Stages, *sr)
		for _, s := range sr.Steps {
			switch s.Status {
			case StatusDone:
				res.Created++
			case StatusSkipped:
				res.Skipped++
			case StatusConflict:
				res.Conflicts++
			case StatusFailed:
				res.Failed++
			}
		}
		res.Conflicts += len(st.Conflicts)
		if err != nil {
			return res, err
		}
		if res.Failed > 0 {
			return res, fmt.Errorf("%d steps failed (see above); fix the cause and run the same command again to resume", res.Failed)
		}
		if !r.DryRun {
			r.verify(ctx, st, v)
		}
	}
	if r.DryRun {
		return res, nil
	}
	v.OK = len(v.Problems) == 0
	res.Verification = v
	if !v.OK {
		return res, fmt.Errorf("restore's final check failed: %s", strings.Join(v.Problems, "; "))
	}
	return res, nil
}

// stage is one stage's run.
type stage struct {
	*Restore
	st      *api.RestoreStage
	c       *kube.Clients
	res     *kube.Resolver
	journal *journal.Journal
	ctx     context.Context // writes: cancelled with the Lease
	// scaledDown: workloads created with 0 replicas, scaled back last.
	scaledDown map[string]bool
	// entries: the backup's index, by file.
	entries map[string]api.BackupEntry
}

func (r *Restore) runStage(ctx context.Context, st *api.RestoreStage, entries map[string]api.BackupEntry, j *journal.Journal, l *lease.Lease, writes *int) (*StageResult, error) {
	sr := &StageResult{Name: st.Name, Steps: []StepResult{}}
	c := r.Clients[st.Cluster.Context]
	s := &stage{Restore: r, st: st, c: c, res: kube.NewResolver(c), ctx: context.WithoutCancel(ctx), scaledDown: map[string]bool{}, entries: entries}
	for _, step := range st.Steps {
		if step.Action == api.ActionScale {
			s.scaledDown[step.Target.UID] = true
		}
	}
	lost := func() error { return nil }
	if !r.DryRun {
		s.ctx, lost, s.journal = l.Context(), l.Stopped, j
	}
	var mu sync.Mutex
	record := func(step *api.RestoreStep, status, detail string) {
		mu.Lock()
		defer mu.Unlock()
		sr.Steps = append(sr.Steps, StepResult{ID: step.ID, Tier: step.Tier, Action: step.Action, Target: step.Target, Status: status, Detail: detail})
		if status == StatusDone {
			*writes++
		}
		if s.journal != nil && status != StatusFailed {
			if err := s.journal.Record(step.ID, status, detail); err != nil {
				l.Halt(err) // unrecorded, a resume could not be trusted: no further write
			}
		}
	}
	stopped := func() error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case lost() != nil:
			return lost()
		case ctx.Err() != nil, r.StopAfter > 0 && *writes >= r.StopAfter:
			return api.ErrInterrupted
		}
		return nil
	}
	for _, tier := range api.Tiers {
		waves := map[int][]*api.RestoreStep{}
		last := -1
		for i := range st.Steps {
			if step := &st.Steps[i]; step.Tier == tier {
				waves[step.Wave] = append(waves[step.Wave], step)
				last = max(last, step.Wave)
			}
		}
		for w := 0; w <= last; w++ {
			var g errgroup.Group
			g.SetLimit(r.Concurrency)
			for _, step := range waves[w] {
				if err := stopped(); err != nil {
					_ = g.Wait() // writes in flight finish and are journaled
					return sr, err
				}
				if s.journal != nil && s.journal.Done(step.ID) {
					continue
				}
				g.Go(func() error {
					status, detail, err := s.do(step)
					if err != nil {
						status, detail = StatusFailed, err.Error()
					}
					record(step, status, detail)
					return nil
				})
			}
			_ = g.Wait()
		}
		if err := stopped(); err != nil {
			return sr, err
		}
		if tier == api.TierCRDs && len(waves) > 0 {
			var crds []*api.RestoreStep
			for _, w := range waves {
				crds = append(crds, w...)
			}
			if err := s.establish(ctx, crds); err != nil {
				return sr, err
			}
		}
	}
	sort.Slice(sr.Steps, func(i, j int) bool { return sr.Steps[i].ID < sr.Steps[j].ID })
	return sr, nil
}

func (s *stage) ri(ref api.ObjectRef) (dynamic.ResourceInterface, error) {
	if _, _, ok := s.res.Resource(ref.APIVersion, ref.Kind); !ok {
		s.res.Reset()
	}
	return s.res.Client(ref.APIVersion, ref.Kind, ref.Namespace)
}

func (s *stage) do(step *api.RestoreStep) (status, detail string, err error) {
	switch step.Action {
	case api.ActionCreate:
		return s.create(step)
	case api.ActionReattach:
		return s.reattach(step, true)
	case api.ActionOwn:
		return s.reattach(step, false)
	case api.ActionScale:
		return s.scale(step)
	}
	return "", "", fmt.Errorf("unknown action %q", step.Action)
}

func (s *stage) dryRun() []string {
	if s.DryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// create makes the object again from its backup: no server-set fields,
// owner references pointing at the owners as they are now (an owner that is
// not there is dropped: the garbage collector would delete the object at
// once), 0 replicas for a workload scaled back later.
func (s *stage) create(step *api.RestoreStep) (string, string, error) {
	u, err := s.read(step)
	if err != nil {
		return "", "", err
	}
	ri, err := s.ri(step.Target)
	if err != nil && s.DryRun {
		return StatusSkipped, "dry run: its CustomResourceDefinition is restored by an earlier step", nil
	}
	if err != nil {
		return "", "", err
	}
	obj := portable(u)
	dropped := s.res.RemapOwners(s.ctx, obj)
	if s.scaledDown[step.Target.UID] {
		_ = unstructured.SetNestedField(obj.Object, int64(0), "spec", "replicas")
	}
	var created *unstructured.Unstructured
	var notes []string
	err = kube.Retry(s.ctx, func() (err error) {
		created, err = ri.Create(s.ctx, obj, metav1.CreateOptions{DryRun: s.dryRun()})
		if err != nil && isPortTaken(err) && withoutNodePorts(obj) {
			// A node port of the Service went to another since: let the
			// server choose, and say so (clients outside use them).
			notes = append(notes, "its node ports were taken since: the server chose new ones")
			created, err = ri.Create(s.ctx, obj, metav1.CreateOptions{DryRun: s.dryRun()})
		}
		return err
	})
	if apierrors.IsNotFound(err) && s.DryRun && u.GetNamespace() != "" {
		return StatusSkipped, "dry run: its namespace is restored by an earlier step", nil
	}
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := ri.Get(s.ctx, step.Target.Name, metav1.GetOptions{})
		if gerr != nil {
			return "", "", gerr
		}
		if equal(cur, u) || s.scaledDown[step.Target.UID] {
			return StatusSkipped, "present already (made by this restore, or by a controller)", nil
		}
		return StatusConflict, "was created by someone else meanwhile, and differs from the backup: left alone", nil
	}
	if err != nil {
		return "", "", err
	}
	if len(dropped) > 0 {
		notes = append(notes, "owner references dropped (owner not there): "+strings.Join(dropped, ", "))
	}
	detail := strings.Join(notes, "; ")
	if err := s.rebind(created, u); err != nil {
		return "", "", err
	}
	return StatusDone, detail, nil
}

// read reads the step's object from the backup, checked against the index
// again: the file may have changed since the plan was made.
func (s *stage) read(step *api.RestoreStep) (*unstructured.Unstructured, error) {
	e, ok := s.entries[step.File]
	if !ok || e.UID != step.Target.UID {
		return nil, fmt.Errorf("%s: %s is not the backup's file of it", step.Target, step.File)
	}
	return readObject(s.st.Dir, e)
}

func isPortTaken(err error) bool {
	return apierrors.IsInvalid(err) && strings.Contains(err.Error(), "already allocated")
}

// rebind gives a retained volume to its restored claim: the volume's
// claimRef still names the deleted claim's UID, which no new claim has, so
// the claim would stay Pending and the data unused.
func (s *stage) rebind(created, backed *unstructured.Unstructured) error {
	if s.DryRun || created == nil || backed.GetKind() != "PersistentVolumeClaim" || backed.GetAPIVersion() != "v1" {
		return nil
	}
	volume, _, _ := unstructured.NestedString(backed.Object, "spec", "volumeName")
	if volume == "" {
		return nil
	}
	pv, err := s.c.Kube.CoreV1().PersistentVolumes().Get(s.ctx, volume, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cr := pv.Spec.ClaimRef
	if cr == nil || cr.Namespace != backed.GetNamespace() || cr.Name != backed.GetName() || cr.UID != backed.GetUID() {
		return nil // the volume went elsewhere since: leave it
	}
	patch, _ := json.Marshal([]map[string]any{
		{"op": "test", "path": "/spec/claimRef/uid", "value": string(backed.GetUID())},
		{"op": "replace", "path": "/spec/claimRef/uid", "value": string(created.GetUID())},
		{"op": "remove", "path": "/spec/claimRef/resourceVersion"},
	})
	if cr.ResourceVersion == "" {
		patch, _ = json.Marshal([]map[string]any{
			{"op": "test", "path": "/spec/claimRef/uid", "value": string(backed.GetUID())},
			{"op": "replace", "path": "/spec/claimRef/uid", "value": string(created.GetUID())},
		})
	}
	_, err = s.c.Kube.CoreV1().PersistentVolumes().Patch(s.ctx, volume, types.JSONPatchType, patch, metav1.PatchOptions{})
	return err
}

// reattach puts back on a kept object (kept: it must still have its UID)
// the owner references and labels apply's detach removed, as the backup has
// them, pointing at the owners as they exist now; on a restored object
// (own), the owner references its owners were too late for.
func (s *stage) reattach(step *api.RestoreStep, kept bool) (string, string, error) {
	u, err := s.read(step)
	if err != nil {
		return "", "", err
	}
	ri, err := s.ri(step.Target)
	if err != nil && s.DryRun && !kept {
		return StatusSkipped, "dry run: its CustomResourceDefinition is restored by an earlier step", nil
	}
	if err != nil {
		return "", "", err
	}
	cur, err := ri.Get(s.ctx, step.Target.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && s.DryRun && !kept {
		return StatusSkipped, "dry run: created by an earlier step", nil
	}
	if err != nil {
		return "", "", err
	}
	if kept && string(cur.GetUID()) != step.Target.UID {
		return StatusConflict, "re-created since the apply (another UID): left alone", nil
	}
	want := u.DeepCopy()
	dropped := s.res.RemapOwners(s.ctx, want)
	refs := cur.GetOwnerReferences()
	have := map[types.UID]bool{}
	for _, r := range refs {
		have[r.UID] = true
	}
	for _, r := range want.GetOwnerReferences() {
		if !have[r.UID] {
			refs = append(refs, r)
		}
	}
	md := map[string]any{"uid": string(cur.GetUID()), "resourceVersion": cur.GetResourceVersion(), "ownerReferences": refs}
	if kept {
		labels := cur.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range u.GetLabels() {
			if _, ok := labels[k]; !ok {
				labels[k] = v
			}
		}
		md["labels"] = labels
	}
	patch, _ := json.Marshal(map[string]any{"metadata": md})
	if _, err := ri.Patch(s.ctx, step.Target.Name, types.MergePatchType, patch, metav1.PatchOptions{DryRun: s.dryRun()}); err != nil {
		return "", "", err
	}
	detail := ""
	if len(dropped) > 0 {
		detail = "not there to re-attach to: " + strings.Join(dropped, ", ")
	}
	return StatusDone, detail, nil
}

// scale sets a workload back to the replicas the plan recorded.
func (s *stage) scale(step *api.RestoreStep) (string, string, error) {
	ri, err := s.ri(step.Target)
	if err != nil && s.DryRun {
		return StatusSkipped, "dry run: its CustomResourceDefinition is restored by an earlier step", nil
	}
	if err != nil {
		return "", "", err
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"replicas": *step.Replicas}})
	_, err = ri.Patch(s.ctx, step.Target.Name, types.MergePatchType, patch, metav1.PatchOptions{DryRun: s.dryRun()})
	if apierrors.IsNotFound(err) && s.DryRun {
		return StatusSkipped, "dry run: created by an earlier step", nil
	}
	if err != nil {
		return "", "", err
	}
	return StatusDone, fmt.Sprintf("replicas %d", *step.Replicas), nil
}

// establish waits until every restored CRD is Established, then forgets
// what discovery said: their kinds are served now.
func (s *stage) establish(ctx context.Context, steps []*api.RestoreStep) error {
	if s.DryRun {
		return nil
	}
	crds := s.c.Dynamic.Resource(crdGVR)
	for _, step := range steps {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, s.EstablishTimeout, true, func(ctx context.Context) (bool, error) {
			u, err := crds.Get(ctx, step.Target.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CustomResourceDefinition %s was not Established within %s: check it with kubectl, then run the same command again to resume", step.Target.Name, s.EstablishTimeout)
		}
	}
	s.res.Reset()
	return nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// verify: every object the plan creates is there, and every object apply
// kept still has its UID.
func (r *Restore) verify(ctx context.Context, st *api.RestoreStage, v *Verification) {
	c := r.Clients[st.Cluster.Context]
	s := &stage{Restore: r, st: st, c: c, res: kube.NewResolver(c), ctx: ctx}
	for _, step := range st.Steps {
		if step.Action != api.ActionCreate {
			continue
		}
		ri, err := s.ri(step.Target)
		if err == nil {
			_, err = ri.Get(ctx, step.Target.Name, metav1.GetOptions{})
		}
		if err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("%s is not back: %v", step.Target, err))
		}
	}
	for _, p := range st.Protected {
		ri, err := s.ri(p)
		if err != nil {
			v.Problems = append(v.Problems, fmt.Sprintf("%s, kept by apply: %v", p, err))
			continue
		}
		cur, err := ri.Get(ctx, p.Name, metav1.GetOptions{})
		switch {
		case err != nil:
			v.Problems = append(v.Problems, fmt.Sprintf("%s, kept by apply, is gone: %v", p, err))
		case string(cur.GetUID()) != p.UID:
			v.Problems = append(v.Problems, fmt.Sprintf("%s, kept by apply, was replaced (UID %s, was %s)", p, cur.GetUID(), p.UID))
		}
	}
}

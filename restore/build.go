package restore

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
)

// Options of a restore.
type Options struct {
	// Reattach gives users' objects back the owner references and labels
	// apply's detach removed. Off by default: on KubeSphere 3.x that brings
	// back the hazard the detach removed (a Workspace deleted by a stale
	// KubeFed takes its namespaces with it).
	Reattach bool
	// DryRun sends every write with dryRun=All.
	DryRun bool
	// Concurrency bounds the writes in flight within a tier.
	Concurrency int
	// EstablishTimeout bounds the wait for each restored CRD.
	EstablishTimeout time.Duration
	// LeaseDuration, LeaseCheck: as apply's.
	LeaseDuration, LeaseCheck time.Duration
	// StopAfter, when positive, stops after that many writes as if
	// interrupted (tests use it to prove resumption).
	StopAfter int
	// AllowKinds are the kinds of SensitiveKinds the operator allows
	// restore to create (--allow-kind); any other object of those kinds in
	// the restore refuses it.
	AllowKinds []string
}

// DefaultOptions are every option's default.
func DefaultOptions() Options {
	return Options{Concurrency: 8, EstablishTimeout: time.Minute, LeaseDuration: 60 * time.Second, LeaseCheck: 2 * time.Second}
}

// Build makes the restore plan: for each stage, what apply deleted and is
// missing now is created again, what exists and differs is a conflict left
// alone, workloads apply scaled down are scaled back. clients are by the
// stages' kubeconfig contexts.
func Build(ctx context.Context, srcs []*Source, clients map[string]*kube.Clients, backup string, o Options) (*api.RestorePlan, error) {
	p := &api.RestorePlan{APIVersion: api.APIVersion, Kind: api.KindRestorePlan, CreatedAt: time.Now().UTC(), Backup: backup}
	for _, src := range srcs {
		c := clients[src.Stage.Cluster.Context]
		if c == nil {
			return nil, fmt.Errorf("no connection for stage %s (context %q)", src.Stage.Name, src.Stage.Cluster.Context)
		}
		st, err := buildStage(ctx, src, c, o)
		if err != nil {
			return nil, err
		}
		p.Stages = append(p.Stages, *st)
	}
	if err := Check(p, srcs, o); err != nil {
		return nil, err
	}
	return p, p.Seal()
}

// serviceAccountToken: a Secret the token controller owns (made by it
// before Kubernetes 1.24, or filled by it), tied to one ServiceAccount UID.
func serviceAccountToken(u *unstructured.Unstructured) bool {
	t, _, _ := unstructured.NestedString(u.Object, "type")
	return u.GetKind() == "Secret" && u.GetAPIVersion() == "v1" && t == "kubernetes.io/service-account-token"
}

func tierOf(r api.ObjectRef) api.Tier {
	switch {
	case r.Kind == "Namespace" && r.Group() == "":
		return api.TierNamespaces
	case r.Kind == "CustomResourceDefinition" && r.Group() == "apiextensions.k8s.io":
		return api.TierCRDs
	case (r.Kind == "ValidatingWebhookConfiguration" || r.Kind == "MutatingWebhookConfiguration") && r.Group() == "admissionregistration.k8s.io",
		r.Kind == "APIService" && r.Group() == "apiregistration.k8s.io":
		return api.TierWebhooks
	case r.Namespace == "":
		return api.TierCluster
	}
	return api.TierNamespaced
}

// skipped kinds: records of what happened, not state.
func skipped(r api.ObjectRef) bool {
	return r.Kind == "Event" && (r.Group() == "" || r.Group() == "events.k8s.io")
}

func buildStage(ctx context.Context, src *Source, c *kube.Clients, o Options) (*api.RestoreStage, error) {
	if err := sameCluster(ctx, c, src.Dir, src.Index); err != nil {
		return nil, err
	}
	st := &api.RestoreStage{Name: src.Stage.Name, Cluster: src.Stage.Cluster, Dir: src.Dir, BackupDigest: src.Index.Digest,
		Steps: []api.RestoreStep{}, Conflicts: []api.RestoreNote{}, Kept: []api.RestoreNote{}, Protected: src.Stage.Protected}
	f, err := analyze(src)
	if err != nil {
		return nil, err
	}
	st.Kept = append(st.Kept, keptByApply(src, f, o)...)
	cands, err := candidates(ctx, src, f, kube.NewResolver(c), st)
	if err != nil {
		return nil, err
	}
	cands.order()
	addSteps(st, src, f, cands, o)
	return st, nil
}

// keptByApply are what apply changed that restore leaves as it is, and why.
func keptByApply(src *Source, f *facts, o Options) []api.RestoreNote {
	var out []api.RestoreNote
	for _, s := range src.Stage.Steps {
		if !src.done(s.ID) {
			continue
		}
		switch {
		case s.Action == api.ActionRetain:
			out = append(out, api.RestoreNote{Object: s.Target, Reason: fmt.Sprintf("reclaim policy stays Retain (it was %s): a released volume set back to Delete would be deleted with its data; a restored claim is bound to it again", s.ReclaimPolicy)})
		case s.Action == api.ActionFinalize:
			out = append(out, api.RestoreNote{Object: s.Target, Reason: "keeps the kubernetes finalizer apply put back: without it a delete would leave what the namespace holds in etcd"})
		case s.Action == api.ActionHelmUninstall && !f.deletedNS[s.Target.Namespace]:
			out = append(out, api.RestoreNote{Object: s.Target, Reason: "Helm's record of this release was not in a namespace apply deleted, so it is not in the backup: install the release again with helm"})
		}
	}
	for _, s := range src.Stage.Steps {
		if s.Action == api.ActionDelete && src.Finished[s.ID].Status != "" && !src.gone(s.ID) {
			out = append(out, api.RestoreNote{Object: s.Target, Reason: "apply left it alone (re-created since planning): not restored"})
		}
	}
	if !o.Reattach {
		for _, s := range f.detached {
			if !f.deleted[s.Target.UID] {
				out = append(out, api.RestoreNote{Object: s.Target, Reason: "stays detached from what owned it (restore --reattach puts the owner references and labels back)"})
			}
		}
	}
	return out
}

// cand is an object of the backup to create again.
type cand struct {
	e     api.BackupEntry
	tier  api.Tier
	depth int
}

// cands are the objects to create, and the owners each names.
type cands struct {
	list   []*cand
	byUID  map[string]*cand
	owners map[string][]string
}

// candidates reads the backup's restorable objects and keeps those absent
// from the cluster; one present and different is a conflict (st's), one a
// token controller would delete again is kept.
func candidates(ctx context.Context, src *Source, f *facts, m *kube.Resolver, st *api.RestoreStage) (*cands, error) {
	cs := &cands{byUID: map[string]*cand{}, owners: map[string][]string{}}
	for _, e := range src.Index.Objects {
		if skipped(e.ObjectRef) || !f.restorable(e) {
			continue
		}
		u, err := readObject(src.Dir, e)
		if err != nil {
			return nil, api.Refuse(api.FixBackup, "backup %s: %w", src.Dir, err)
		}
		if serviceAccountToken(u) {
			st.Kept = append(st.Kept, api.RestoreNote{Object: e.ObjectRef, Reason: "a ServiceAccount's token Secret: it is bound to the deleted account's UID, so the token controller would delete it again. Before Kubernetes 1.24 the controller gives the restored account a new one by itself; later, create the Secret again (annotation kubernetes.io/service-account.name) if something reads it"})
			continue
		}
		state, err := compare(ctx, m, u)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.ObjectRef, err)
		}
		switch state {
		case same, kept:
			continue
		case differs:
			st.Conflicts = append(st.Conflicts, api.RestoreNote{Object: e.ObjectRef, Reason: "exists now and differs from the backup: left alone"})
			continue
		}
		k := &cand{e: e, tier: tierOf(e.ObjectRef)}
		cs.list = append(cs.list, k)
		cs.byUID[e.UID] = k
		for _, r := range u.GetOwnerReferences() {
			cs.owners[e.UID] = append(cs.owners[e.UID], string(r.UID))
		}
	}
	return cs, nil
}

// order sorts by tier, then owners before what they own: each object's
// depth is one more than its deepest owner's among what is restored.
func (cs *cands) order() {
	var depth func(uid string, seen map[string]bool) int
	depth = func(uid string, seen map[string]bool) int {
		if seen[uid] {
			return 0 // a cycle of owners: the server would not have had it
		}
		seen[uid] = true
		d := 0
		for _, o := range cs.owners[uid] {
			if cs.byUID[o] != nil {
				d = max(d, 1+depth(o, seen))
			}
		}
		return d
	}
	for _, k := range cs.list {
		k.depth = depth(k.e.UID, map[string]bool{})
	}
	rank := map[api.Tier]int{}
	for i, t := range api.Tiers {
		rank[t] = i
	}
	sort.SliceStable(cs.list, func(i, j int) bool {
		a, b := cs.list[i], cs.list[j]
		if a.tier != b.tier {
			return rank[a.tier] < rank[b.tier]
		}
		if a.depth != b.depth {
			return a.depth < b.depth
		}
		return a.e.File < b.e.File
	})
}

// addSteps turns the ordered candidates into st's steps: creates (webhooks
// last, so none refuses what is restored before it), owner references for
// what was created before its owner, reattaches (--reattach), and the
// scale-ups of what apply stopped.
func addSteps(st *api.RestoreStage, src *Source, f *facts, cs *cands, o Options) {
	add := func(s api.RestoreStep) {
		s.ID = fmt.Sprintf("%04d-%s-%s", len(st.Steps)+1, s.Tier, s.Action)
		st.Steps = append(st.Steps, s)
	}
	order := map[string]int{}
	for i, k := range cs.list {
		order[k.e.UID] = i
	}
	var late []*cand // owned by something restored after them
	for _, k := range cs.list {
		for _, o := range cs.owners[k.e.UID] {
			if j, ok := order[o]; ok && j > order[k.e.UID] {
				late = append(late, k)
				break
			}
		}
	}
	for _, k := range cs.list {
		if k.tier == api.TierWebhooks {
			break
		}
		add(api.RestoreStep{Tier: k.tier, Action: api.ActionCreate, Target: k.e.ObjectRef, File: k.e.File, Wave: k.depth})
	}
	for _, k := range late {
		add(api.RestoreStep{Tier: api.TierWorkloads, Action: api.ActionOwn, Target: k.e.ObjectRef, File: k.e.File})
	}
	if o.Reattach {
		files := map[string]string{}
		for _, e := range src.Index.Objects {
			files[e.UID] = e.File
		}
		for _, s := range f.detached {
			if !f.deleted[s.Target.UID] && files[s.Target.UID] != "" {
				add(api.RestoreStep{Tier: api.TierWorkloads, Action: api.ActionReattach, Target: s.Target, File: files[s.Target.UID]})
			}
		}
	}
	for _, s := range src.Stage.Steps {
		if n := f.scaled[s.Target.UID]; s.Action == api.ActionScale && src.done(s.ID) && n != nil {
			add(api.RestoreStep{Tier: api.TierWorkloads, Action: api.ActionScale, Target: s.Target, Replicas: n})
		}
	}
	for _, k := range cs.list {
		if k.tier == api.TierWebhooks {
			add(api.RestoreStep{Tier: k.tier, Action: api.ActionCreate, Target: k.e.ObjectRef, File: k.e.File, Wave: k.depth})
		}
	}
}

// sameCluster refuses a backup taken on another cluster than c's.
func sameCluster(ctx context.Context, c *kube.Clients, dir string, x *api.BackupIndex) error {
	var ks *corev1.Namespace
	err := kube.Retry(ctx, func() (err error) {
		ks, err = c.Kube.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("read kube-system of %s: %w", c.Config.Host, err)
	}
	if string(ks.UID) != x.Cluster {
		return api.Refuse(api.FixCluster, "backup %s was taken on another cluster (kube-system %s); this cluster (%s) has kube-system %s: point --context at the cluster apply ran on",
			dir, x.Cluster, c.Config.Host, ks.UID)
	}
	return nil
}

// Where an object of the backup stands now.
type state int

const (
	missing state = iota // create it
	kept                 // there with its old UID: apply did not delete it
	same                 // there again (another UID), as backed up
	differs              // there, and not as backed up: a conflict
)

func compare(ctx context.Context, m *kube.Resolver, u *unstructured.Unstructured) (state, error) {
	ri, err := m.Client(u.GetAPIVersion(), u.GetKind(), u.GetNamespace())
	if err != nil {
		return missing, nil // its type is not served: its CRD comes back first
	}
	var cur *unstructured.Unstructured
	err = kube.Retry(ctx, func() (err error) {
		cur, err = ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		return missing, nil
	case err != nil:
		return 0, err
	case cur.GetUID() == u.GetUID():
		return kept, nil
	case equal(cur, u):
		return same, nil
	}
	return differs, nil
}

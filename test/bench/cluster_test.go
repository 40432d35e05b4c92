package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/pager"

	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// cluster is one freshly seeded control plane with the garbage collector on.
type cluster struct {
	cp   *controlplane.ControlPlane
	s    *fixture.Seeder
	seed time.Duration
}

// fixtureOptions spreads n workspace namespaces over workspaces of 100, as
// BenchmarkPlan does.
func fixtureOptions(n int) fixture.Options {
	per := min(n, 100)
	return fixture.Options{Workspaces: (n + per - 1) / per, NamespacesPerWorkspace: per}
}

// startCluster seeds a KubeSphere 3.3 host with n workspace namespaces, then
// starts the garbage collector and namespace controller (after seeding, as on
// a cluster where KubeSphere ran for long: the GC knows every type). The
// audit log is on so persisted writes can be counted per user.
func startCluster(ctx context.Context, n int) (*cluster, error) {
	cp, err := controlplane.Start(ctx, controlplane.Options{Audit: true, NoControllerManager: true})
	if err != nil {
		return nil, err
	}
	s, err := fixture.NewSeeder(cp.Config)
	if err != nil {
		cp.Stop()
		return nil, err
	}
	start := time.Now()
	if err := fixture.KS33Host(ctx, s, fixtureOptions(n)); err != nil {
		cp.Stop()
		return nil, fmt.Errorf("seed %d namespaces: %w", n, err)
	}
	seed := time.Since(start)
	if err := cp.StartControllerManager(ctx); err != nil {
		cp.Stop()
		return nil, err
	}
	return &cluster{cp: cp, s: s, seed: seed}, nil
}

// objState is what the least-writes count and the survival check need of
// one object.
type objState struct {
	kind, namespace, name string
	owners                []types.UID
	finalizers            []string
	labels                map[string]string
	replicas              int64 // -1: not a workload
	deleting              bool  // has a deletionTimestamp
}

// listState lists, cluster-wide and paginated, every object of the kinds the
// refs name, keyed by UID. One list per kind instead of a GET per ref keeps
// the check cheap at 50,000 objects. A kind whose CRD is gone has no objects.
func listState(ctx context.Context, s *fixture.Seeder, refs []fixture.Ref) (map[types.UID]objState, error) {
	kinds := map[string]fixture.Ref{}
	for _, r := range refs {
		kinds[r.APIVersion+"/"+r.Kind] = r
	}
	out := map[types.UID]objState{}
	for _, r := range kinds {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(r.APIVersion)
		u.SetKind(r.Kind)
		gvr, _, err := s.GVR(u)
		if err != nil {
			continue // the type itself is gone, and so are its objects
		}
		if err := eachObject(ctx, s, gvr, func(o *unstructured.Unstructured) {
			st := objState{kind: r.Kind, namespace: o.GetNamespace(), name: o.GetName(),
				finalizers: o.GetFinalizers(), labels: o.GetLabels(), replicas: -1,
				deleting: o.GetDeletionTimestamp() != nil}
			for _, ref := range o.GetOwnerReferences() {
				st.owners = append(st.owners, ref.UID)
			}
			if r.Kind == "Deployment" || r.Kind == "StatefulSet" {
				st.replicas = 1
				if v, ok, _ := unstructured.NestedInt64(o.Object, "spec", "replicas"); ok {
					st.replicas = v
				}
			}
			out[o.GetUID()] = st
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func eachObject(ctx context.Context, s *fixture.Seeder, gvr schema.GroupVersionResource, fn func(*unstructured.Unstructured)) error {
	p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return s.Dyn.Resource(gvr).List(ctx, o)
	})
	err := p.EachListItem(ctx, metav1.ListOptions{Limit: 500}, func(obj runtime.Object) error {
		fn(obj.(*unstructured.Unstructured))
		return nil
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	return nil
}

// least counts the writes a safe teardown of this cluster cannot do without
// (docs/benchmarks.md, "Least needed"), from the seeded truth of what is
// KubeSphere's and what is the users', and the objects' state before apply:
//
//   - scale: one per KubeSphere/KubeFed workload with replicas > 0 (its
//     controller must stop before anything is detached);
//   - detach: one patch per kept object tied to the footprint (an owner
//     reference into it, a KubeSphere/KubeFed finalizer or label), all ties
//     removed in that one patch;
//   - delete: one per footprint object not inside a footprint namespace
//     (what is inside goes with its namespace and needs no write);
//   - finalizer: one for each footprint object carrying a finalizer, inside a
//     footprint namespace or not: its controller is stopped, nobody else
//     will remove it, and it would hang its deletion (or its namespace's).
type least struct{ Scale, Detach, Delete, Finalizer int }

func (l least) Total() int { return l.Scale + l.Detach + l.Delete + l.Finalizer }

func leastWrites(seeded fixture.Seeded, st map[types.UID]objState) least {
	var l least
	fpNS, fpUID := map[string]bool{}, map[types.UID]bool{}
	for _, r := range seeded.Footprint {
		fpUID[r.UID] = true
		if r.Kind == "Namespace" {
			fpNS[r.Name] = true
		}
	}
	for _, r := range seeded.Footprint {
		o, ok := st[r.UID]
		if !ok {
			continue
		}
		if o.replicas > 0 {
			l.Scale++
		}
		if len(o.finalizers) > 0 {
			l.Finalizer++ // in a deleted namespace too: it would hang there
		}
		if r.Namespace != "" && fpNS[r.Namespace] {
			continue
		}
		l.Delete++
	}
	for _, r := range seeded.Protected {
		o, ok := st[r.UID]
		if ok && tied(o, fpUID) {
			l.Detach++
		}
	}
	return l
}

func tied(o objState, fpUID map[types.UID]bool) bool {
	for _, u := range o.owners {
		if fpUID[u] {
			return true
		}
	}
	for _, f := range o.finalizers {
		if footprint.IsFootprintFinalizer(f) {
			return true
		}
	}
	for k := range o.labels {
		if strings.Contains(k, "kubesphere.io/") || strings.Contains(k, "kubefed.io/") {
			return true
		}
	}
	return false
}

// outcome is what a teardown left: users' objects lost (gone, another UID,
// or being deleted) and footprint objects still present.
type outcome struct{ Lost, Left int }

func checkOutcome(ctx context.Context, s *fixture.Seeder) (outcome, []fixture.Ref, error) {
	st, err := listState(ctx, s, append(append([]fixture.Ref{}, s.Seeded.Protected...), s.Seeded.Footprint...))
	if err != nil {
		return outcome{}, nil, err
	}
	var o outcome
	var lost []fixture.Ref
	for _, r := range s.Seeded.Protected {
		if cur, ok := st[r.UID]; !ok || cur.deleting {
			o.Lost++
			if len(lost) < 10 {
				lost = append(lost, r)
			}
		}
	}
	for _, r := range s.Seeded.Footprint {
		if _, ok := st[r.UID]; ok {
			o.Left++
		}
	}
	return o, lost, nil
}

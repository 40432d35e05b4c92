// Package teardown turns a scan into an ordered plan: quiesce, disarm,
// detach what users keep, then remove KubeFed, KubeSphere, Helm releases,
// system namespaces, CRDs and cluster RBAC, and verify.
package teardown

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/footprint"
	"github.com/ks-clean/ks-clean/inventory"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
)

// Build makes the plan for a scan result and checks it against the ordering
// rules (plan.Validate).
func Build(r *scan.Result, now time.Time) (*plan.Plan, error) {
	fp := r.Footprint
	b, byCat := start(r)

	protected := map[string]plan.ObjectRef{}
	for _, ns := range fp.UserNamespaces {
		protected[string(ns.GetUID())] = idRef(ns)
	}
	for _, d := range fp.Detach {
		d := d
		protected[string(d.Obj.GetUID())] = idRef(d.Obj)
		b.add(plan.PhaseDetach, plan.ActionPatch, ref(d.Obj), "keep, detached: "+d.Reason, func(s *plan.Step) { rm := d.Remove; s.Remove = &rm })
	}

	// Join RBAC goes with KubeFed; other cluster RBAC at the very end, so a
	// half-done teardown keeps the permissions it ran with.
	var joinRBAC, clusterRBAC, nsRBAC []*footprint.Member
	for _, m := range byCat[footprint.CatRBAC] {
		switch {
		case strings.HasPrefix(m.Obj.GetName(), "kubefed-controller-manager:"):
			joinRBAC = append(joinRBAC, m)
		case m.Obj.GetNamespace() != "":
			nsRBAC = append(nsRBAC, m)
		default:
			clusterRBAC = append(clusterRBAC, m)
		}
	}

	kubefed := byCat[footprint.CatKubeFed]
	sort.SliceStable(kubefed, func(i, j int) bool { return kubeFedRank(kubefed[i].Obj) < kubeFedRank(kubefed[j].Obj) })
	b.removeAll(plan.PhaseKubeFed, kubefed)
	b.removeAll(plan.PhaseKubeFed, joinRBAC)
	b.wait(plan.PhaseKubeFed)

	b.removeAll(plan.PhaseKubeSphere, byCat[footprint.CatKubeSphere])
	b.removeAll(plan.PhaseKubeSphere, nsRBAC)
	b.wait(plan.PhaseKubeSphere)

	for _, rel := range fp.Releases {
		t := plan.ObjectRef{APIVersion: "helm.sh/v3", Kind: "Release", Namespace: rel.Namespace, Name: rel.Name, ResourceVersion: strconv.Itoa(rel.Version)}
		chart := ""
		if rel.Chart != nil && rel.Chart.Metadata != nil {
			chart = fmt.Sprintf(" (chart %s %s)", rel.Chart.Metadata.Name, rel.Chart.Metadata.Version)
		}
		b.add(plan.PhaseHelm, plan.ActionHelmUninstall, t, fmt.Sprintf("Helm release of KubeSphere/KubeFed%s, status %s", chart, rel.Info.Status), nil)
	}

	for _, m := range byCat[footprint.CatNamespace] {
		// KubeSphere's namespace finalizer outlives its controller: a
		// system namespace carrying it would stay Terminating for ever.
		var fins []string
		for _, f := range m.Obj.GetFinalizers() {
			if footprint.IsFootprintFinalizer(f) {
				fins = append(fins, f)
			}
		}
		if len(fins) > 0 {
			b.add(plan.PhaseNamespaces, plan.ActionPatch, ref(m.Obj), "remove finalizers no running controller will remove", func(s *plan.Step) {
				s.Remove = &plan.Removal{Finalizers: fins}
			})
		}
		b.add(plan.PhaseNamespaces, plan.ActionDelete, ref(m.Obj), m.Reason+", with everything in it", nil)
	}
	b.wait(plan.PhaseNamespaces)

	for _, m := range byCat[footprint.CatCRD] {
		b.add(plan.PhaseCRDs, plan.ActionDelete, ref(m.Obj), m.Reason+"; its instances are gone", nil)
	}
	b.wait(plan.PhaseCRDs)

	b.removeAll(plan.PhaseRBAC, clusterRBAC)
	b.removeAll(plan.PhaseRBAC, byCat[footprint.CatHelm])

	b.add(plan.PhaseVerify, plan.ActionVerify, b.kubeSystem, "nothing of KubeSphere/KubeFed remains and every protected object is present with its UID", nil)
	return b.finish(r, now, r.Findings, sortedRefs(protected))
}

// start opens a plan with what every teardown of a cluster begins with:
// the preflight check, the quiesce and the disarm. It returns the footprint
// members by category for the phases that follow.
func start(r *scan.Result) (*builder, map[footprint.Category][]*footprint.Member) {
	b := &builder{kubeSystem: plan.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kube-system", UID: r.Cluster.UID}}
	b.add(plan.PhasePreflight, plan.ActionVerify, b.kubeSystem, "the cluster is the one planned (kube-system UID), and the plan is current", nil)

	byCat := map[footprint.Category][]*footprint.Member{}
	for _, m := range r.Footprint.Members {
		byCat[m.Category] = append(byCat[m.Category], m)
	}

	// Quiesce: KubeFed's controller first, so it stops syncing (the
	// incident's flapping) before anything changes.
	workloads := byCat[footprint.CatWorkload]
	sort.SliceStable(workloads, func(i, j int) bool { return quiesceRank(workloads[i].Obj) < quiesceRank(workloads[j].Obj) })
	for _, m := range workloads {
		replicas, found, _ := unstructured.NestedInt64(m.Obj.Content.Object, "spec", "replicas")
		if !found {
			replicas = 1
		}
		if replicas == 0 {
			continue
		}
		reason := "stop the controller so it cannot undo the teardown"
		if strings.Contains(m.Obj.GetName(), "kubefed-controller-manager") {
			reason = "stop KubeFed syncing first: with aliased cluster records it deletes and re-creates what it propagates"
		}
		b.add(plan.PhaseQuiesce, plan.ActionScale, ref(m.Obj), fmt.Sprintf("%s (replicas %d -> 0)", reason, replicas), func(s *plan.Step) { s.Replicas = &replicas })
	}
	b.wait(plan.PhaseQuiesce)

	for _, m := range append(byCat[footprint.CatWebhook], byCat[footprint.CatAPIService]...) {
		b.add(plan.PhaseDisarm, plan.ActionDelete, ref(m.Obj), m.Reason+": its backend is removed, so it would refuse the writes it matches", nil)
	}
	return b, byCat
}

// finish checks the plan against the ordering rules and seals it.
func (b *builder) finish(r *scan.Result, now time.Time, findings []plan.Finding, protected []plan.ObjectRef) (*plan.Plan, error) {
	p := &plan.Plan{
		APIVersion: plan.APIVersion,
		Cluster:    r.Cluster,
		CreatedAt:  now.UTC().Truncate(time.Second),
		KubeSphere: r.KubeSphere,
		Findings:   findings,
		Protected:  protected,
		Steps:      b.steps,
	}
	if err := plan.Validate(p); err != nil {
		return nil, fmt.Errorf("internal error, refusing to write an unsafe plan: %w", err)
	}
	if err := p.Seal(); err != nil {
		return nil, err
	}
	return p, nil
}

type builder struct {
	steps      []plan.Step
	kubeSystem plan.ObjectRef
}

func (b *builder) add(ph plan.Phase, a plan.Action, t plan.ObjectRef, reason string, f func(*plan.Step)) {
	s := plan.Step{ID: fmt.Sprintf("%04d-%s-%s", len(b.steps)+1, ph, a), Phase: ph, Action: a, Target: t, Reason: reason}
	if f != nil {
		f(&s)
	}
	b.steps = append(b.steps, s)
}

// removeAll strips the finalizers of each object (their controllers are
// stopped or gone) and deletes it.
func (b *builder) removeAll(ph plan.Phase, ms []*footprint.Member) {
	for _, m := range ms {
		if fins := m.Obj.GetFinalizers(); len(fins) > 0 {
			b.add(ph, plan.ActionPatch, ref(m.Obj), "remove finalizers no running controller will remove", func(s *plan.Step) {
				s.Remove = &plan.Removal{Finalizers: append([]string(nil), fins...)}
			})
		}
		b.add(ph, plan.ActionDelete, ref(m.Obj), m.Reason, nil)
	}
}

func (b *builder) wait(ph plan.Phase) {
	for _, s := range b.steps {
		switch {
		case s.Phase == ph && s.Action == plan.ActionDelete:
			b.add(ph, plan.ActionWait, plan.ObjectRef{}, "wait until this phase's deletions are finished", nil)
			return
		case s.Phase == ph && s.Action == plan.ActionScale:
			// Pods of a scaled-down controller keep acting until they
			// are gone; nothing is detached before that.
			b.add(ph, plan.ActionWait, plan.ObjectRef{}, "wait until the scaled workloads have no pods left", nil)
			return
		}
	}
}

func ref(o *inventory.Object) plan.ObjectRef { return o.Ref() }

func idRef(o *inventory.Object) plan.ObjectRef {
	r := o.Ref()
	r.ResourceVersion = ""
	return r
}

func sortedRefs(m map[string]plan.ObjectRef) []plan.ObjectRef {
	out := make([]plan.ObjectRef, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind > out[j].Kind // Namespaces first
		}
		return out[i].String() < out[j].String()
	})
	return out
}

func quiesceRank(o *inventory.Object) int {
	switch {
	case strings.Contains(o.GetName(), "kubefed-controller-manager"):
		return 0
	case strings.Contains(o.GetName(), "controller-manager"), o.GetName() == "ks-installer":
		return 1
	}
	return 2
}

// kubeFedRank deletes federated copies before the records and type
// configs that drive their propagation.
func kubeFedRank(o *inventory.Object) int {
	switch {
	case o.Resource.GVR.Group == "types.kubefed.io":
		return 0
	case o.Resource.Kind == "KubeFedCluster":
		return 1
	case o.Resource.Kind == "FederatedTypeConfig":
		return 2
	case o.Resource.Kind == "KubeFedConfig":
		return 4
	}
	return 3
}

// Package plan is the planner behind `ks-clean plan`: it turns a scan of one
// cluster, or of a host and its members, into an ordered teardown (an
// api.Plan of stages) following the phase table, and checks every plan
// against the rules that keep users' data alive (Validate).
package plan

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Options of a plan.
type Options struct {
	// Now stamps the plan (default: the current time).
	Now time.Time
	// Protect names namespaces that must survive: the plan is refused if
	// one does not exist or would be deleted.
	Protect []string
	// DeleteVolumes lets the PersistentVolumes of claims that go follow
	// their reclaim policy (by default they are switched to Retain first).
	DeleteVolumes bool
}

// Build plans the teardown of a scan: one stage for a single cluster; for a
// host with members, an unjoin stage on the host, then each member, then
// the host. Every stage is checked against the ordering rules. A member no
// record on the host reaches is refused: its real host would fight the
// teardown.
func Build(r *scan.Report, o Options) (*api.Plan, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if err := RequireKept(r.Clusters, o.Protect); err != nil {
		return nil, err
	}
	for _, f := range r.Findings {
		if f.ID == scan.MemberElsewhere {
			return nil, api.Refuse(api.FixMembers, "refusing to plan: %s", f.Message)
		}
	}
	p := &api.Plan{APIVersion: api.APIVersion, Kind: api.KindPlan, CreatedAt: o.Now.UTC().Truncate(time.Second), Findings: r.Findings}
	host := r.Host()
	if len(r.Clusters) == 1 {
		p.Stages = []api.Stage{teardown(host, api.StageCluster, "cluster", o)}
	} else {
		var records []*footprint.Member
		for _, m := range r.Members() {
			for _, rec := range m.HostRecords {
				records = append(records, &footprint.Member{Obj: rec.Obj, Category: footprint.CatKubeFed,
					Reason: fmt.Sprintf("record of member cluster %s (context %q, kube-system %s): unjoined before the member is torn down", m.Cluster.Server, m.Cluster.Context, m.Cluster.UID)})
			}
		}
		p.Stages = append(p.Stages, unjoin(host, records, r.Findings))
		for _, m := range r.Members() {
			p.Stages = append(p.Stages, teardown(m, api.StageMember, "member-"+m.Cluster.Context, o))
		}
		p.Stages = append(p.Stages, teardown(host, api.StageHost, "host-"+host.Cluster.Context, o))
	}
	footprints := map[string]*footprint.Footprint{}
	for _, res := range r.Clusters {
		footprints[res.Cluster.UID] = res.Footprint
	}
	for i := range p.Stages {
		st := &p.Stages[i]
		cascades := Cascades(footprints[st.Cluster.UID], st)
		for j := range st.Steps {
			s := &st.Steps[j]
			s.Cluster = st.Cluster.Context
			if c := cascades[s.ID]; c != nil && c.Objects > 0 {
				s.Cascade = c
			}
		}
		if err := blockers(st); err != nil {
			return nil, err
		}
	}
	if err := Validate(p); err != nil {
		return nil, fmt.Errorf("internal error, refusing to write an unsafe plan: %w", err)
	}
	if err := p.Seal(); err != nil {
		return nil, err
	}
	return p, nil
}

// blockers refuses a stage that deletes namespaces while an APIService it
// keeps is unavailable: the namespace controller must discover every API
// group to empty a namespace, so each deletion would hang until apply's
// phase timeout. What is KubeSphere's is already removed before the
// namespaces (disarm); anything else is the user's call.
func blockers(st *api.Stage) error {
	removed, namespaces := map[string]bool{}, 0
	for _, s := range st.Steps {
		switch {
		case s.Action == api.ActionDelete && s.Target.Kind == "APIService":
			removed[s.Target.Name] = true
		case s.Action == api.ActionDelete && s.Target.Kind == "Namespace":
			namespaces++
		}
	}
	if namespaces == 0 {
		return nil
	}
	var msgs, names []string
	for _, f := range st.Findings {
		if f.ID != hazard.APIServiceDown {
			continue
		}
		for _, o := range f.Objects {
			if !removed[o.Name] {
				msgs, names = append(msgs, f.Message), append(names, o.Name)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	flags := ""
	for _, n := range names {
		flags += " --remove-apiservice " + n
	}
	return api.Refuse(api.FixBlocker, "refusing to plan%s: %s; nothing shows it is KubeSphere's, and while it is unavailable none of the %d namespaces to delete can finish terminating. "+
		"Either bring its backend back, or delete it yourself if nothing needs its API (kubectl delete apiservice %s), or plan again with%s to have apply remove it (backed up first)",
		stageSuffix(st), strings.Join(msgs, "; "), namespaces, strings.Join(names, " "), flags)
}

func stageSuffix(st *api.Stage) string {
	if st.Kind == api.StageCluster {
		return ""
	}
	return " (stage " + st.Name + ")"
}

// teardown is the whole teardown of one cluster, phase by phase as the
// table orders them: quiesce, disarm, detach what users keep, then remove
// KubeFed, KubeSphere, Helm releases, system namespaces, CRDs and cluster
// RBAC, and verify.
func teardown(r *scan.Result, kind api.StageKind, name string, o Options) api.Stage {
	fp := r.Footprint
	b := start(r)
	protected := map[string]api.ObjectRef{}
	for _, ns := range fp.UserNamespaces {
		protected[string(ns.GetUID())] = idRef(ns)
	}
	finalizers(b, fp)
	if !o.DeleteVolumes {
		// The data first: a claim's volume must outlive it before anything
		// that could delete the claim runs.
		for _, v := range fp.Volumes() {
			protected[string(v.PV.GetUID())] = idRef(v.PV)
			claim := idRef(v.Claim)
			b.add(api.PhaseDetach, api.ActionRetain, v.PV.Ref(), fmt.Sprintf("keep the data of claim %s/%s, which goes: reclaim policy %s -> Retain", claim.Namespace, claim.Name, v.Policy), func(s *api.Step) {
				s.Claim, s.ReclaimPolicy = &claim, v.Policy
			})
		}
	}
	for _, d := range fp.Detach {
		protected[string(d.Obj.GetUID())] = idRef(d.Obj)
		b.add(api.PhaseDetach, api.ActionPatch, d.Obj.Ref(), "keep, detached: "+d.Reason, func(s *api.Step) { rm := d.Remove; s.Remove = &rm })
	}
	for _, ph := range []api.Phase{api.PhaseKubeFed, api.PhaseKubeSphere} {
		b.removeAll(ph, b.members[ph])
		b.wait(ph)
	}
	for _, rel := range fp.Releases {
		t := api.ObjectRef{APIVersion: "helm.sh/v3", Kind: "Release", Namespace: rel.Namespace, Name: rel.Name, ResourceVersion: strconv.Itoa(rel.Version)}
		chart := ""
		if rel.Chart != nil && rel.Chart.Metadata != nil {
			chart = fmt.Sprintf(" (chart %s %s)", rel.Chart.Metadata.Name, rel.Chart.Metadata.Version)
		}
		// What apply checks before uninstalling: a release upgraded or
		// installed again since is not the one this plan was made for.
		ref := ReleaseRef(rel)
		b.add(api.PhaseHelm, api.ActionHelmUninstall, t, fmt.Sprintf("Helm release of KubeSphere/KubeFed%s, status %s", chart, rel.Info.Status), func(s *api.Step) { s.Release = ref })
	}
	for _, m := range b.members[api.PhaseNamespaces] {
		// KubeSphere's namespace finalizer outlives its controller: a
		// system namespace carrying it would stay Terminating for ever.
		var fins []string
		for _, f := range m.Obj.GetFinalizers() {
			if footprint.IsFootprintFinalizer(f) {
				fins = append(fins, f)
			}
		}
		if len(fins) > 0 {
			b.add(api.PhaseNamespaces, api.ActionPatch, m.Obj.Ref(), "remove finalizers no running controller will remove", func(s *api.Step) {
				s.Remove = &api.Removal{Finalizers: fins}
			})
		}
		b.add(api.PhaseNamespaces, api.ActionDelete, m.Obj.Ref(), m.Reason+", with everything in it", nil)
	}
	b.wait(api.PhaseNamespaces)
	for _, m := range b.members[api.PhaseCRDs] {
		b.add(api.PhaseCRDs, api.ActionDelete, m.Obj.Ref(), m.Reason+"; its instances are gone", nil)
	}
	b.wait(api.PhaseCRDs)
	b.removeAll(api.PhaseRBAC, b.members[api.PhaseRBAC])
	b.add(api.PhaseVerify, api.ActionVerify, b.kubeSystem, "nothing of KubeSphere/KubeFed remains and every protected object is present with its UID", nil)
	b.waves(fp)
	return b.stage(r, kind, name, r.Findings, sortedRefs(protected))
}

// finalizers puts the `kubernetes` finalizer back into every namespace
// that lacks it (hazard.NamespaceUnfinalized), first thing in the detach
// phase: a delete of such a namespace would leave its content in etcd. It
// repairs Kubernetes' own invariant and touches no data. A user's namespace
// already Terminating is left alone: the finalizer back, the namespace
// controller would delete what it holds.
func finalizers(b *builder, fp *footprint.Footprint) {
	holds := fp.Inv.Holds()
	for _, ns := range fp.Inv.OfKind("", "Namespace") {
		if !inventory.Unfinalized(ns) || (ns.GetDeletionTimestamp() != nil && !fp.SystemNamespaces[ns.GetName()]) {
			continue
		}
		b.add(api.PhaseDetach, api.ActionFinalize, ns.Ref(), fmt.Sprintf("put back the %q finalizer: without it a delete leaves its %d objects in etcd", corev1.FinalizerKubernetes, holds[ns.GetName()].Count()), nil)
	}
}

// builder collects one stage's steps.
type builder struct {
	steps      []api.Step
	kubeSystem api.ObjectRef
	// members are the footprint members by the phase that removes them,
	// each phase's in the table's order.
	members map[api.Phase][]*footprint.Member
}

// start opens a stage with what every teardown of a cluster begins with:
// the preflight check, the quiesce and the disarm.
func start(r *scan.Result) *builder {
	b := &builder{kubeSystem: api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kube-system", UID: r.Cluster.UID}, members: map[api.Phase][]*footprint.Member{}}
	for _, m := range r.Footprint.Members {
		if ph, ok := phaseOf(m); ok {
			b.members[ph] = append(b.members[ph], m)
		}
	}
	for ph, ms := range b.members {
		r := rule(ph)
		sort.SliceStable(ms, func(i, j int) bool { return r.wave(ms[i]) < r.wave(ms[j]) })
	}
	b.add(api.PhasePreflight, api.ActionVerify, b.kubeSystem, "the cluster is the one planned (kube-system UID), and the plan is current", nil)

	for _, m := range b.members[api.PhaseQuiesce] {
		replicas, found, _ := unstructured.NestedInt64(m.Obj.Content.Object, "spec", "replicas")
		if !found {
			replicas = 1
		}
		if replicas == 0 {
			continue
		}
		reason := "stop the controller so it cannot undo the teardown"
		if order := rule(api.PhaseQuiesce).Order; order.of(m.Obj) == 0 {
			reason = "stop KubeFed syncing first: with aliased cluster records it deletes and re-creates what it propagates"
		}
		b.add(api.PhaseQuiesce, api.ActionScale, m.Obj.Ref(), fmt.Sprintf("%s (replicas %d -> 0)", reason, replicas), func(s *api.Step) { s.Replicas = &replicas })
	}
	b.wait(api.PhaseQuiesce)

	for _, m := range b.members[api.PhaseDisarm] {
		why := m.Reason + ": its backend is removed, so it would refuse the writes it matches"
		if m.Category == footprint.CatGrant {
			why = m.Reason
		}
		b.add(api.PhaseDisarm, api.ActionDelete, m.Obj.Ref(), why, nil)
	}
	return b
}

// stage closes the builder into a stage.
func (b *builder) stage(r *scan.Result, kind api.StageKind, name string, findings []api.Finding, protected []api.ObjectRef) api.Stage {
	return api.Stage{Name: name, Kind: kind, Cluster: r.Cluster, KubeSphere: r.KubeSphere, Findings: findings, Protected: protected, Steps: b.steps}
}

func (b *builder) add(ph api.Phase, a api.Action, t api.ObjectRef, reason string, f func(*api.Step)) {
	s := api.Step{ID: fmt.Sprintf("%04d-%s-%s", len(b.steps)+1, ph, a), Phase: ph, Action: a, Target: t, Reason: reason}
	if f != nil {
		f(&s)
	}
	b.steps = append(b.steps, s)
}

// removeAll strips the finalizers of each object (their controllers are
// stopped or gone) and deletes it.
func (b *builder) removeAll(ph api.Phase, ms []*footprint.Member) {
	for _, m := range ms {
		fins := m.Obj.GetFinalizers()
		orphan := m.Obj.Resource.GVR.Group == footprint.GroupFederatedTypes && m.Obj.GetAnnotations()[footprint.AnnotationOrphan] != "true"
		switch {
		case orphan:
			// In the same write as the finalizers: a KubeFed that comes
			// back mid-teardown must not delete what it propagated.
			b.add(ph, api.ActionPatch, m.Obj.Ref(), "mark orphan (KubeFed leaves its copies) and remove finalizers no running controller will remove", func(s *api.Step) {
				if len(fins) > 0 {
					s.Remove = &api.Removal{Finalizers: append([]string(nil), fins...)}
				}
				s.Annotate = map[string]string{footprint.AnnotationOrphan: "true"}
			})
		case len(fins) > 0:
			b.add(ph, api.ActionPatch, m.Obj.Ref(), "remove finalizers no running controller will remove", func(s *api.Step) {
				s.Remove = &api.Removal{Finalizers: append([]string(nil), fins...)}
			})
		}
		b.add(ph, api.ActionDelete, m.Obj.Ref(), m.Reason, nil)
	}
}

// waves gives each step on a footprint member its wave in the phase that
// removes the member (the order of the phase's table row).
func (b *builder) waves(fp *footprint.Footprint) {
	for i := range b.steps {
		s := &b.steps[i]
		m := fp.Member(types.UID(s.Target.UID))
		if m == nil || s.Action == api.ActionWait {
			continue
		}
		if ph, ok := phaseOf(m); ok && ph == s.Phase {
			s.Wave = rule(ph).wave(m)
		}
	}
}

// wait ends a phase that acted as its table row says.
func (b *builder) wait(ph api.Phase) {
	want := rule(ph).Wait
	for _, s := range b.steps {
		switch {
		case want == WaitDeleted && s.Phase == ph && s.Action == api.ActionDelete:
			b.add(ph, api.ActionWait, api.ObjectRef{}, "wait until this phase's deletions are finished", nil)
			return
		case want == WaitNoPods && s.Phase == ph && s.Action == api.ActionScale:
			b.add(ph, api.ActionWait, api.ObjectRef{}, "wait until the scaled workloads have no pods left", nil)
			return
		}
	}
}

func idRef(o *inventory.Object) api.ObjectRef {
	r := o.Ref()
	r.ResourceVersion = ""
	return r
}

func sortedRefs(m map[string]api.ObjectRef) []api.ObjectRef {
	out := make([]api.ObjectRef, 0, len(m))
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

// ReleaseRef is what a helm-uninstall step records of the release it
// uninstalls, and what apply compares with the release's latest revision:
// its revision, chart (name-version) and deployment time.
func ReleaseRef(rel *release.Release) *api.ReleaseRef {
	ref := &api.ReleaseRef{Revision: rel.Version}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		ref.Chart = rel.Chart.Metadata.Name + "-" + rel.Chart.Metadata.Version
	}
	if rel.Info != nil && !rel.Info.LastDeployed.IsZero() {
		d := rel.Info.LastDeployed.Time.UTC()
		ref.Deployed = &d
	}
	return ref
}

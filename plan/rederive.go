package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Rederive checks a stage of a saved plan against a fresh scan of its
// cluster, before apply's first write. The plan's digest only proves the
// file was not edited by accident: anyone who can write the file can seal it
// again. So apply trusts nothing the plan says about what may go: every
// write target must be in the fresh footprint for the kind of reason the
// planner would have planned that step for, and nothing the fresh scan
// protects (users' namespaces, the objects it detaches) may be deleted or
// scaled, whatever the plan's own protected list says.
//
// It returns the fresh scan's protected objects, which apply guards and
// verifies with the plan's. A step whose object is already gone, or whose
// patch would change nothing (an apply resumed after it), passes.
func Rederive(fp *footprint.Footprint, st *api.Stage) ([]api.ObjectRef, error) {
	protected := map[string]api.ObjectRef{}
	for _, ns := range fp.UserNamespaces {
		protected[string(ns.GetUID())] = idRef(ns)
	}
	for _, d := range fp.Detach {
		protected[string(d.Obj.GetUID())] = idRef(d.Obj)
	}
	planned := map[string]bool{}
	for _, r := range st.Protected {
		planned[r.UID] = true
	}
	var extra []api.ObjectRef
	for uid, r := range protected {
		if !planned[uid] {
			extra = append(extra, r)
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].String() < extra[j].String() })

	unread := map[string]bool{}
	for _, gk := range fp.Inv.Unread {
		unread[gk] = true
	}
	tokens := joinTokens(fp)
	var bad []string
	for i := range st.Steps {
		s := &st.Steps[i]
		if why := rederiveStep(fp, st, s, protected, unread, tokens); why != "" {
			bad = append(bad, fmt.Sprintf("step %s (%s %s): %s", s.ID, s.Action, s.Target, why))
		}
	}
	if len(bad) > 0 {
		n := len(bad)
		if n > 10 {
			bad = append(bad[:10], fmt.Sprintf("and %d more", n-10))
		}
		return nil, api.Refuse(api.FixNewPlan, "%d steps of stage %s are not what a fresh scan of the cluster plans: %s; the plan was edited (a digest proves nothing against an edit sealed again) or the cluster changed: make a new plan with `ks-clean plan` and review it", n, st.Name, strings.Join(bad, "; "))
	}
	return extra, nil
}

// rederiveStep says why one step may not run, or "".
func rederiveStep(fp *footprint.Footprint, st *api.Stage, s *api.Step, protected map[string]api.ObjectRef, unread map[string]bool, tokens map[string]bool) string {
	switch s.Action {
	case api.ActionWait, api.ActionVerify:
		return "" // no write
	case api.ActionHelmUninstall:
		key := s.Target.Namespace + "/" + s.Target.Name
		for _, r := range fp.Releases {
			if r.Namespace+"/"+r.Name == key {
				return ""
			}
		}
		for _, r := range fp.Inv.Releases {
			if r.Namespace+"/"+r.Name == key {
				return "the release is not KubeSphere's or KubeFed's on the evidence the cluster holds"
			}
		}
		return "" // gone already
	}
	if s.Target.UID == "" {
		return "the target has no UID, so no write to it can be made conditional on being the object planned"
	}
	if r, ok := protected[s.Target.UID]; ok && (s.Action == api.ActionDelete || s.Action == api.ActionScale) {
		return fmt.Sprintf("%s is protected (a fresh scan finds it is users')", r)
	}
	obj := fp.Inv.ByUID(types.UID(s.Target.UID))
	if obj == nil {
		gk := s.Target.Group() + "/" + s.Target.Kind
		if unread[gk] {
			return "its type could not be listed, so the scan cannot tell what it is"
		}
		if slices.Contains(fp.Inv.UnreadIn[gk], s.Target.Namespace) {
			return fmt.Sprintf("this user may not list %s in namespace %s, so the scan cannot tell what it is", s.Target.Kind, s.Target.Namespace)
		}
		return "" // gone already: every write is conditional on its UID
	}
	if obj.Resource.Kind != s.Target.Kind || obj.GetName() != s.Target.Name || obj.GetNamespace() != s.Target.Namespace {
		return fmt.Sprintf("its UID is that of %s %s/%s", obj.Resource.Kind, obj.GetNamespace(), obj.GetName())
	}
	m := fp.Member(obj.GetUID())
	inPhase := m != nil && (st.Kind == api.StageUnjoin || phaseIs(m, s.Phase))
	switch s.Action {
	case api.ActionRetain:
		// Only ever keeps data.
		if obj.Resource.GVR.Group == "" && obj.Resource.Kind == "PersistentVolume" {
			return ""
		}
		return "only a PersistentVolume's reclaim policy is set to Retain"
	case api.ActionScale:
		if inPhase && s.Phase == api.PhaseQuiesce {
			return ""
		}
		return "a fresh scan does not find it among KubeSphere's/KubeFed's workloads to stop"
	case api.ActionDelete:
		if inPhase {
			return ""
		}
		if st.Kind == api.StageUnjoin && obj.Resource.GVR.Group == "" && obj.Resource.Kind == "Secret" && tokens[obj.GetNamespace()+"/"+obj.GetName()] {
			return ""
		}
		// `plan --remove-apiservice`: only ever the registration of an
		// aggregated API whose backend is down (no stored data goes).
		if s.Phase == api.PhaseDisarm && obj.Resource.Kind == "APIService" && unavailable(obj) {
			return ""
		}
		if m != nil {
			return fmt.Sprintf("a fresh scan finds it is KubeSphere's/KubeFed's, but it goes in phase %s, not %s", phaseName(m), s.Phase)
		}
		return "a fresh scan does not find it is KubeSphere's or KubeFed's"
	case api.ActionPatch:
		return rederivePatch(fp, s, obj, inPhase)
	case api.ActionFinalize:
		// Adds only Kubernetes' own finalizer. To a user's namespace
		// already Terminating it would start the deletion of its content.
		if obj.Resource.GVR.Group != "" || obj.Resource.Kind != "Namespace" {
			return "only a namespace's finalizer is put back"
		}
		if obj.GetDeletionTimestamp() != nil && !fp.SystemNamespaces[obj.GetName()] {
			return "the namespace is users' and Terminating: its finalizer back, Kubernetes would delete what it holds"
		}
		return ""
	}
	return fmt.Sprintf("unknown action %q", s.Action)
}

// rederivePatch: a footprint object may lose its finalizers (and a
// federated one gain the orphan mark) before it is deleted; a user's object
// may lose only the ties the fresh scan finds.
func rederivePatch(fp *footprint.Footprint, s *api.Step, obj *inventory.Object, inPhase bool) string {
	rm := s.Remove
	if rm == nil {
		rm = &api.Removal{}
	}
	for k := range s.Annotate {
		if k != footprint.AnnotationOrphan || !inPhase {
			return fmt.Sprintf("the plan may only ever add %s to an object it deletes, not %s", footprint.AnnotationOrphan, k)
		}
	}
	if inPhase && len(rm.OwnerReferences) == 0 && len(rm.Labels) == 0 {
		return ""
	}
	var allowed api.Removal
	for _, d := range fp.Detach {
		if d.Obj.GetUID() == obj.GetUID() {
			allowed = d.Remove
		}
	}
	var extra []string
	for _, u := range rm.OwnerReferences {
		if !slices.Contains(allowed.OwnerReferences, u) && hasOwner(obj, u) {
			extra = append(extra, "ownerReference "+u)
		}
	}
	for _, f := range rm.Finalizers {
		if !slices.Contains(allowed.Finalizers, f) && slices.Contains(obj.GetFinalizers(), f) {
			extra = append(extra, "finalizer "+f)
		}
	}
	for _, l := range rm.Labels {
		if _, has := obj.GetLabels()[l]; has && !slices.Contains(allowed.Labels, l) {
			extra = append(extra, "label "+l)
		}
	}
	if len(extra) > 0 {
		return "a fresh scan finds no tie to KubeSphere/KubeFed in " + strings.Join(extra, ", ")
	}
	return ""
}

func unavailable(apiService *inventory.Object) bool {
	if apiService.Content == nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(apiService.Content.Object, "status", "conditions")
	for _, c := range conds {
		if cm, _ := c.(map[string]any); cm["type"] == "Available" {
			return cm["status"] != "True"
		}
	}
	return false
}

func hasOwner(obj *inventory.Object, uid string) bool {
	for _, o := range obj.GetOwnerReferences() {
		if string(o.UID) == uid {
			return true
		}
	}
	return false
}

func phaseIs(m *footprint.Member, ph api.Phase) bool {
	p, ok := phaseOf(m)
	return ok && p == ph
}

func phaseName(m *footprint.Member) string {
	if p, ok := phaseOf(m); ok {
		return string(p)
	}
	return "none"
}

// joinTokens are the token Secrets the fresh scan's KubeFedClusters name
// ("namespace/name"): an unjoin stage deletes them with their records.
func joinTokens(fp *footprint.Footprint) map[string]bool {
	out := map[string]bool{}
	for _, o := range fp.Inv.OfKind("core.kubefed.io", "KubeFedCluster") {
		if fp.Member(o.GetUID()) == nil || o.Content == nil {
			continue
		}
		if name, _, _ := unstructured.NestedString(o.Content.Object, "spec", "secretRef", "name"); name != "" {
			out[o.GetNamespace()+"/"+name] = true
		}
	}
	return out
}

package footprint

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/scan/inventory"
)

func (f *Footprint) webhookReason(obj *inventory.Object) string {
	if why := f.helmReason(obj); why != "" {
		return "webhook configuration " + why
	}
	hooks, _, _ := unstructured.NestedSlice(obj.Content.Object, "webhooks")
	allGroups := len(hooks) > 0
	for _, h := range hooks {
		hm, _ := h.(map[string]any)
		if ns, _, _ := unstructured.NestedString(hm, "clientConfig", "service", "namespace"); f.removed(ns) {
			return "served from " + ns + ", which is removed"
		}
		rules, _, _ := unstructured.NestedSlice(hm, "rules")
		for _, r := range rules {
			groups, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "apiGroups")
			for _, g := range groups {
				if !IsFootprintGroup(g) {
					allGroups = false
				}
			}
		}
	}
	if allGroups {
		return "matches only KubeSphere/KubeFed API groups"
	}
	return ""
}

func (f *Footprint) apiServiceReason(obj *inventory.Object) string {
	if _, remote, _ := unstructured.NestedMap(obj.Content.Object, "spec", "service"); !remote {
		// Local APIServices are the apiserver's own record of CRD groups:
		// they go by themselves with the CRDs.
		return ""
	}
	if why := f.helmReason(obj); why != "" {
		return "APIService " + why
	}
	if ns, _, _ := unstructured.NestedString(obj.Content.Object, "spec", "service", "namespace"); f.removed(ns) {
		return "served from " + ns + ", which is removed"
	}
	if g, _, _ := unstructured.NestedString(obj.Content.Object, "spec", "group"); IsFootprintGroup(g) {
		return "serves " + g
	}
	return ""
}

// removed: a namespace the teardown deletes, or one KubeSphere/KubeFed
// create for themselves that is already gone (what it served is dead).
func (f *Footprint) removed(ns string) bool {
	return f.SystemNamespaces[ns] || IsSystemNamespaceName(ns)
}

func (f *Footprint) rbacReason(obj *inventory.Object) string {
	if f.SystemNamespaces[obj.GetNamespace()] {
		return "" // deleted with its namespace
	}
	labels, ann := obj.GetLabels(), obj.GetAnnotations()
	for k := range labels {
		if strings.HasPrefix(k, "iam.kubesphere.io/") || k == LabelManaged || k == LabelExtensionRef {
			return "labelled " + k
		}
	}
	kind := obj.Resource.Kind
	if kind == "Role" && (ann[AnnotationCreator] != "" || ann[AnnotationAggregate] != "") {
		return "per-namespace role KubeSphere created"
	}
	if kind == "ClusterRole" && ann[AnnotationAggregate] != "" {
		// Kubernetes' own roles KubeSphere annotates are skipped earlier
		// (bootstrapping label).
		return "cluster role KubeSphere aggregates from its role templates (" + AnnotationAggregate + ")"
	}
	if why := f.helmReason(obj); why != "" {
		return why
	}
	switch kind {
	case "ClusterRoleBinding", "RoleBinding":
		if bindsOnlyRemovedServiceAccounts(f, obj) {
			return "binds only ServiceAccounts of removed namespaces"
		}
	case "ClusterRole":
		if rulesOnlyFootprintGroups(obj) {
			return "grants access to KubeSphere/KubeFed API groups only"
		}
	}
	return ""
}

// bindsOnlyRemovedServiceAccounts: every subject is a ServiceAccount of a
// namespace the teardown removes, or of one of KubeSphere's/KubeFed's own
// that is already gone (a half-finished uninstall).
func bindsOnlyRemovedServiceAccounts(f *Footprint, obj *inventory.Object) bool {
	subs, _, _ := unstructured.NestedSlice(obj.Content.Object, "subjects")
	for _, s := range subs {
		sm, _ := s.(map[string]any)
		if sm["kind"] != "ServiceAccount" || !f.removed(fmt.Sprint(sm["namespace"])) {
			return false
		}
	}
	return len(subs) > 0
}

// rulesOnlyFootprintGroups: a ClusterRole whose every rule names API groups
// of KubeSphere or KubeFed only (no wildcard, no core group, no URLs).
func rulesOnlyFootprintGroups(obj *inventory.Object) bool {
	rules, _, _ := unstructured.NestedSlice(obj.Content.Object, "rules")
	for _, r := range rules {
		rm, _ := r.(map[string]any)
		if urls, _, _ := unstructured.NestedStringSlice(rm, "nonResourceURLs"); len(urls) > 0 {
			return false
		}
		groups, _, _ := unstructured.NestedStringSlice(rm, "apiGroups")
		if len(groups) == 0 {
			return false
		}
		for _, g := range groups {
			if !IsFootprintGroup(g) {
				return false
			}
		}
	}
	return len(rules) > 0
}

// rbacRolesOfFootprint: ClusterRoles that footprint bindings reference
// and nothing else does, whose every such binding serves only
// ServiceAccounts of removed namespaces (ks-installer's, the join
// ServiceAccounts'): they exist for KubeSphere's own controllers.
func rbacRolesOfFootprint(f *Footprint) []*inventory.Object {
	used := map[string]bool{}   // referenced by a footprint binding for removed ServiceAccounts
	shared := map[string]bool{} // referenced by anything else
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range f.Inv.OfKind("rbac.authorization.k8s.io", kind) {
			ref, _, _ := unstructured.NestedMap(b.Content.Object, "roleRef")
			if ref["kind"] != "ClusterRole" {
				continue
			}
			name := fmt.Sprint(ref["name"])
			if f.Goes(b) && bindsOnlyRemovedServiceAccounts(f, b) {
				used[name] = true
			} else {
				shared[name] = true
			}
		}
	}
	var out []*inventory.Object
	for _, r := range f.Inv.OfKind("rbac.authorization.k8s.io", "ClusterRole") {
		n := r.GetName()
		if used[n] && !shared[n] && !f.Goes(r) && r.GetLabels()[LabelBootstrapping] == "" && !aggregated(r) {
			out = append(out, r)
		}
	}
	return out
}

type grant struct {
	binding *inventory.Object
	reason  string
}

// grantsOfRemovedRoles: bindings outside the footprint that grant a
// ClusterRole the teardown removes, and only to identities that are
// Kubernetes' own (system:…), ServiceAccounts of removed namespaces, or
// KubeSphere users that go. Left behind, such a binding hands the role to
// whoever makes a ClusterRole of that name again: KubeFed's
// kubefed-admission-webhook:anonymous-auth grants system:anonymous. They
// go in the disarm phase, before any role: the role is their evidence, and
// a resumed apply must find it again.
func grantsOfRemovedRoles(f *Footprint) []grant {
	roles := map[string]*inventory.Object{}
	for _, r := range f.Inv.OfKind("rbac.authorization.k8s.io", "ClusterRole") {
		roles[r.GetName()] = r
	}
	var out []grant
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range f.Inv.OfKind("rbac.authorization.k8s.io", kind) {
			if f.Goes(b) || f.kept[b.GetUID()] || b.Content == nil {
				continue
			}
			ref, _, _ := unstructured.NestedStringMap(b.Content.Object, "roleRef")
			if ref["kind"] != "ClusterRole" {
				continue
			}
			role := roles[ref["name"]]
			if role == nil || f.member[role.GetUID()] == nil {
				continue
			}
			subs, _, _ := unstructured.NestedSlice(b.Content.Object, "subjects")
			ok := len(subs) > 0
			for _, s := range subs {
				sm, _ := s.(map[string]any)
				ok = ok && f.ownIdentity(sm)
			}
			if ok {
				out = append(out, grant{b, fmt.Sprintf("grants ClusterRole %s, which the teardown removes, only to Kubernetes' own identities, ServiceAccounts of removed namespaces or KubeSphere's users", role.GetName())})
			}
		}
	}
	return out
}

// ownIdentity: a binding subject that is Kubernetes' own (a system: user
// or group, not a kept namespace's service accounts), a ServiceAccount of a
// removed namespace, or a KubeSphere user that goes.
func (f *Footprint) ownIdentity(s map[string]any) bool {
	name, _ := s["name"].(string)
	switch s["kind"] {
	case "ServiceAccount":
		ns, _ := s["namespace"].(string)
		return f.removed(ns)
	case "User", "Group":
		if rest, ok := strings.CutPrefix(name, "system:serviceaccount:"); ok {
			ns, _, _ := strings.Cut(rest, ":")
			return f.removed(ns)
		}
		if ns, ok := strings.CutPrefix(name, "system:serviceaccounts:"); ok {
			return f.removed(ns)
		}
		if strings.HasPrefix(name, "system:") {
			return true
		}
		if s["kind"] == "User" {
			for _, u := range f.Inv.OfKind("iam.kubesphere.io", "User") {
				if u.GetName() == name && f.member[u.GetUID()] != nil {
					return true
				}
			}
		}
	}
	return false
}

// aggregated: a ClusterRole that adds its rules to others (aggregate-to-*)
// or collects others': deleting it changes roles beyond its bindings.
func aggregated(r *inventory.Object) bool {
	for k := range r.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") {
			return true
		}
	}
	_, found, _ := unstructured.NestedMap(r.Content.Object, "aggregationRule")
	return found
}

// classifyCRD: a type in a KubeSphere/KubeFed group goes. Any other type
// goes only when a footprint release installed it and every instance goes
// too: deleting a CRD deletes every instance cluster-wide. Otherwise it is
// kept and reported when KubeSphere used it.
func (f *Footprint) classifyCRD(crd *inventory.Object) {
	plural, grp, ok := strings.Cut(crd.GetName(), ".")
	if !ok {
		return
	}
	if IsFootprintGroup(grp) {
		f.add(crd, CatCRD, "custom resource type of "+grp)
		return
	}
	var instances []*inventory.Object
	for _, r := range f.Inv.Resources {
		if r.GVR.Group == grp && r.GVR.Resource == plural {
			instances = f.Inv.OfKind(grp, r.Kind)
			break
		}
	}
	var others []*inventory.Object
	for _, i := range instances {
		if !f.Goes(i) {
			others = append(others, i)
		}
	}
	going := len(instances) - len(others)
	theirs := ""
	if len(others) > 0 {
		theirs = " (others': " + describeSome(others, 5) + ")"
	}
	why, used := f.helmReason(crd), f.usedType(crd)
	remove := fmt.Sprintf("; once nothing uses it, `kubectl delete crd %s` removes it", crd.GetName())
	switch {
	case why != "" && len(others) == 0:
		f.add(crd, CatCRD, fmt.Sprintf("custom resource type %s; all %d instances go", why, len(instances)))
	case why != "":
		f.keep(crd, KeptSharedType, fmt.Sprintf("type %s, but %d of its %d instances are not KubeSphere's%s: the type stays with them; KubeSphere's go", why, len(others), len(instances), theirs))
	case used != "":
		// KubeSphere's charts applied it (their crds/ folders are in no
		// release's manifest), but the group is everyone's: other tools
		// apply the same type, and may need it to exist.
		f.keep(crd, KeptSharedType, fmt.Sprintf("%s, but group %s is not KubeSphere's and other tools install the same type; %d instances, %d of them KubeSphere's (they go)%s: it stays%s", used, grp, len(instances), going, theirs, remove))
	case going > 0:
		f.keep(crd, KeptSharedType, fmt.Sprintf("KubeSphere had %d of its %d instances (they go), but nothing in the cluster says the type is KubeSphere's%s: it stays%s", going, len(instances), theirs, remove))
	}
}

// usedType says how the cluster shows KubeSphere or KubeFed used a
// type: KubeSphere's label on its CRD (4.x charts), or a FederatedTypeConfig
// that federates it (3.x installer), or "".
func (f *Footprint) usedType(crd *inventory.Object) string {
	if l := kubeSphereLabel(crd); l != "" {
		return "labelled " + l + " by KubeSphere"
	}
	for _, ftc := range f.Inv.OfKind("core.kubefed.io", "FederatedTypeConfig") {
		if ftc.GetName() == crd.GetName() {
			return "federated by KubeFed's FederatedTypeConfig " + ftc.GetNamespace() + "/" + ftc.GetName()
		}
	}
	return ""
}

// kubeSphereLabel is the first (sorted) label key of KubeSphere's own
// domains an object carries, or "".
func kubeSphereLabel(o *inventory.Object) string {
	var keys []string
	for k := range o.GetLabels() {
		domain, _, found := strings.Cut(k, "/")
		if found && (domain == "kubesphere.io" || strings.HasSuffix(domain, ".kubesphere.io")) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	slices.Sort(keys)
	return keys[0]
}

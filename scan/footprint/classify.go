package footprint

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Category sorts footprint objects into the plan's phases.
type Category string

const (
	CatKubeFed    Category = "kubefed"
	CatKubeSphere Category = "kubesphere"
	CatWebhook    Category = "webhook"
	CatAPIService Category = "apiservice"
	CatCRD        Category = "crd"
	CatRBAC       Category = "rbac"
	CatNamespace  Category = "namespace"
	CatWorkload   Category = "workload"
	CatHelm       Category = "helm-resource"
)

// Member is an object of the footprint: it goes.
type Member struct {
	Obj      *inventory.Object
	Category Category
	Reason   string
}

// Detach is a user object tied to the footprint: it stays, minus the ties.
type Detach struct {
	Obj    *inventory.Object
	Remove api.Removal
	Reason string
}

// Kept is an object the teardown keeps although something about it points
// at KubeSphere (a name, a label, a type KubeSphere also used, a namespace
// the installer labelled): nothing in the cluster proves it is KubeSphere's,
// or it holds what is not. Plans list them, so a reviewer sees the edges.
type Kept struct {
	Obj    *inventory.Object
	ID     string // the finding it is reported under
	Reason string
}

// Finding IDs of kept objects.
const (
	KeptNamespace  = "kept-namespace"
	KeptSharedType = "kept-shared-type"
	KeptUnproven   = "kept-unproven"
)

// Options change what counts as a tie.
type Options struct {
	// KeepWorkspaceLabels leaves kubesphere.io/workspace on namespaces, so
	// a new install re-binds them to their workspaces.
	KeepWorkspaceLabels bool
	// RemoveAPIServices names APIServices that are not KubeSphere's to
	// remove anyway (the user's decision for an unavailable one, which
	// would keep every namespace deletion from finishing).
	RemoveAPIServices []string
}

// Footprint is the classified inventory.
type Footprint struct {
	Inv        *inventory.Inventory
	KubeSphere api.KubeSphere
	// HostName is the name this cluster has in its own multi-cluster
	// records ("host" unless a Cluster labelled as host says otherwise).
	HostName string
	// SystemNamespaces present in the cluster, to be deleted whole.
	SystemNamespaces map[string]bool
	Members          []*Member
	Detach           []*Detach
	// Releases are the latest revision of each footprint Helm release.
	Releases []*release.Release
	// UserNamespaces are every namespace that is not a system namespace.
	UserNamespaces []*inventory.Object
	// Kept are objects kept although they look like KubeSphere's.
	Kept []*Kept

	member map[types.UID]*Member
	kept   map[types.UID]bool
	// releases are the footprint releases ("namespace/name"); inRelease
	// and inHooks the objects their manifests and hooks hold (see
	// manifestKey).
	releases           map[string]bool
	inRelease, inHooks map[string]string
}

// Member returns the footprint entry for a UID, nil if it is not one.
func (f *Footprint) Member(uid types.UID) *Member { return f.member[uid] }

// Goes reports whether the object is removed by the teardown: a member, or
// anything inside a system namespace.
func (f *Footprint) Goes(o *inventory.Object) bool {
	return f.member[o.GetUID()] != nil || (o.GetNamespace() != "" && f.SystemNamespaces[o.GetNamespace()])
}

// Empty reports whether nothing of KubeSphere or KubeFed is left.
func (f *Footprint) Empty() bool {
	return len(f.Members) == 0 && len(f.Detach) == 0 && len(f.Releases) == 0
}

// Remnants describes what keeps the footprint from being empty: members,
// releases and ties, at most limit of each kind of the first and last
// (0: all).
func (f *Footprint) Remnants(limit int) []string {
	var out []string
	for i, m := range f.Members {
		if limit > 0 && i == limit {
			break
		}
		out = append(out, fmt.Sprintf("%s %s/%s remains", m.Obj.Resource.Kind, m.Obj.GetNamespace(), m.Obj.GetName()))
	}
	for _, r := range f.Releases {
		out = append(out, fmt.Sprintf("Helm release %s/%s remains", r.Namespace, r.Name))
	}
	for i, d := range f.Detach {
		if limit > 0 && i == limit {
			break
		}
		out = append(out, fmt.Sprintf("%s %s/%s is still tied to KubeSphere/KubeFed (%s)", d.Obj.Resource.Kind, d.Obj.GetNamespace(), d.Obj.GetName(), d.Reason))
	}
	return out
}

// Classify sorts an inventory into footprint and ties, on evidence only:
// API groups, Helm releases, the installer's record and labels, owners,
// backends in removed namespaces. A name is never evidence.
func Classify(inv *inventory.Inventory, o Options) *Footprint {
	f := &Footprint{Inv: inv, SystemNamespaces: map[string]bool{}, member: map[types.UID]*Member{}, kept: map[types.UID]bool{}, HostName: "host"}
	compReleases, compNamespaces := installedComponents(inv)

	// System namespaces: KubeSphere's and KubeFed's own, and those
	// extensions were installed into. Namespaces the installer created for
	// a component are KubeSphere's only if nothing else is in them.
	extNS := map[string]bool{}
	for _, ip := range inv.OfKind("kubesphere.io", "InstallPlan") {
		if ns, _, _ := unstructured.NestedString(ip.Content.Object, "status", "targetNamespace"); ns != "" {
			extNS[ns] = true
		}
	}
	for _, ext := range inv.OfKind("kubesphere.io", "Extension") {
		extNS["extension-"+ext.GetName()] = true
	}
	var candidates, users []*inventory.Object
	for _, ns := range inv.OfKind("", "Namespace") {
		n := ns.GetName()
		switch {
		case kubernetesNamespaces[n]:
			users = append(users, ns)
		case IsSystemNamespaceName(n) || extNS[n]:
			f.SystemNamespaces[n] = true
			f.add(ns, CatNamespace, "namespace KubeSphere/KubeFed created for itself")
		case compNamespaces[n] != "" && ns.GetLabels()[LabelWorkspace] == LabelSystemWorkspace:
			candidates = append(candidates, ns)
		default:
			users = append(users, ns)
		}
	}
	f.classifyReleases(inv, extReleaseNames(inv), compReleases)
	if len(candidates) > 0 {
		byNS := map[string][]*inventory.Object{}
		for _, obj := range inv.Objects {
			byNS[obj.GetNamespace()] = append(byNS[obj.GetNamespace()], obj)
		}
		for _, ns := range candidates {
			n := ns.GetName()
			if foreign := f.foreign(byNS[n]); len(foreign) > 0 {
				// What is not KubeSphere's may depend on the component
				// (users' Argo CD Applications on Argo CD): its releases
				// stay too.
				kept := f.dropComponentReleases(n, compReleases)
				users = append(users, ns)
				f.keep(ns, KeptNamespace, fmt.Sprintf("the installer created it for %s, but it holds objects nothing ties to KubeSphere (%s), which may depend on what runs there: kept, with %s",
					compNamespaces[n], describeSome(foreign, 5), orNone(kept, "no KubeSphere release in it")))
				continue
			}
			f.SystemNamespaces[n] = true
			f.add(ns, CatNamespace, "namespace the installer created for "+compNamespaces[n]+" (its ClusterConfiguration, its label), holding only KubeSphere's objects")
		}
	}
	f.UserNamespaces = users

	removeAPI := map[string]bool{}
	for _, n := range o.RemoveAPIServices {
		removeAPI[n] = true
	}
	var crds []*inventory.Object
	for _, obj := range inv.Objects {
		g := obj.Resource.GVR.Group
		if obj.GetLabels()[LabelBootstrapping] != "" {
			continue // Kubernetes' own, whatever KubeSphere annotated on it
		}
		switch {
		case IsKubeFedGroup(g):
			f.add(obj, CatKubeFed, "KubeFed object ("+g+")")
		case IsKubeSphereGroup(g):
			f.add(obj, CatKubeSphere, "KubeSphere object ("+g+")")
		case g == "apiextensions.k8s.io" && obj.Resource.Kind == "CustomResourceDefinition":
			crds = append(crds, obj) // once every instance is classified
		case g == "admissionregistration.k8s.io":
			if why := f.webhookReason(obj); why != "" {
				f.add(obj, CatWebhook, why)
			}
		case g == "apiregistration.k8s.io":
			if why := f.apiServiceReason(obj); why != "" {
				f.add(obj, CatAPIService, why)
			} else if removeAPI[obj.GetName()] {
				f.add(obj, CatAPIService, "APIService removed at the user's request (--remove-apiservice)")
			}
		case g == "rbac.authorization.k8s.io":
			if why := f.rbacReason(obj); why != "" {
				f.add(obj, CatRBAC, why)
			}
		case g == "apps" && (obj.Resource.Kind == "Deployment" || obj.Resource.Kind == "StatefulSet"):
			if f.SystemNamespaces[obj.GetNamespace()] {
				f.add(obj, CatWorkload, "workload of KubeSphere/KubeFed")
			}
		case obj.GetNamespace() == "":
			if why := f.helmReason(obj); why != "" {
				f.add(obj, CatHelm, "cluster-scoped object "+why)
			}
		case !f.SystemNamespaces[obj.GetNamespace()]:
			// helm uninstall deletes a release's manifest, not its hooks.
			if rel := f.inHooks[objectKey(obj)]; rel != "" {
				f.add(obj, CatHelm, "hook object of Helm release "+rel+", which helm uninstall leaves")
			}
		}
	}
	for _, r := range rbacRolesOfFootprint(f) {
		f.add(r, CatRBAC, "ClusterRole only KubeSphere's bindings use, for ServiceAccounts of removed namespaces")
	}
	for _, crd := range crds {
		f.classifyCRD(crd)
	}

	for _, obj := range inv.Objects {
		if f.Goes(obj) {
			continue
		}
		if d := f.ties(obj, o); d != nil {
			f.Detach = append(f.Detach, d)
		}
	}
	f.reportLookalikes()
	f.detect(inv)
	sort.SliceStable(f.Members, func(i, j int) bool { return f.Members[i].Category < f.Members[j].Category })
	return f
}

// keep records a kept object once.
func (f *Footprint) keep(obj *inventory.Object, id, why string) {
	if f.kept[obj.GetUID()] {
		return
	}
	f.kept[obj.GetUID()] = true
	f.Kept = append(f.Kept, &Kept{Obj: obj, ID: id, Reason: why})
}

func (f *Footprint) add(obj *inventory.Object, c Category, why string) {
	if f.member[obj.GetUID()] != nil {
		return
	}
	m := &Member{Obj: obj, Category: c, Reason: why}
	f.member[obj.GetUID()] = m
	f.Members = append(f.Members, m)
}

// ties works out what binds a user object to the footprint.
func (f *Footprint) ties(obj *inventory.Object, o Options) *Detach {
	var rm api.Removal
	var why []string
	for _, ref := range obj.GetOwnerReferences() {
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		owner := f.Inv.ByUID(ref.UID)
		// A reference into a footprint group counts even when its owner is
		// already gone: the garbage collector deletes dependents of absent
		// owners as soon as it can resolve their type again.
		if IsFootprintGroup(gv.Group) || (owner != nil && f.Goes(owner)) {
			rm.OwnerReferences = append(rm.OwnerReferences, string(ref.UID))
			why = append(why, fmt.Sprintf("owned by %s %s", ref.Kind, ref.Name))
		}
	}
	for _, fin := range obj.GetFinalizers() {
		if IsFootprintFinalizer(fin) {
			rm.Finalizers = append(rm.Finalizers, fin)
		}
	}
	if len(rm.Finalizers) > 0 {
		why = append(why, "finalizers no controller will remove")
	}
	labels := obj.GetLabels()
	if _, ok := labels[LabelKubeFedManaged]; ok {
		rm.Labels = append(rm.Labels, LabelKubeFedManaged)
	}
	if _, ok := labels[LabelWorkspace]; ok && !o.KeepWorkspaceLabels {
		rm.Labels = append(rm.Labels, LabelWorkspace)
	}
	if len(rm.Labels) > 0 {
		why = append(why, "labels "+strings.Join(rm.Labels, ", "))
	}
	if len(rm.OwnerReferences)+len(rm.Finalizers)+len(rm.Labels) == 0 {
		return nil
	}
	return &Detach{Obj: obj, Remove: rm, Reason: strings.Join(why, "; ")}
}

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

// helmReason: the object belongs to a footprint Helm release, by its
// release annotations or by the release's manifest; or its annotations
// name a release in a namespace KubeSphere/KubeFed create for themselves
// (the record can be gone with its namespace, the object not).
func (f *Footprint) helmReason(obj *inventory.Object) string {
	if owner := helmOwner(obj); owner != "" {
		if f.releases[owner] {
			return "of Helm release " + owner
		}
		if ns, _, _ := strings.Cut(owner, "/"); IsSystemNamespaceName(ns) {
			return "of Helm release " + owner + " (its namespace is KubeSphere's/KubeFed's)"
		}
	}
	if rel := f.inRelease[objectKey(obj)]; rel != "" {
		return "listed in the manifest of Helm release " + rel
	}
	if rel := f.inHooks[objectKey(obj)]; rel != "" {
		return "listed among the hooks of Helm release " + rel
	}
	return ""
}

func objectKey(o *inventory.Object) string {
	return manifestKey(o.Resource.GVR.Group, o.Resource.Kind, o.GetNamespace(), o.GetName())
}

// helmOwner is "namespace/name" of the release that installed an object.
func helmOwner(obj *inventory.Object) string {
	a := obj.GetAnnotations()
	if a[AnnotationHelmName] == "" {
		return ""
	}
	return a[AnnotationHelmNS] + "/" + a[AnnotationHelmName]
}

func extReleaseNames(inv *inventory.Inventory) map[string]bool {
	out := map[string]bool{}
	for _, ip := range inv.OfKind("kubesphere.io", "InstallPlan") {
		if n, _, _ := unstructured.NestedString(ip.Content.Object, "status", "releaseName"); n != "" {
			out[n] = true
		} else {
			out[ip.GetName()] = true
		}
	}
	return out
}

// classifyReleases keeps the latest revision of each footprint release: in
// a namespace KubeSphere/KubeFed create for themselves, an extension's, or
// one the installer's ClusterConfiguration says it installed (components).
// It indexes what their manifests hold.
func (f *Footprint) classifyReleases(inv *inventory.Inventory, extNames map[string]bool, components map[string]string) {
	latest := map[string]*release.Release{}
	for _, r := range inv.Releases {
		k := r.Namespace + "/" + r.Name
		if !(f.SystemNamespaces[r.Namespace] || IsSystemNamespaceName(r.Namespace) || extNames[r.Name] || components[k] != "") {
			continue
		}
		if cur := latest[k]; cur == nil || r.Version > cur.Version {
			latest[k] = r
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f.releases, f.inRelease, f.inHooks = map[string]bool{}, map[string]string{}, map[string]string{}
	for _, k := range keys {
		r := latest[k]
		f.Releases = append(f.Releases, r)
		f.releases[k] = true
		index(f.inRelease, k, r.Namespace, r.Manifest)
		for _, h := range r.Hooks {
			index(f.inHooks, k, r.Namespace, h.Manifest)
		}
	}
}

// dropComponentReleases takes back the releases a component's evidence
// alone made footprint in namespace ns, and says which.
func (f *Footprint) dropComponentReleases(ns string, components map[string]string) []string {
	var dropped []string
	keep := f.Releases[:0]
	for _, r := range f.Releases {
		k := r.Namespace + "/" + r.Name
		if r.Namespace == ns && components[k] != "" && !IsSystemNamespaceName(ns) {
			dropped = append(dropped, "Helm release "+k)
			delete(f.releases, k)
			continue
		}
		keep = append(keep, r)
	}
	f.Releases = keep
	for _, idx := range []map[string]string{f.inRelease, f.inHooks} {
		for key, rel := range idx {
			if !f.releases[rel] {
				delete(idx, key)
			}
		}
	}
	return dropped
}

func orNone(ss []string, none string) string {
	if len(ss) == 0 {
		return none
	}
	return strings.Join(ss, ", ")
}

// index records, under manifestKey, the objects of a release's manifest.
func index(into map[string]string, rel, relNS, manifest string) {
	for _, m := range releaseutil.SplitManifests(manifest) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(m), &head); err != nil || head.Kind == "" {
			continue
		}
		gv, _ := schema.ParseGroupVersion(head.APIVersion)
		ns := head.Metadata.Namespace
		if ns == "" {
			ns = relNS
		}
		into[manifestKey(gv.Group, head.Kind, ns, head.Metadata.Name)] = rel
		into[manifestKey(gv.Group, head.Kind, "", head.Metadata.Name)] = rel
	}
}

// manifestKey names an object across versions. A manifest does not say
// whether a kind is namespaced: both keys are indexed, and an object is
// looked up under its real namespace ("" when cluster-scoped).
func manifestKey(group, kind, ns, name string) string {
	return group + "/" + kind + " " + ns + "/" + name
}

// installedComponents reads the installer's ClusterConfiguration: the
// releases ("namespace/name") and namespaces of the components it says
// are on, each mapped to the component's switch.
func installedComponents(inv *inventory.Inventory) (releases, namespaces map[string]string) {
	releases, namespaces = map[string]string{}, map[string]string{}
	for _, cc := range inv.OfKind("installer.kubesphere.io", "ClusterConfiguration") {
		if cc.GetName() != "ks-installer" || cc.Content == nil {
			continue
		}
		for _, c := range installerComponents {
			v, found, _ := unstructured.NestedFieldNoCopy(cc.Content.Object, append([]string{"spec"}, c.Switch...)...)
			if !found || fmt.Sprint(v) != c.On {
				continue
			}
			what := "the ClusterConfiguration's " + strings.Join(c.Switch, ".")
			for _, r := range c.Releases {
				releases[r] = what
			}
			for _, n := range c.Namespaces {
				namespaces[n] = what
			}
		}
	}
	return releases, namespaces
}

// foreign lists the objects of a namespace that nothing ties to
// KubeSphere: not of a footprint group or release, not made by Kubernetes
// for what is (token Secrets of its ServiceAccounts, Endpoints of its
// Services, claims of its StatefulSets), not owned by what is.
func (f *Footprint) foreign(objs []*inventory.Object) []*inventory.Object {
	ours := map[types.UID]bool{}
	made := map[string]bool{"ServiceAccount default": true, "ConfigMap kube-root-ca.crt": true}
	var claimPrefixes []string
	for _, o := range objs {
		if !(IsFootprintGroup(o.Resource.GVR.Group) || f.helmReason(o) != "" || f.releaseRecord(o)) {
			continue
		}
		ours[o.GetUID()] = true
		switch o.Resource.Kind {
		case "Service":
			made["Endpoints "+o.GetName()] = true
		case "ServiceAccount":
			made["token "+o.GetName()] = true
		case "StatefulSet":
			if o.Content != nil {
				tmpls, _, _ := unstructured.NestedSlice(o.Content.Object, "spec", "volumeClaimTemplates")
				for _, t := range tmpls {
					name, _, _ := unstructured.NestedString(t.(map[string]any), "metadata", "name")
					claimPrefixes = append(claimPrefixes, name+"-"+o.GetName()+"-")
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, o := range objs {
			if ours[o.GetUID()] {
				continue
			}
			for _, ref := range o.GetOwnerReferences() {
				if ours[ref.UID] {
					ours[o.GetUID()], changed = true, true
					break
				}
			}
		}
	}
	var out []*inventory.Object
	for _, o := range objs {
		if ours[o.GetUID()] || made[o.Resource.Kind+" "+o.GetName()] {
			continue
		}
		if sa := o.GetAnnotations()["kubernetes.io/service-account.name"]; o.Resource.Kind == "Secret" && (sa == "default" || made["token "+sa]) {
			continue
		}
		if o.Resource.Kind == "PersistentVolumeClaim" && hasPrefix(o.GetName(), claimPrefixes) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// hasPrefix: s is one of the prefixes followed by an ordinal, as the
// StatefulSet controller names its claims.
func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if n, ok := strings.CutPrefix(s, p); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}

// releaseRecord: a Helm release record (Secret) of a footprint release.
func (f *Footprint) releaseRecord(o *inventory.Object) bool {
	l := o.GetLabels()
	return o.Resource.Kind == "Secret" && l["owner"] == "helm" && f.releases[o.GetNamespace()+"/"+l["name"]]
}

func describeSome(objs []*inventory.Object, n int) string {
	var parts []string
	for i, o := range objs {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(objs)-n))
			break
		}
		parts = append(parts, o.Resource.Kind+" "+o.GetName())
	}
	return strings.Join(parts, ", ")
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
	going := 0
	for _, i := range instances {
		if f.Goes(i) {
			going++
		}
	}
	why := f.helmReason(crd)
	switch {
	case why != "" && going == len(instances):
		f.add(crd, CatCRD, fmt.Sprintf("custom resource type %s; all %d instances go", why, len(instances)))
	case why != "":
		f.keep(crd, KeptSharedType, fmt.Sprintf("type %s, but %d of its %d instances are not KubeSphere's: the type stays with them", why, len(instances)-going, len(instances)))
	case going > 0:
		f.keep(crd, KeptSharedType, fmt.Sprintf("KubeSphere had %d of its %d instances (they go), but nothing in the cluster says the type is KubeSphere's: it stays", going, len(instances)))
	}
}

// reportLookalikes lists what stays although it looks like KubeSphere's:
// namespaces by name or the installer's label, and, in namespaces that are
// not the users' workspaces, objects whose name, labels or annotations
// mention KubeSphere or KubeFed.
func (f *Footprint) reportLookalikes() {
	userWorkspaceNS := map[string]bool{}
	for _, ns := range f.UserNamespaces {
		n := ns.GetName()
		ws := ns.GetLabels()[LabelWorkspace]
		switch {
		case kubernetesNamespaces[n]:
		case ws == LabelSystemWorkspace:
			f.keep(ns, KeptNamespace, "labelled as in KubeSphere's system-workspace, but nothing in the cluster says KubeSphere created it: kept")
		case LooksLikeKubeSphere(n):
			f.keep(ns, KeptNamespace, "named like KubeSphere's, but nothing in the cluster says it is (no owner, Helm release or installer record): kept")
		}
		if ws != "" && ws != LabelSystemWorkspace {
			userWorkspaceNS[n] = true
		}
	}
	detached := map[types.UID]bool{}
	for _, d := range f.Detach {
		detached[d.Obj.GetUID()] = true
	}
	for _, o := range f.Inv.Objects {
		ns := o.GetNamespace()
		if f.Goes(o) || detached[o.GetUID()] || userWorkspaceNS[ns] || o.Resource.Kind == "Namespace" || o.Resource.Kind == "CustomResourceDefinition" || localAPIService(o) {
			continue
		}
		if hint := lookalike(o); hint != "" {
			f.keep(o, KeptUnproven, hint+" mentions KubeSphere/KubeFed, but nothing in the cluster proves it is theirs: kept")
		}
	}
}

// localAPIService: the apiserver's own record of a CRD group, which goes
// with the group's last CRD.
func localAPIService(o *inventory.Object) bool {
	if o.Resource.Kind != "APIService" || o.Content == nil {
		return false
	}
	_, remote, _ := unstructured.NestedMap(o.Content.Object, "spec", "service")
	return !remote
}

// lookalike says what about an object mentions KubeSphere or KubeFed.
func lookalike(o *inventory.Object) string {
	if LooksLikeKubeSphere(o.GetName()) {
		return "its name"
	}
	for k, v := range o.GetLabels() {
		if LooksLikeKubeSphere(k) || LooksLikeKubeSphere(v) {
			return "its label " + k
		}
	}
	for k := range o.GetAnnotations() {
		if LooksLikeKubeSphere(k) {
			return "its annotation " + k
		}
	}
	return ""
}

// detect works out version and multi-cluster role.
func (f *Footprint) detect(inv *inventory.Inventory) {
	for _, c := range inv.OfKind("cluster.kubesphere.io", "Cluster") {
		if _, ok := c.GetLabels()[LabelClusterRoleHost]; ok {
			f.HostName = c.GetName()
		}
	}
	for _, cc := range inv.OfKind("installer.kubesphere.io", "ClusterConfiguration") {
		if cc.GetName() != "ks-installer" {
			continue
		}
		v := cc.GetLabels()["version"]
		if v == "" {
			v, _, _ = unstructured.NestedString(cc.Content.Object, "status", "core", "version")
		}
		role, _, _ := unstructured.NestedString(cc.Content.Object, "spec", "multicluster", "clusterRole")
		if role == "" {
			role = api.RoleNone
		}
		f.KubeSphere = api.KubeSphere{Version: v, Role: role}
		return
	}
	for _, r := range f.Releases {
		if r.Name == "ks-core" && r.Chart != nil && r.Chart.Metadata != nil && strings.HasPrefix(r.Chart.Metadata.AppVersion, "v4") {
			role := api.RoleNone
			if v, ok := r.Config["role"].(string); ok && v != "" {
				role = v
			} else if len(inv.OfKind("cluster.kubesphere.io", "Cluster")) > 0 {
				role = api.RoleHost
			}
			f.KubeSphere = api.KubeSphere{Version: r.Chart.Metadata.AppVersion, Role: role}
			return
		}
	}
	if !f.Empty() {
		f.KubeSphere = api.KubeSphere{Role: api.RoleLeftovers}
		return
	}
	f.KubeSphere = api.KubeSphere{Role: api.RoleAbsent}
}

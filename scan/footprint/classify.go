package footprint

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"helm.sh/helm/v3/pkg/release"

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

// Options change what counts as a tie.
type Options struct {
	// KeepWorkspaceLabels leaves kubesphere.io/workspace on namespaces, so
	// a new install re-binds them to their workspaces.
	KeepWorkspaceLabels bool
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

	member map[types.UID]*Member
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

// Classify sorts an inventory into footprint and ties.
func Classify(inv *inventory.Inventory, o Options) *Footprint {
	f := &Footprint{Inv: inv, SystemNamespaces: map[string]bool{}, member: map[types.UID]*Member{}, HostName: "host"}
	ksPresent := false
	for _, r := range inv.Resources {
		if IsKubeSphereGroup(r.GVR.Group) {
			ksPresent = true
		}
	}
	isGroup := func(g string) bool {
		return IsKubeSphereGroup(g) || IsKubeFedGroup(g) || (g == AppGroup && ksPresent)
	}

	// System namespaces: KubeSphere's and KubeFed's own, and those
	// extensions were installed into.
	extNS := map[string]bool{}
	for _, ip := range inv.OfKind("kubesphere.io", "InstallPlan") {
		if ns, _, _ := unstructured.NestedString(ip.Content.Object, "status", "targetNamespace"); ns != "" {
			extNS[ns] = true
		}
	}
	for _, ext := range inv.OfKind("kubesphere.io", "Extension") {
		extNS["extension-"+ext.GetName()] = true
	}
	for _, ns := range inv.OfKind("", "Namespace") {
		n := ns.GetName()
		if IsSystemNamespaceName(n) || (extNS[n] && !kubernetesNamespaces[n]) {
			f.SystemNamespaces[n] = true
			f.add(ns, CatNamespace, "namespace KubeSphere/KubeFed created for itself")
		} else {
			f.UserNamespaces = append(f.UserNamespaces, ns)
		}
	}

	helmReleases := f.classifyReleases(inv, extReleaseNames(inv))
	for _, obj := range inv.Objects {
		g := obj.Resource.GVR.Group
		switch {
		case IsKubeFedGroup(g):
			f.add(obj, CatKubeFed, "KubeFed object ("+g+")")
		case isGroup(g):
			f.add(obj, CatKubeSphere, "KubeSphere object ("+g+")")
		case g == "apiextensions.k8s.io" && obj.Resource.Kind == "CustomResourceDefinition":
			if _, grp, ok := strings.Cut(obj.GetName(), "."); ok && isGroup(grp) {
				f.add(obj, CatCRD, "custom resource type of "+grp)
			}
		case g == "admissionregistration.k8s.io":
			if why := f.webhookReason(obj, isGroup); why != "" {
				f.add(obj, CatWebhook, why)
			}
		case g == "apiregistration.k8s.io":
			if why := f.apiServiceReason(obj, isGroup); why != "" {
				f.add(obj, CatAPIService, why)
			}
		case g == "rbac.authorization.k8s.io":
			if why := f.rbacReason(obj, helmReleases); why != "" {
				f.add(obj, CatRBAC, why)
			}
		case g == "apps" && (obj.Resource.Kind == "Deployment" || obj.Resource.Kind == "StatefulSet"):
			if f.SystemNamespaces[obj.GetNamespace()] {
				f.add(obj, CatWorkload, "workload of KubeSphere/KubeFed")
			}
		case obj.GetNamespace() == "" && helmReleases[helmOwner(obj)]:
			f.add(obj, CatHelm, "cluster-scoped object of Helm release "+helmOwner(obj))
		}
	}

	for _, obj := range inv.Objects {
		if f.Goes(obj) {
			continue
		}
		if d := f.ties(obj, isGroup, o); d != nil {
			f.Detach = append(f.Detach, d)
		}
	}
	f.detect(inv)
	sort.SliceStable(f.Members, func(i, j int) bool { return f.Members[i].Category < f.Members[j].Category })
	return f
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
func (f *Footprint) ties(obj *inventory.Object, isGroup func(string) bool, o Options) *Detach {
	var rm api.Removal
	var why []string
	for _, ref := range obj.GetOwnerReferences() {
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		owner := f.Inv.ByUID(ref.UID)
		// A reference into a footprint group counts even when its owner is
		// already gone: the garbage collector deletes dependents of absent
		// owners as soon as it can resolve their type again.
		if isGroup(gv.Group) || (owner != nil && f.Goes(owner)) {
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

func (f *Footprint) webhookReason(obj *inventory.Object, isGroup func(string) bool) string {
	name := obj.GetName()
	if strings.Contains(name, "kubesphere.io") || strings.Contains(name, "kubefed.io") {
		return "webhook configuration of KubeSphere/KubeFed"
	}
	hooks, _, _ := unstructured.NestedSlice(obj.Content.Object, "webhooks")
	allGroups := len(hooks) > 0
	for _, h := range hooks {
		hm, _ := h.(map[string]any)
		if ns, _, _ := unstructured.NestedString(hm, "clientConfig", "service", "namespace"); f.SystemNamespaces[ns] || IsSystemNamespaceName(ns) {
			return "served from " + ns + ", which is removed"
		}
		rules, _, _ := unstructured.NestedSlice(hm, "rules")
		for _, r := range rules {
			groups, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "apiGroups")
			for _, g := range groups {
				if !isGroup(g) {
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

func (f *Footprint) apiServiceReason(obj *inventory.Object, isGroup func(string) bool) string {
	if _, remote, _ := unstructured.NestedMap(obj.Content.Object, "spec", "service"); !remote {
		// Local APIServices are the apiserver's own record of CRD groups:
		// they go by themselves with the CRDs.
		return ""
	}
	if ns, _, _ := unstructured.NestedString(obj.Content.Object, "spec", "service", "namespace"); f.SystemNamespaces[ns] || IsSystemNamespaceName(ns) {
		return "served from " + ns + ", which is removed"
	}
	if g, _, _ := unstructured.NestedString(obj.Content.Object, "spec", "group"); isGroup(g) {
		return "serves " + g
	}
	return ""
}

func (f *Footprint) rbacReason(obj *inventory.Object, helmReleases map[string]bool) string {
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
	if obj.GetNamespace() == "" && IsKubeSphereClusterRBACName(obj.GetName()) {
		return "named for KubeSphere/KubeFed"
	}
	if helmReleases[helmOwner(obj)] {
		return "installed by Helm release " + helmOwner(obj)
	}
	if kind == "ClusterRoleBinding" || kind == "RoleBinding" {
		subs, _, _ := unstructured.NestedSlice(obj.Content.Object, "subjects")
		all := len(subs) > 0
		for _, s := range subs {
			sm := s.(map[string]any)
			if sm["kind"] != "ServiceAccount" || !f.SystemNamespaces[fmt.Sprint(sm["namespace"])] {
				all = false
			}
		}
		if all {
			return "binds only ServiceAccounts of removed namespaces"
		}
	}
	return ""
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

// classifyReleases keeps the latest revision of each footprint release and
// returns their "namespace/name" set.
func (f *Footprint) classifyReleases(inv *inventory.Inventory, extNames map[string]bool) map[string]bool {
	latest := map[string]*release.Release{}
	for _, r := range inv.Releases {
		if !(f.SystemNamespaces[r.Namespace] || releaseNames[r.Name] || extNames[r.Name]) {
			continue
		}
		k := r.Namespace + "/" + r.Name
		if cur := latest[k]; cur == nil || r.Version > cur.Version {
			latest[k] = r
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	set := map[string]bool{}
	for _, k := range keys {
		f.Releases = append(f.Releases, latest[k])
		set[k] = true
	}
	return set
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

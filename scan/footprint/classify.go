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
	// CatGrant: a binding that is KubeSphere's because it grants a role
	// the teardown removes to Kubernetes' own identities (grantsOfRemovedRoles).
	CatGrant Category = "grant"
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
	// dyingNS are users' namespaces Kubernetes is deleting.
	dyingNS map[string]bool
	// releases are the footprint releases ("namespace/name"); inRelease
	// and inHooks the objects their manifests and hooks hold (see
	// manifestKey).
	releases           map[string]bool
	inRelease, inHooks map[string]string
	// removeAPI are the APIServices --remove-apiservice names.
	removeAPI map[string]bool
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
	extReleases, extNamespaces := installedExtensions(inv)
	for k, why := range extReleases {
		if compReleases[k] == "" {
			compReleases[k] = why
		}
	}
	for k, why := range extNamespaces {
		if compNamespaces[k] == "" {
			compNamespaces[k] = why
		}
	}

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
		case api.KubernetesNamespaces[n]:
			users = append(users, ns)
		case IsSystemNamespaceName(n) || extNS[n]:
			f.SystemNamespaces[n] = true
			f.add(ns, CatNamespace, "namespace KubeSphere/KubeFed created for itself")
		case compNamespaces[n] != "" && (ns.GetLabels()[LabelWorkspace] == LabelSystemWorkspace || extNamespaces[n] != ""):
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
				f.keep(ns, KeptNamespace, fmt.Sprintf("KubeSphere installed into it (%s), but it holds objects nothing ties to KubeSphere (%s), which may depend on what runs there: kept, with %s",
					compNamespaces[n], describeSome(foreign, 5), orNone(kept, "no KubeSphere release in it")))
				continue
			}
			f.SystemNamespaces[n] = true
			f.add(ns, CatNamespace, "namespace KubeSphere installed into ("+compNamespaces[n]+"), holding only KubeSphere's objects")
		}
	}
	f.UserNamespaces = users
	f.dyingNS = map[string]bool{}
	for _, ns := range users {
		if ns.GetDeletionTimestamp() != nil {
			f.dyingNS[ns.GetName()] = true
		}
	}

	f.removeAPI = map[string]bool{}
	for _, n := range o.RemoveAPIServices {
		f.removeAPI[n] = true
	}
	crds := f.classifyObjects()
	for _, r := range rbacRolesOfFootprint(f) {
		f.add(r, CatRBAC, "ClusterRole only KubeSphere's bindings use, for ServiceAccounts of removed namespaces")
	}
	for _, g := range grantsOfRemovedRoles(f) {
		f.add(g.binding, CatGrant, g.reason)
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
	var held []string
	for _, fin := range obj.GetFinalizers() {
		if IsFootprintFinalizer(fin) {
			rm.Finalizers = append(rm.Finalizers, fin)
		}
	}
	if len(rm.Finalizers) > 0 && f.Dying(obj) {
		// Kubernetes is already deleting it (or its namespace): that
		// finalizer is all that keeps the user's data. It stays.
		held, rm.Finalizers = rm.Finalizers, nil
	}
	if len(rm.Finalizers) > 0 {
		why = append(why, "finalizers no controller will remove")
	}
	if len(held) > 0 {
		why = append(why, "being deleted: finalizers "+strings.Join(held, ", ")+" kept, they hold the data")
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

// Dying reports whether a user's object is being deleted by Kubernetes, or
// sits in a user namespace that is: what is left of it can still be saved,
// and nothing may let that deletion finish.
func (f *Footprint) Dying(o *inventory.Object) bool {
	if f.Goes(o) {
		return false
	}
	if o.GetDeletionTimestamp() != nil {
		return true
	}
	ns := o.GetNamespace()
	return ns != "" && f.dyingNS[ns]
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

// Package hazard finds what makes a KubeSphere/KubeFed footprint dangerous:
// cluster records that alias one cluster, user namespaces a KubeSphere object
// owns, fail-closed webhooks without a backend, stuck namespaces. Finding IDs
// are stable: runbooks match on them.
package hazard

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Finding IDs.
const (
	ClusterAlias         = "kubefed-cluster-alias"
	ClusterStale         = "kubefed-cluster-stale"
	NamespaceOwned       = "namespace-owned-by-kubesphere"
	WebhookBackend       = "webhook-backend-missing"
	APIServiceDown       = "apiservice-unavailable"
	NamespaceStuck       = "namespace-stuck-terminating"
	KubeFedWithoutKS     = "kubefed-without-kubesphere"
	KubeFedManagedOrphan = "kubefed-managed-orphan"
	UserDataDeleting     = "user-data-being-deleted"
	GuardLeftOver        = "deletion-guard-left"
	UntestedKubernetes   = "kubernetes-version-untested"
	// NamespaceUnfinalized: a namespace lacks the `kubernetes` finalizer,
	// so a delete would leave its content in etcd.
	NamespaceUnfinalized = "namespace-finalizer-missing"
)

// TestedKubernetes is the range of Kubernetes minor versions (1.x) that
// make test-compat proves ks-clean on (docs/compatibility.md).
var TestedKubernetes = [2]int{22, 34}

// Options tune the checks that connect to other clusters.
type Options struct {
	// Timeout for each connection to a cluster record's endpoint.
	Timeout time.Duration
	// Concurrency of those connections.
	Concurrency int
	// Identify reads the kube-system UID of the cluster cfg reaches (nil:
	// a GET through cfg). Golden tests answer from a recording.
	Identify func(ctx context.Context, cfg *rest.Config) (string, error)
}

// DefaultOptions are the defaults of Options (the CLI's flags start from
// them).
func DefaultOptions() Options { return Options{Timeout: 5 * time.Second, Concurrency: 8} }

// Find runs every check. It reads only: the one network activity beyond the
// inventory is a GET of kube-system through each cluster record. It returns
// the multi-cluster records it resolved too, for cross-cluster checks.
func Find(ctx context.Context, f *footprint.Footprint, o Options) ([]api.Finding, []*Record) {
	d := DefaultOptions()
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	records, out := clusterRecordFindings(ctx, f, o)
	out = append(out, ownedNamespaces(f, hasCritical(out, ClusterAlias))...)
	out = append(out, webhookBackends(f)...)
	out = append(out, apiServices(f)...)
	out = append(out, stuckNamespaces(f)...)
	out = append(out, unfinalizedNamespaces(f)...)
	out = append(out, userDataDeleting(f)...)
	out = append(out, leftoverGuard(f)...)
	out = append(out, kubeFedLeftovers(f)...)
	out = append(out, kept(f)...)
	out = append(out, untestedKubernetes(f.Inv.Kubernetes)...)
	SortFindings(out)
	return out, records
}

// SortFindings puts critical findings first, keeping the order otherwise.
func SortFindings(fs []api.Finding) {
	sort.SliceStable(fs, func(i, j int) bool { return sevRank(fs[i].Severity) < sevRank(fs[j].Severity) })
}

// HasCritical reports whether any finding is critical.
func HasCritical(fs []api.Finding) bool {
	for _, f := range fs {
		if f.Severity == api.Critical {
			return true
		}
	}
	return false
}

func hasCritical(fs []api.Finding, id string) bool {
	for _, f := range fs {
		if f.ID == id && f.Severity == api.Critical {
			return true
		}
	}
	return false
}

func sevRank(s api.Severity) int {
	switch s {
	case api.Critical:
		return 0
	case api.Warning:
		return 1
	}
	return 2
}

func refs(objs ...*inventory.Object) []api.ObjectRef {
	out := make([]api.ObjectRef, 0, len(objs))
	for _, o := range objs {
		r := o.Ref()
		r.ResourceVersion = ""
		out = append(out, r)
	}
	return out
}

// clusterRecordFindings: records whose credentials ks-clean never uses, two
// records of one kind that resolve to one cluster, and records that point at
// this cluster under another name.
func clusterRecordFindings(ctx context.Context, f *footprint.Footprint, o Options) ([]*Record, []api.Finding) {
	kfc := kubeFedRecords(f.Inv)
	kcl := clusterRecords(f.Inv, f.HostName)
	all := append(append([]*Record{}, kfc...), kcl...)
	resolve(ctx, all, o)
	local := NormalizeEndpoint(ctx, f.Inv.Server)
	out := unsafeRecords(all)
	for _, set := range [][]*Record{kfc, kcl} {
		out = append(out, aliases(ctx, set)...)
	}
	for _, r := range kfc {
		here := r.UID == f.Inv.KubeSystemUID || (r.UID == "" && r.Normalized(ctx).Same(local))
		if here && r.Obj.GetName() != f.HostName {
			how := "its credentials reach this cluster's kube-system"
			if r.UID == "" {
				how = "its endpoint is this cluster's API server (identity not verified: " + r.Err + ")"
			}
			out = append(out, api.Finding{
				ID: ClusterStale, Severity: api.Warning,
				Message: fmt.Sprintf("KubeFedCluster %s points at this cluster (%s), whose name here is %q: a record left from an earlier install",
					r.Obj.GetName(), how, f.HostName),
				Objects: refs(r.Obj),
			})
		}
	}
	return all, out
}

// aliases groups records by identity: kube-system UID when verified, else
// the normalized endpoint.
func aliases(ctx context.Context, records []*Record) []api.Finding {
	type group struct {
		key      string
		verified bool
		members  []*Record
	}
	var groups []*group
	for _, r := range records {
		var g *group
		for _, cand := range groups {
			m := cand.members[0]
			if (r.UID != "" && m.UID != "" && r.UID == m.UID) ||
				((r.UID == "" || m.UID == "") && r.Normalized(ctx).Same(m.Normalized(ctx))) {
				g = cand
				break
			}
		}
		if g == nil {
			g = &group{key: r.UID, verified: r.UID != ""}
			groups = append(groups, g)
		}
		if r.UID == "" {
			g.verified = false
		}
		g.members = append(g.members, r)
	}
	var out []api.Finding
	for _, g := range groups {
		if len(g.members) < 2 {
			continue
		}
		var names, eps []string
		var objs []*inventory.Object
		for _, m := range g.members {
			names = append(names, m.Obj.GetName())
			eps = append(eps, m.Endpoint)
			objs = append(objs, m.Obj)
		}
		how := "all reach kube-system UID " + g.key
		if !g.verified {
			how = "their endpoints name the same API server (identity not verified with their credentials)"
		}
		kind := g.members[0].Obj.Resource.Kind
		out = append(out, api.Finding{
			ID: ClusterAlias, Severity: api.Critical,
			Message: fmt.Sprintf("%s records %s are one cluster (%s; endpoints %s): KubeFed sees it twice and can delete and re-create what it propagates, and with it the namespaces workspaces own",
				kind, strings.Join(names, ", "), how, strings.Join(eps, ", ")),
			Objects: refs(objs...),
		})
	}
	return out
}

// ownedNamespaces: user namespaces whose owner references point into the
// footprint die with their owner. One finding per owner, naming what each
// namespace holds.
func ownedNamespaces(f *footprint.Footprint, flapping bool) []api.Finding {
	holds := f.Inv.Holds()
	type owned struct {
		owner string
		nss   []*inventory.Object
	}
	var order []string
	byOwner := map[string]*owned{}
	for _, ns := range f.UserNamespaces {
		for _, ref := range ns.GetOwnerReferences() {
			if o := f.Inv.ByUID(ref.UID); !((o != nil && f.Goes(o)) || footprint.FullGroup(groupOf(ref.APIVersion))) {
				continue
			}
			key := ref.Kind + " " + ref.Name
			if byOwner[key] == nil {
				byOwner[key] = &owned{owner: key}
				order = append(order, key)
			}
			byOwner[key].nss = append(byOwner[key].nss, ns)
		}
	}
	sev := api.Warning
	if flapping {
		sev = api.Critical // the owner is being deleted and re-created
	}
	var out []api.Finding
	for _, key := range order {
		o := byOwner[key]
		var parts []string
		for i, ns := range o.nss {
			if i == 10 {
				parts = append(parts, fmt.Sprintf("and %d more", len(o.nss)-10))
				break
			}
			parts = append(parts, fmt.Sprintf("%s (%s)", ns.GetName(), holds[ns.GetName()]))
		}
		out = append(out, api.Finding{
			ID: NamespaceOwned, Severity: sev,
			Message: fmt.Sprintf("%d namespaces are owned by %s and are deleted by the garbage collector with it: %s",
				len(o.nss), o.owner, strings.Join(parts, "; ")),
			Objects: refs(o.nss...),
		})
	}
	return out
}

func groupOf(apiVersion string) string {
	if g, _, ok := strings.Cut(apiVersion, "/"); ok {
		return g
	}
	return ""
}

// webhookBackends: a webhook whose Service is absent or has no ready
// endpoint refuses (Fail) or skips (Ignore) every call.
func webhookBackends(f *footprint.Footprint) []api.Finding {
	services := map[string]bool{}
	for _, s := range f.Inv.OfKind("", "Service") {
		services[s.GetNamespace()+"/"+s.GetName()] = true
	}
	ready := readyServices(f.Inv)
	var out []api.Finding
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		for _, wc := range f.Inv.OfKind("admissionregistration.k8s.io", kind) {
			hooks, _, _ := unstructured.NestedSlice(wc.Content.Object, "webhooks")
			var broken []string
			failClosed := false
			for _, h := range hooks {
				hm, _ := h.(map[string]any)
				ns, _, _ := unstructured.NestedString(hm, "clientConfig", "service", "namespace")
				name, _, _ := unstructured.NestedString(hm, "clientConfig", "service", "name")
				if name == "" {
					continue // URL webhooks: nothing to check from here
				}
				key := ns + "/" + name
				var why string
				switch {
				case !services[key]:
					why = "Service " + key + " does not exist"
				case !ready[key]:
					why = "Service " + key + " has no ready endpoints"
				default:
					continue
				}
				policy, _, _ := unstructured.NestedString(hm, "failurePolicy")
				if policy == "" || policy == "Fail" {
					failClosed = true
				}
				hookName, _ := hm["name"].(string)
				broken = append(broken, fmt.Sprintf("%s (%s, failurePolicy %s)", hookName, why, orDefault(policy, "Fail")))
			}
			if len(broken) == 0 {
				continue
			}
			sev, effect := api.Warning, "calls are skipped"
			if failClosed {
				sev, effect = api.Critical, "every write it matches is refused"
			}
			out = append(out, api.Finding{
				ID: WebhookBackend, Severity: sev,
				Message: fmt.Sprintf("%s %s has no backend: %s; %s", kind, wc.GetName(), strings.Join(broken, "; "), effect),
				Objects: refs(wc),
			})
		}
	}
	return out
}

// readyServices lists services with at least one ready endpoint, from
// EndpointSlices.
func readyServices(inv *inventory.Inventory) map[string]bool {
	out := map[string]bool{}
	for _, es := range inv.OfKind("discovery.k8s.io", "EndpointSlice") {
		svc := es.GetLabels()["kubernetes.io/service-name"]
		eps, _, _ := unstructured.NestedSlice(es.Content.Object, "endpoints")
		for _, e := range eps {
			em, _ := e.(map[string]any)
			r, found, _ := unstructured.NestedBool(em, "conditions", "ready")
			if !found || r {
				out[es.GetNamespace()+"/"+svc] = true
			}
		}
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func apiServices(f *footprint.Footprint) []api.Finding {
	var out []api.Finding
	for _, a := range f.Inv.OfKind("apiregistration.k8s.io", "APIService") {
		conds, _, _ := unstructured.NestedSlice(a.Content.Object, "status", "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["type"] == "Available" && cm["status"] != "True" {
				out = append(out, api.Finding{
					ID: APIServiceDown, Severity: api.Warning,
					Message: fmt.Sprintf("APIService %s is unavailable (%v: %v): discovery of its group fails and namespace deletion waits on it", a.GetName(), cm["reason"], cm["message"]),
					Objects: refs(a),
				})
			}
		}
	}
	return out
}

func stuckNamespaces(f *footprint.Footprint) []api.Finding {
	var out []api.Finding
	for _, ns := range f.Inv.OfKind("", "Namespace") {
		if ns.GetDeletionTimestamp() == nil || f.Dying(ns) {
			continue // users' namespaces: userDataDeleting
		}
		var why []string
		if fins := ns.GetFinalizers(); len(fins) > 0 {
			why = append(why, "metadata.finalizers "+strings.Join(fins, ", "))
		}
		if fins, _, _ := unstructured.NestedStringSlice(ns.Content.Object, "spec", "finalizers"); len(fins) > 0 {
			why = append(why, "spec.finalizers "+strings.Join(fins, ", "))
		}
		conds, _, _ := unstructured.NestedSlice(ns.Content.Object, "status", "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["status"] == "True" {
				why = append(why, fmt.Sprintf("%v: %v", cm["type"], cm["message"]))
			}
		}
		age := f.Inv.TakenAt.Sub(ns.GetDeletionTimestamp().Time).Round(time.Second)
		out = append(out, api.Finding{
			ID: NamespaceStuck, Severity: api.Warning,
			Message: fmt.Sprintf("namespace %s has been Terminating for %s: %s", ns.GetName(), age, strings.Join(why, "; ")),
			Objects: refs(ns),
		})
	}
	return out
}

// unfinalizedNamespaces: namespaces without the `kubernetes` finalizer
// (KubeSphere 4.1's post-delete hook PUTs /finalize with a bare object: it
// wipes the finalizer with the labels and annotations). Deleted, such a
// namespace goes at once and its objects stay in etcd, to come back with
// the next namespace of that name; already deleted, the next update or
// delete of it does that.
func unfinalizedNamespaces(f *footprint.Footprint) []api.Finding {
	holds := f.Inv.Holds()
	var out []api.Finding
	for _, ns := range f.Inv.OfKind("", "Namespace") {
		if !inventory.Unfinalized(ns) {
			continue
		}
		name, n := ns.GetName(), holds[ns.GetName()].Count()
		ours := f.SystemNamespaces[name]
		sev := api.Warning
		if !ours && n > 0 {
			sev = api.Critical
		}
		var msg string
		switch {
		case ns.GetDeletionTimestamp() != nil && !ours:
			msg = fmt.Sprintf("namespace %s is Terminating without its %q finalizer (spec.finalizers): the next update or delete of it removes it and leaves its %d objects in etcd, and putting the finalizer back would delete them. The plan never writes to it; copy out what you need first", name, corev1.FinalizerKubernetes, n)
		case ours:
			msg = fmt.Sprintf("namespace %s lacks its %q finalizer (spec.finalizers): a delete would leave its %d objects in etcd, to come back with the next namespace of that name. The plan puts the finalizer back before deleting it", name, corev1.FinalizerKubernetes, n)
		default:
			msg = fmt.Sprintf("namespace %s lacks its %q finalizer (spec.finalizers): a delete would leave its %d objects in etcd, to come back with the next namespace of that name. The plan puts the finalizer back (it touches no data)", name, corev1.FinalizerKubernetes, n)
		}
		if len(ns.GetLabels()) <= 1 && !ours {
			// The hook's bare object wipes labels too, the workspace
			// label with them (the apiserver puts back only its own
			// kubernetes.io/metadata.name).
			msg += "; its labels were wiped with it, workspace membership included: only a tenancy export taken before (ks-clean tenancy export) can bring that back"
		}
		out = append(out, api.Finding{ID: NamespaceUnfinalized, Severity: sev, Message: msg, Objects: refs(ns)})
	}
	return out
}

// kubeFedLeftovers: KubeFed without a KubeSphere install, and objects still
// marked as KubeFed-managed with no KubeFed controller to manage them.
func kubeFedLeftovers(f *footprint.Footprint) []api.Finding {
	var kubefed []*inventory.Object
	for _, m := range f.Members {
		if m.Category == footprint.CatKubeFed {
			kubefed = append(kubefed, m.Obj)
		}
	}
	var out []api.Finding
	installed := f.KubeSphere.Version != ""
	if len(kubefed) > 0 && !installed {
		out = append(out, api.Finding{
			ID: KubeFedWithoutKS, Severity: api.Warning,
			Message: fmt.Sprintf("%d KubeFed objects remain without a KubeSphere install (a partial uninstall's leftovers; the official 3.x script skips them once the ClusterConfiguration is gone)", len(kubefed)),
			Objects: refs(limit(kubefed, 50)...),
		})
	}
	controller := false
	for _, d := range f.Inv.OfKind("apps", "Deployment") {
		if strings.Contains(d.GetName(), "kubefed-controller-manager") {
			if r, found, _ := unstructured.NestedInt64(d.Content.Object, "spec", "replicas"); !found || r > 0 {
				controller = true
			}
		}
	}
	if controller && installed {
		return out
	}
	var managed []*inventory.Object
	for _, o := range f.Inv.Objects {
		if o.GetLabels()[footprint.LabelKubeFedManaged] == "true" && !f.Goes(o) {
			managed = append(managed, o)
		}
	}
	if len(managed) > 0 {
		out = append(out, api.Finding{
			ID: KubeFedManagedOrphan, Severity: api.Warning,
			Message: fmt.Sprintf("%d objects are labelled %s=true but no KubeFed controller manages them; a new KubeFed would treat them as its own", len(managed), footprint.LabelKubeFedManaged),
			Objects: refs(limit(managed, 50)...),
		})
	}
	return out
}

func limit(objs []*inventory.Object, n int) []*inventory.Object {
	if len(objs) > n {
		return objs[:n]
	}
	return objs
}

// kept reports what the teardown keeps although it looks like KubeSphere's,
// one finding per reason, naming every object.
func kept(f *footprint.Footprint) []api.Finding {
	var out []api.Finding
	at := map[string]int{}
	for _, k := range f.Kept {
		key := k.ID + "\x00" + k.Reason
		i, ok := at[key]
		if !ok {
			sev := api.Info
			if k.ID == footprint.KeptNamespace || k.ID == footprint.KeptSharedType {
				sev = api.Warning
			}
			at[key], i = len(out), len(out)
			out = append(out, api.Finding{ID: k.ID, Severity: sev, Message: k.Reason})
		}
		out[i].Objects = append(out[i].Objects, refs(k.Obj)...)
	}
	for i := range out {
		names := make([]string, 0, len(out[i].Objects))
		for _, r := range out[i].Objects {
			names = append(names, r.String())
		}
		out[i].Message = fmt.Sprintf("kept %s: %s", strings.Join(names, ", "), out[i].Message)
	}
	return out
}

// userDataDeleting: users' namespaces and objects Kubernetes is already
// deleting (the damage of an earlier, hurried uninstall in progress). Each
// is critical: it names the cause and what of the user's is still inside,
// which can still be saved.
func userDataDeleting(f *footprint.Footprint) []api.Finding {
	holds := f.Inv.Holds()
	var out []api.Finding
	dyingNS := map[string]bool{}
	for _, ns := range f.UserNamespaces {
		if ns.GetDeletionTimestamp() == nil {
			continue
		}
		dyingNS[ns.GetName()] = true
		out = append(out, api.Finding{
			ID: UserDataDeleting, Severity: api.Critical,
			Message: fmt.Sprintf("namespace %s is being deleted (since %s): %s; still inside: %s. A deletion cannot be undone: the plan keeps every finalizer that holds what is left and switches its volumes to Retain; copy out what you need",
				ns.GetName(), ns.GetDeletionTimestamp().UTC().Format(time.RFC3339), deletionCause(f, ns), holds[ns.GetName()]),
			Objects: refs(ns),
		})
	}
	byNS := map[string][]*inventory.Object{}
	var order []string
	for _, o := range f.Inv.Objects {
		ns := o.GetNamespace()
		if o.GetDeletionTimestamp() == nil || ns == "" || o.Resource.Kind == "Namespace" || !f.Dying(o) {
			continue
		}
		if dyingNS[ns] {
			continue // reported with its namespace
		}
		if byNS[ns] == nil {
			order = append(order, ns)
		}
		byNS[ns] = append(byNS[ns], o)
	}
	for _, ns := range order {
		objs := byNS[ns]
		var names []string
		for _, o := range objs {
			names = append(names, fmt.Sprintf("%s %s (%s)", o.Resource.Kind, o.GetName(), deletionCause(f, o)))
		}
		out = append(out, api.Finding{
			ID: UserDataDeleting, Severity: api.Critical,
			Message: fmt.Sprintf("%d of the user's objects in namespace %s are being deleted: %s", len(objs), ns, strings.Join(names, "; ")),
			Objects: refs(objs...),
		})
	}
	return out
}

// deletionCause says why Kubernetes is deleting an object, as far as the
// cluster shows: an owner that is gone or going (the garbage collector),
// else a delete request, and what holds it.
func deletionCause(f *footprint.Footprint, o *inventory.Object) string {
	var why []string
	for _, ref := range o.GetOwnerReferences() {
		owner := f.Inv.ByUID(ref.UID)
		switch {
		case owner == nil:
			why = append(why, fmt.Sprintf("its owner %s %s is gone, so the garbage collector deletes it", ref.Kind, ref.Name))
		case owner.GetDeletionTimestamp() != nil:
			why = append(why, fmt.Sprintf("its owner %s %s is being deleted", ref.Kind, ref.Name))
		}
	}
	if len(why) == 0 {
		why = append(why, "something deleted it (a user, a script, or a controller such as KubeFed's sync controller)")
	}
	if fins := o.GetFinalizers(); len(fins) > 0 {
		why = append(why, "held by finalizers "+strings.Join(fins, ", "))
	}
	return strings.Join(why, "; ")
}

// leftoverGuard: the deletion guard of an apply that was killed (or of one
// running right now) still refuses deleting what it protected.
func leftoverGuard(f *footprint.Footprint) []api.Finding {
	var objs []*inventory.Object
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		for _, o := range f.Inv.OfKind("admissionregistration.k8s.io", kind) {
			if o.GetName() == api.GuardName {
				objs = append(objs, o)
			}
		}
	}
	if len(objs) == 0 {
		return nil
	}
	return []api.Finding{{
		ID: GuardLeftOver, Severity: api.Warning,
		Message: fmt.Sprintf("ks-clean's deletion guard %s is in place: unless an apply is running now, one was killed and left it, or kept it because protected objects were still owned by what it deleted (the garbage collector would take them); it refuses deleting the namespaces and volumes that apply protected. The next apply takes it over and removes it; to remove it now, once nothing protected has an owner reference into what was deleted: kubectl delete validatingadmissionpolicybinding,validatingadmissionpolicy %s", api.GuardName, api.GuardName),
		Objects: refs(objs...),
	}}
}

// untestedKubernetes warns of a server outside the tested range. It does
// not refuse: every API ks-clean uses is older than any Kubernetes
// KubeSphere 3.x or 4.x runs on, and the guard falls back to a tripwire
// where admission policies are missing; but nothing proved it there.
func untestedKubernetes(version string) []api.Finding {
	var major, minor int
	if _, err := fmt.Sscanf(version, "v%d.%d", &major, &minor); err != nil || major != 1 {
		return nil
	}
	if minor >= TestedKubernetes[0] && minor <= TestedKubernetes[1] {
		return nil
	}
	return []api.Finding{{
		ID: UntestedKubernetes, Severity: api.Warning,
		Message: fmt.Sprintf("this server is Kubernetes %s; ks-clean is tested on 1.%d to 1.%d (docs/compatibility.md). Run 'ks-clean apply PLAN --dry-run' first: every write is sent to the server with dryRun=All, so a gap shows there, before anything changes",
			version, TestedKubernetes[0], TestedKubernetes[1]),
		Objects: []api.ObjectRef{},
	}}
}

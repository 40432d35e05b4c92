package rbac

import (
	"sort"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/lease"
)

// Resolver gives the resource (plural) of an apiVersion and kind, whether
// it is namespaced, and false when the cluster does not serve it.
type Resolver func(apiVersion, kind string) (resource string, namespaced, ok bool)

// Guarded reports whether apply sets the deletion guard for st: it protects
// namespaces or volumes. It is the condition uninstall uses.
func Guarded(st *api.Stage) bool {
	for _, r := range st.Protected {
		if r.Guardable() {
			return true
		}
	}
	return false
}

// ForStage lists what applying st writes and reads beyond the scan role
// (apply's preflight scans again, with the scan role's reads):
//
//   - its Lease, created in kube-system, then read, renewed and deleted by
//     name;
//   - the deletion guard (a ValidatingAdmissionPolicy and its binding) by
//     name, when the stage protects namespaces or volumes;
//   - per step, the verbs on its target by name: get and patch to scale,
//     detach or retain, get and delete to delete;
//   - inside each namespace the stage deletes, reads of everything (the
//     backup saves it) and patches (finalizers no controller will remove);
//   - per helm-uninstall step, Helm's release records in the release's
//     namespace, and delete of every object of its manifest
//     (manifests["namespace/release"]), by name.
//
// Targets whose type resolve does not know are gone, and need nothing.
func ForStage(st *api.Stage, resolve Resolver, manifests map[string][]api.ObjectRef) []Permission {
	set := map[Permission]bool{
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: lease.Namespace}: true,
	}
	for _, v := range []string{"get", "update", "delete"} {
		set[Permission{Verb: v, Group: "coordination.k8s.io", Resource: "leases", Namespace: lease.Namespace, Name: lease.Name}] = true
	}
	if Guarded(st) {
		for _, r := range []string{"validatingadmissionpolicies", "validatingadmissionpolicybindings"} {
			set[Permission{Verb: "create", Group: "admissionregistration.k8s.io", Resource: r}] = true
			for _, v := range []string{"get", "update", "delete"} { // update: a guard a killed apply left is taken over
				set[Permission{Verb: v, Group: "admissionregistration.k8s.io", Resource: r, Name: api.GuardName}] = true
			}
		}
	}
	named := func(ref api.ObjectRef, verbs ...string) {
		resource, namespaced, ok := resolve(ref.APIVersion, ref.Kind)
		if !ok {
			return
		}
		ns := ""
		if namespaced {
			ns = ref.Namespace
		}
		for _, v := range verbs {
			set[Permission{Verb: v, Group: ref.Group(), Resource: resource, Namespace: ns, Name: ref.Name}] = true
		}
	}
	for _, s := range st.Steps {
		switch s.Action {
		case api.ActionScale, api.ActionPatch, api.ActionRetain:
			named(s.Target, "get", "patch")
		case api.ActionFinalize:
			named(s.Target, "get")
			set[Permission{Verb: "update", Resource: "namespaces/finalize", Name: s.Target.Name}] = true
		case api.ActionDelete:
			named(s.Target, "get", "delete")
			if s.Target.Group() == "" && s.Target.Kind == "Namespace" {
				// apply puts a wiped finalizer back before the delete.
				set[Permission{Verb: "update", Resource: "namespaces/finalize", Name: s.Target.Name}] = true
				for _, v := range []string{"get", "list", "patch"} {
					set[Permission{Verb: v, Group: "*", Resource: "*", Namespace: s.Target.Name}] = true
				}
			}
		case api.ActionHelmUninstall:
			for _, v := range []string{"get", "list", "update", "delete"} {
				set[Permission{Verb: v, Resource: "secrets", Namespace: s.Target.Namespace}] = true
			}
			for _, obj := range manifests[s.Target.Namespace+"/"+s.Target.Name] {
				named(obj, "get", "delete")
			}
		}
	}
	out := make([]Permission, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

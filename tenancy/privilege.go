package tenancy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// ErrPrivileged: the file would grant more than tenancy (cluster-wide or
// Kubernetes' own privilege), and the import was not told to allow it.
var ErrPrivileged = errors.New("the tenancy file grants more than tenancy")

// What a tenancy file may carry without --allow-privileged.
//
// A tenancy export is KubeSphere's users, workspaces and the roles scoped to
// them. A file is edited between export and import, so the import judges
// what it would create, not what the file says it is. Privilege is:
//
//   - a binding of any kind whose roleRef is one of Kubernetes' built-in
//     ClusterRoles (cluster-admin, admin, edit, view), any `system:` role,
//     or KubeSphere's platform-admin GlobalRole;
//   - a cluster-wide binding (GlobalRoleBinding, ClusterRoleBinding) to a
//     role whose rules are privileged (below), as the file or the cluster
//     has that role;
//   - a binding whose subject is a ServiceAccount or a `system:` user or
//     group (Kubernetes' principals, not KubeSphere's users), or a
//     GroupBinding into a `system:` group;
//   - a cluster-wide role (GlobalRole, iam ClusterRole) whose rules reach
//     every resource (`*`), Secrets, role or binding writes (a way to grant
//     oneself anything), escalate/bind/impersonate, or every non-resource
//     URL; or that aggregates role templates (KubeSphere's controllers fill
//     its rules from them, so the file's rules do not say what it grants).
//     Namespace Roles and WorkspaceRoles with `*` are normal tenancy (a
//     namespace's or workspace's admin): they reach only their scope;
//   - any object in Kubernetes' own namespaces (default, kube-system,
//     kube-public, kube-node-lease) or KubeSphere's system namespaces;
//   - a namespace-map entry for one of Kubernetes' own namespaces: on 3.x
//     KubeSphere then gives it an ownerReference to the Workspace, the
//     hazard of the incident. (Export leaves them out: the installer puts
//     them in system-workspace itself.)
//
// An object that is already in the cluster is not refused: import never
// changes what exists (it is present or a conflict), so it grants nothing.
// Such an object is only compared, never created, should it go away between
// the check and the import. Map entries are refused whatever the cluster
// holds.

// builtinClusterRoles are Kubernetes' user-facing ClusterRoles; the
// `system:` ones are matched by prefix.
var builtinClusterRoles = map[string]bool{"cluster-admin": true, "admin": true, "edit": true, "view": true}

// platformAdmin is KubeSphere's GlobalRole for everything.
const platformAdmin = "platform-admin"

// annotationUnread marks, in memory only, a role the cluster did not let
// the check read.
const annotationUnread = "ks-clean.io/unread"

// privilegedRef says why a roleRef is privilege by name alone, or "".
func privilegedRef(kind, name string) string {
	switch {
	case strings.HasPrefix(name, "system:"):
		return fmt.Sprintf("binds %s %s, one of Kubernetes' system: roles", kind, name)
	case kind == "ClusterRole" && builtinClusterRoles[name]:
		return fmt.Sprintf("binds %s %s, one of Kubernetes' built-in roles", kind, name)
	case kind == "GlobalRole" && name == platformAdmin:
		return "binds GlobalRole " + platformAdmin + ", KubeSphere's role for the whole platform"
	}
	return ""
}

// clusterWideRole: a role kind whose rules apply to the whole cluster
// (WorkspaceRoles are scoped to their workspace, Roles to their namespace).
func clusterWideRole(o *unstructured.Unstructured) bool {
	return o.GetNamespace() == "" && (o.GetKind() == "GlobalRole" || o.GetKind() == "ClusterRole")
}

// privilegedRules says why a cluster-wide role's rules are privilege, or "".
func privilegedRules(o *unstructured.Unstructured) string {
	if err, ok := o.GetAnnotations()[annotationUnread]; ok {
		return "could not be read (" + err + ")"
	}
	if _, ok := o.GetAnnotations()[footprint.AnnotationAggregate]; ok {
		return "aggregates role templates (" + footprint.AnnotationAggregate + "), so its rules are whatever they grant"
	}
	if _, ok, _ := unstructured.NestedFieldNoCopy(o.Object, "aggregationRoleTemplates"); ok {
		return "aggregates role templates (aggregationRoleTemplates), so its rules are whatever they grant"
	}
	rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		groups, _, _ := unstructured.NestedStringSlice(rule, "apiGroups")
		resources, _, _ := unstructured.NestedStringSlice(rule, "resources")
		verbs, _, _ := unstructured.NestedStringSlice(rule, "verbs")
		urls, _, _ := unstructured.NestedStringSlice(rule, "nonResourceURLs")
		core := slices.Contains(groups, "") || slices.Contains(groups, "*")
		writes := slices.ContainsFunc(verbs, func(v string) bool {
			return v == "*" || v == "create" || v == "update" || v == "patch" || v == "delete" || v == "deletecollection"
		})
		switch {
		case slices.Contains(resources, "*"):
			return "grants every resource (*) cluster-wide"
		case core && slices.ContainsFunc(resources, func(r string) bool { return r == "secrets" || strings.HasPrefix(r, "secrets/") }):
			return "grants access to Secrets cluster-wide"
		case slices.ContainsFunc(verbs, func(v string) bool { return v == "escalate" || v == "bind" || v == "impersonate" }):
			return "grants escalate, bind or impersonate"
		case writes && slices.ContainsFunc(resources, isRBACResource):
			return "may write roles or role bindings cluster-wide (and so grant itself anything)"
		case slices.Contains(urls, "*"):
			return "grants every non-resource URL (*)"
		}
	}
	return ""
}

func isRBACResource(r string) bool {
	for _, s := range []string{"roles", "rolebindings", "clusterroles", "clusterrolebindings", "globalroles", "globalrolebindings", "workspaceroles", "workspacerolebindings", "roletemplates", "groupbindings"} {
		if r == s {
			return true
		}
	}
	return false
}

// privileged says why o would be privilege if created, or "". role finds a
// cluster-wide role by kind and name (the file's, else the cluster's).
func privileged(ctx context.Context, o *unstructured.Unstructured, role func(ctx context.Context, group, kind, name string) *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); api.KubernetesNamespaces[ns] {
		return "is in " + ns + ", one of Kubernetes' own namespaces"
	} else if footprint.IsSystemNamespaceName(ns) {
		return "is in " + ns + ", one of KubeSphere's system namespaces"
	}
	if clusterWideRole(o) {
		if why := privilegedRules(o); why != "" {
			return "is a cluster-wide role that " + why
		}
	}
	if o.GetKind() == "GroupBinding" {
		if g, _, _ := unstructured.NestedString(o.Object, "groupRef", "name"); strings.HasPrefix(g, "system:") {
			return "puts users in group " + g + ", one of Kubernetes' system: groups"
		}
	}
	ref, ok, _ := unstructured.NestedStringMap(o.Object, "roleRef")
	if !ok {
		return ""
	}
	subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
	for _, s := range subjects {
		sub, _ := s.(map[string]any)
		kind, _ := sub["kind"].(string)
		name, _ := sub["name"].(string)
		if kind == "ServiceAccount" {
			return "binds ServiceAccount " + name + ": a Kubernetes workload, not a KubeSphere user"
		}
		if strings.HasPrefix(name, "system:") {
			return fmt.Sprintf("binds %s %s, one of Kubernetes' system: principals", kind, name)
		}
	}
	if why := privilegedRef(ref["kind"], ref["name"]); why != "" {
		return why
	}
	if o.GetNamespace() == "" && (o.GetKind() == "GlobalRoleBinding" || o.GetKind() == "ClusterRoleBinding") {
		if r := role(ctx, ref["apiGroup"], ref["kind"], ref["name"]); r != nil && clusterWideRole(r) {
			if why := privilegedRules(r); why != "" {
				return fmt.Sprintf("binds %s %s cluster-wide, which %s", ref["kind"], ref["name"], why)
			}
		}
	}
	return ""
}

// checkPrivilege refuses, before any write, what in the file would grant
// more than tenancy (see above), unless allowed. It returns the privileged
// objects already in the cluster: the import only compares those.
func (im *Import) checkPrivilege(ctx context.Context, r *kube.Resolver) (map[*unstructured.Unstructured]string, error) {
	t := im.Tenancy
	var problems []string
	for _, ns := range slices.Sorted(maps.Keys(t.Namespaces)) {
		if api.KubernetesNamespaces[ns] && !im.Options.AllowPrivileged {
			problems = append(problems, fmt.Sprintf("namespaces: %s → workspace %s: %s is one of Kubernetes' own namespaces; on KubeSphere 3.x a workspace would own it", ns, t.Namespaces[ns], ns))
		}
	}
	inFile := map[string]*unstructured.Unstructured{}
	for _, o := range t.Objects {
		if clusterWideRole(o) {
			inFile[o.GroupVersionKind().Group+"/"+o.GetKind()+"/"+o.GetName()] = o
		}
	}
	role := func(ctx context.Context, group, kind, name string) *unstructured.Unstructured {
		if o := inFile[group+"/"+kind+"/"+name]; o != nil {
			return o
		}
		// The cluster's role, in the version it serves.
		rm, err := r.Mapper().RESTMapping(schema.GroupKind{Group: group, Kind: kind})
		if err != nil {
			return nil
		}
		ri, err := r.Client(rm.GroupVersionKind.GroupVersion().String(), kind, "")
		if err != nil {
			return nil
		}
		var cur *unstructured.Unstructured
		err = kube.Retry(ctx, func() (err error) { cur, err = ri.Get(ctx, name, metav1.GetOptions{}); return err })
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			// Unread is not harmless: judged as a role that grants all.
			u := &unstructured.Unstructured{}
			u.SetKind(kind)
			u.SetName(name)
			u.SetAnnotations(map[string]string{annotationUnread: err.Error()})
			return u
		}
		return cur
	}
	present := map[*unstructured.Unstructured]string{}
	for _, o := range t.Objects {
		why := privileged(ctx, o, role)
		if why == "" {
			continue
		}
		ri, err := r.Client(o.GetAPIVersion(), o.GetKind(), o.GetNamespace())
		if err != nil {
			return nil, err
		}
		err = kube.Retry(ctx, func() error { _, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{}); return err })
		switch {
		case err == nil:
			present[o] = why // import never changes it: no grant
			continue
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("read %s %s before the import: %w", o.GetKind(), nsName(o.GetNamespace(), o.GetName()), err)
		}
		if !im.Options.AllowPrivileged {
			problems = append(problems, fmt.Sprintf("%s %s %s", o.GetKind(), nsName(o.GetNamespace(), o.GetName()), why))
		}
	}
	if len(problems) > 0 {
		return nil, api.Refuse(api.FixNone, "%w: %s; nothing was imported. Remove these from the file, or import them knowingly (docs/runbook-keep-tenancy.md)",
			ErrPrivileged, strings.Join(problems, "; "))
	}
	return present, nil
}

// checkClaims re-derives what the file's header claims from what it
// carries: a file that says its users have no password hashes carries none,
// and its KubeSphere major version is the one of its iam.kubesphere.io
// objects (the 3.x note and reinstall's version check rely on it).
func checkClaims(t *api.Tenancy) error {
	var problems []string
	for _, o := range t.Objects {
		gvk := o.GroupVersionKind()
		if gvk.Group == "iam.kubesphere.io" && Major(gvk.Version) != t.KubeSphere {
			problems = append(problems, fmt.Sprintf("%s %s is %s, KubeSphere %s's, but the file says kubesphere: %q", o.GetKind(), nsName(o.GetNamespace(), o.GetName()), o.GetAPIVersion(), Major(gvk.Version), t.KubeSphere))
		}
		if o.GetKind() != "User" || t.Passwords {
			continue
		}
		for _, f := range []string{"password", "encryptedPassword"} {
			if _, has, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", f); has {
				problems = append(problems, fmt.Sprintf("User %s has spec.%s, but the file says passwords: false", o.GetName(), f))
			}
		}
		if _, has := o.GetAnnotations()[AnnotationPasswordEncrypted]; has {
			problems = append(problems, fmt.Sprintf("User %s has annotation %s, but the file says passwords: false", o.GetName(), AnnotationPasswordEncrypted))
		}
	}
	if len(problems) > 0 {
		return api.Refuse(api.FixNone, "%w: %s; nothing was imported. The file was edited after the export: export again, or remove what it should not carry", api.ErrTenancyFile, strings.Join(problems, "; "))
	}
	return nil
}

package tenancy

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// What counts as privilege, object by object (pure: the cluster's roles are
// a map here; the refusals themselves are proven on a control plane in
// internal/cli/trust_tenancy_test.go).
func TestPrivileged(t *testing.T) {
	rule := func(groups, resources, verbs []any) map[string]any {
		return map[string]any{"apiGroups": groups, "resources": resources, "verbs": verbs}
	}
	role := func(kind, ns, name string, rules ...any) *unstructured.Unstructured {
		md := map[string]any{"name": name}
		if ns != "" {
			md["namespace"] = ns
		}
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "iam.kubesphere.io/v1beta1", "kind": kind, "metadata": md, "rules": rules}}
	}
	binding := func(kind, ns, refKind, refName string, subject map[string]any) *unstructured.Unstructured {
		u := role(kind, ns, "b")
		delete(u.Object, "rules")
		u.Object["roleRef"] = map[string]any{"apiGroup": "iam.kubesphere.io", "kind": refKind, "name": refName}
		u.Object["subjects"] = []any{subject}
		return u
	}
	alice := map[string]any{"kind": "User", "name": "alice"}
	all := rule([]any{"*"}, []any{"*"}, []any{"*"})
	cluster := map[string]*unstructured.Unstructured{
		"GlobalRole/everything": role("GlobalRole", "", "everything", all),
		"GlobalRole/viewer":     role("GlobalRole", "", "viewer", rule([]any{"tenant.kubesphere.io"}, []any{"workspaces"}, []any{"get", "list"})),
	}
	lookup := func(_ context.Context, _, kind, name string) *unstructured.Unstructured {
		return cluster[kind+"/"+name]
	}
	for _, c := range []struct {
		name string
		o    *unstructured.Unstructured
		want string // "" for tenancy
	}{
		{"workspace admin role", role("WorkspaceRole", "", "ws1-admin", all), ""},
		{"namespace admin role", role("Role", "prod-ws1-1", "admin", all), ""},
		{"namespace role in kube-system", role("Role", "kube-system", "admin"), "Kubernetes' own namespaces"},
		{"namespace role in kubesphere-system", role("Role", "kubesphere-system", "x"), "KubeSphere's system namespaces"},
		{"global role with *", role("GlobalRole", "", "g", all), "every resource"},
		{"global role reading secrets", role("GlobalRole", "", "g", rule([]any{""}, []any{"secrets"}, []any{"get"})), "Secrets"},
		{"global role writing bindings", role("GlobalRole", "", "g", rule([]any{"iam.kubesphere.io"}, []any{"globalrolebindings"}, []any{"create"})), "role bindings"},
		{"global role impersonating", role("GlobalRole", "", "g", rule([]any{""}, []any{"users"}, []any{"impersonate"})), "impersonate"},
		{"global role viewing workspaces", role("GlobalRole", "", "g", rule([]any{"tenant.kubesphere.io"}, []any{"workspaces"}, []any{"get"})), ""},
		{"binding to platform-admin", binding("GlobalRoleBinding", "", "GlobalRole", "platform-admin", alice), "platform-admin"},
		{"binding to a global role granting all", binding("GlobalRoleBinding", "", "GlobalRole", "everything", alice), "which grants every resource"},
		{"binding to a viewing global role", binding("GlobalRoleBinding", "", "GlobalRole", "viewer", alice), ""},
		{"binding to cluster-admin", binding("RoleBinding", "prod-ws1-1", "ClusterRole", "cluster-admin", alice), "built-in"},
		{"binding to a system: role", binding("RoleBinding", "prod-ws1-1", "ClusterRole", "system:node", alice), "system:"},
		{"namespace binding to the namespace's admin Role", binding("RoleBinding", "prod-ws1-1", "Role", "admin", alice), ""},
		{"workspace binding", binding("WorkspaceRoleBinding", "", "WorkspaceRole", "ws1-admin", alice), ""},
		{"binding of a ServiceAccount", binding("RoleBinding", "prod-ws1-1", "Role", "admin", map[string]any{"kind": "ServiceAccount", "name": "default", "namespace": "x"}), "ServiceAccount"},
		{"binding of system:authenticated", binding("RoleBinding", "prod-ws1-1", "Role", "admin", map[string]any{"kind": "Group", "name": "system:authenticated"}), "system: principals"},
	} {
		got := privileged(context.Background(), c.o, lookup)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

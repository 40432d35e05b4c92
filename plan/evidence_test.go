package plan_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

func u(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name}}}
	if ns != "" {
		o.SetNamespace(ns)
	}
	for k, v := range fields {
		o.Object[k] = v
	}
	return o
}

func saSubject(ns, name string) map[string]any {
	return map[string]any{"kind": "ServiceAccount", "namespace": ns, "name": name}
}

// Evidence, never names: on a cluster where an interrupted uninstall has
// already removed kube-federation-system, KubeFed's RBAC in kube-system is
// still known as KubeFed's (its subjects' namespace is one KubeFed creates
// for itself), while a user's ClusterRole and namespace named after
// KubeSphere are kept, and reported.
func TestPlanEvidenceNotNames(t *testing.T) {
	st := fixture.Start(t, "clean", controlplane.Options{}, false)
	ctx := context.Background()
	kfSA := saSubject("kube-federation-system", "kubefed-admission-webhook")
	leftovers := []*unstructured.Unstructured{
		u("rbac.authorization.k8s.io/v1", "RoleBinding", "kube-system", "kubefed-admission-webhook:apiextension-viewer", map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "extension-apiserver-authentication-reader"},
			"subjects": []any{kfSA},
		}),
		u("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "kubefed-admission-webhook:auth-delegator", map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
			"subjects": []any{kfSA},
		}),
	}
	users := []*unstructured.Unstructured{
		u("v1", "Namespace", "", "kubesphere-logs-archive", nil),
		u("v1", "ServiceAccount", "kubesphere-logs-archive", "ci", nil),
		u("rbac.authorization.k8s.io/v1", "ClusterRole", "", "kubesphere-ci-viewer", map[string]any{
			"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"get", "list"}}},
		}),
		u("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "kubesphere-ci-viewer", map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubesphere-ci-viewer"},
			"subjects": []any{saSubject("kubesphere-logs-archive", "ci")},
		}),
	}
	if err := st.Seeder.CreateAll(ctx, fixture.Footprint, leftovers); err != nil {
		t.Fatal(err)
	}
	if err := st.Seeder.CreateAll(ctx, fixture.Protected, users[:1]); err != nil {
		t.Fatal(err) // the namespace first
	}
	if err := st.Seeder.CreateAll(ctx, fixture.Protected, users[1:]); err != nil {
		t.Fatal(err)
	}
	st.Seeder.Seeded.Hazards = nil
	_, p := planWith(t, st.CP.Config)
	assertCoversSeeded(t, st.Seeder.Seeded, p)

	kept := map[string]string{}
	for _, f := range p.Findings {
		for _, o := range f.Objects {
			kept[o.Kind+"/"+o.Name] = f.ID
		}
	}
	for obj, id := range map[string]string{
		"Namespace/kubesphere-logs-archive":       footprint.KeptNamespace,
		"ClusterRole/kubesphere-ci-viewer":        footprint.KeptUnproven,
		"ClusterRoleBinding/kubesphere-ci-viewer": footprint.KeptUnproven,
	} {
		if kept[obj] != id {
			t.Errorf("%s: reported as %q, want %s; findings: %s", obj, kept[obj], id, ids(p.Findings))
		}
	}
	for _, s := range p.Steps {
		if s.Action == api.ActionDelete && strings.Contains(s.Target.Name, "kubesphere-") {
			t.Errorf("deletes %s (%s)", s.Target, s.Reason)
		}
	}
}

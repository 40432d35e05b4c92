package restore

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
)

func TestTierOf(t *testing.T) {
	for _, c := range []struct {
		ref  api.ObjectRef
		want api.Tier
	}{
		{api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kubesphere-system"}, api.TierNamespaces},
		{api.ObjectRef{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition", Name: "workspaces.tenant.kubesphere.io"}, api.TierCRDs},
		{api.ObjectRef{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration", Name: "users.iam.kubesphere.io"}, api.TierWebhooks},
		{api.ObjectRef{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService", Name: "v1alpha1.tenant.kubesphere.io"}, api.TierWebhooks},
		{api.ObjectRef{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Name: "ks-admin"}, api.TierCluster},
		{api.ObjectRef{APIVersion: "v1", Kind: "ConfigMap", Namespace: "kubesphere-system", Name: "kubesphere-config"}, api.TierNamespaced},
		// a kind of the same name in another group is not the core one
		{api.ObjectRef{APIVersion: "example.com/v1", Kind: "Namespace", Name: "x"}, api.TierCluster},
	} {
		if got := tierOf(c.ref); got != c.want {
			t.Errorf("tierOf(%s %s) = %s, want %s", c.ref.APIVersion, c.ref.Kind, got, c.want)
		}
	}
}

func TestEqualIgnoresWhatTheServerSets(t *testing.T) {
	backed := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name": "c", "namespace": "n", "uid": "old", "resourceVersion": "7", "creationTimestamp": "2026-01-01T00:00:00Z",
			"ownerReferences": []any{map[string]any{"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "owner-old"}},
		},
		"data": map[string]any{"k": "v"},
	}}
	again := backed.DeepCopy()
	again.SetUID("new")
	again.SetResourceVersion("99")
	unstructured.RemoveNestedField(again.Object, "metadata", "creationTimestamp")
	refs := again.GetOwnerReferences()
	refs[0].UID = "owner-new"
	again.SetOwnerReferences(refs)
	if !equal(backed, again) {
		t.Error("a restored copy (new UIDs, resourceVersion) compares unequal")
	}
	edited := again.DeepCopy()
	_ = unstructured.SetNestedField(edited.Object, "w", "data", "k")
	if equal(backed, edited) {
		t.Error("different data compares equal")
	}
	other := again.DeepCopy()
	refs[0].Name = "another"
	other.SetOwnerReferences(refs)
	if equal(backed, other) {
		t.Error("another owner compares equal")
	}
}

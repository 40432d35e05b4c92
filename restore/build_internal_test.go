package restore

import (
	"strings"
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

// A backup decoded by encoding/json has float64 numbers, the server's
// objects int64: the same Service must compare equal (issue 22, item 11).
func TestEqualComparesNumbersByValue(t *testing.T) {
	live := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "s", "namespace": "n", "uid": "new"},
		"spec":     map[string]any{"clusterIP": "10.0.0.9", "ports": []any{map[string]any{"port": int64(80), "targetPort": int64(8080)}}},
	}}
	backed := live.DeepCopy()
	backed.SetUID("old")
	_ = unstructured.SetNestedField(backed.Object, "10.0.0.7", "spec", "clusterIP")
	_ = unstructured.SetNestedSlice(backed.Object, []any{map[string]any{"port": float64(80), "targetPort": float64(8080)}}, "spec", "ports")
	if !equal(backed, live) {
		t.Error("a Service with float64 ports compares unequal to the same with int64 ports")
	}
	_ = unstructured.SetNestedSlice(backed.Object, []any{map[string]any{"port": float64(81), "targetPort": float64(8080)}}, "spec", "ports")
	if equal(backed, live) {
		t.Error("another port compares equal")
	}
}

func TestPortableJob(t *testing.T) {
	uidLabels := map[string]any{"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "job-name": "j"}
	job := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "batch/v1", "kind": "Job",
		"metadata": map[string]any{"name": "j", "namespace": "n", "uid": "u", "labels": uidLabels},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"batch.kubernetes.io/controller-uid": "u"}},
			"template": map[string]any{"metadata": map[string]any{"labels": uidLabels}},
		},
	}}
	p := portable(job)
	if _, found, _ := unstructured.NestedMap(p.Object, "spec", "selector"); found {
		t.Error("the generated selector is sent back")
	}
	for _, path := range [][]string{{"metadata", "labels"}, {"spec", "template", "metadata", "labels"}} {
		l, _, _ := unstructured.NestedStringMap(p.Object, path...)
		if l["controller-uid"] != "" || l["batch.kubernetes.io/controller-uid"] != "" || l["job-name"] != "j" {
			t.Errorf("%v: %v", path, l)
		}
	}
	_ = unstructured.SetNestedField(job.Object, true, "spec", "manualSelector")
	if _, found, _ := unstructured.NestedMap(portable(job).Object, "spec", "selector"); !found {
		t.Error("a manual selector is dropped")
	}
}

func TestPortableService(t *testing.T) {
	svc := func(ip string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "s"},
			"spec": map[string]any{"clusterIP": ip, "clusterIPs": []any{ip}, "healthCheckNodePort": int64(32000), "ports": []any{map[string]any{"port": int64(80), "nodePort": int64(30880)}}}}}
	}
	p := portable(svc("10.0.0.7"))
	if ip, found, _ := unstructured.NestedString(p.Object, "spec", "clusterIP"); found {
		t.Errorf("cluster IP %s sent back", ip)
	}
	if _, found, _ := unstructured.NestedInt64(p.Object, "spec", "healthCheckNodePort"); found {
		t.Error("health check node port sent back")
	}
	if ports, _, _ := unstructured.NestedSlice(p.Object, "spec", "ports"); ports[0].(map[string]any)["nodePort"] != int64(30880) {
		t.Error("the node port is not kept")
	}
	if ip, _, _ := unstructured.NestedString(portable(svc("None")).Object, "spec", "clusterIP"); ip != "None" {
		t.Error("a headless Service is not headless any more")
	}
}

// Stage directories are one path element of [a-z0-9.-], whatever the
// stage is called (an EKS context name, "..") (issue 22, item 10).
func TestStageDirName(t *testing.T) {
	for i, name := range []string{"unjoin", "arn:aws:eks:eu-west-1:123456789012:cluster/prod", "../../etc", "..", "", "Host_1", strings.Repeat("x", 300)} {
		d := api.StageDirName(i, name)
		if !stageDir.MatchString(d) || strings.Contains(d, "/") || strings.HasPrefix(d[3:], ".") || len(d) > 70 {
			t.Errorf("StageDirName(%d, %q) = %q", i, name, d)
		}
	}
	if got := api.StageDirName(1, "arn:aws:eks:eu-west-1:123456789012:cluster/prod"); got != "02-arn-aws-eks-eu-west-1-123456789012-cluster-prod" {
		t.Errorf("EKS context: %q", got)
	}
}

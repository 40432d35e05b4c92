package conformance

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/test/fixture"
)

// usersNames are the cluster-scoped objects a user's own
// kube-prometheus-stack release holds under the names whizard-monitoring's
// agent also renders: the user's stand in for them.
var usersNames = map[string]bool{"ClusterRole kube-state-metrics": true, "ClusterRoleBinding kube-state-metrics": true}

// loadExtensions loads a 4.1.3 cluster with the extensions (files), beside
// users who run their own kube-prometheus-stack (its ClusterRole and
// binding of the names whizard-monitoring's agent renders too, which the
// agent's release manifest still lists) and who hold instances of the
// shared CRDs the extensions ship. noHelm loads the files as they are,
// without Helm's marks and records. before runs just before the webhooks.
func loadExtensions(ctx context.Context, t *testing.T, s *fixture.Seeder, files []string, noHelm bool, before func(context.Context) error) {
	t.Helper()
	if err := usersOwnMonitoring(ctx, s); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l, err := LoadWith(ctx, s, LoadOptions{
		NoHelm:         noHelm,
		BeforeWebhooks: before,
		Replace:        func(d Doc) bool { return usersNames[d.Obj.GetKind()+" "+d.Obj.GetName()] },
	}, files...)
	if err == nil {
		err = l.Err()
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := usersOfSharedTypes(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d documents, %d Helm releases, %d label merges in %v", len(l.Docs), len(l.Releases), len(l.Merged), time.Since(start).Round(time.Millisecond))
}

// checkExtensionsGone checks a cluster loaded by loadExtensions after its
// teardown, beyond checkLeft: the shared CRDs stay while users have
// instances and the plan names them; every namespace ks-core and the
// extensions made goes; Kubernetes' own namespaces lose KubeSphere's
// finalizer with its controller.
func checkExtensionsGone(ctx context.Context, t *testing.T, s *fixture.Seeder, kept map[string]string, member bool) {
	t.Helper()
	for _, crd := range []string{"servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com", "volumesnapshots.snapshot.storage.k8s.io"} {
		if _, err := s.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd, metav1.GetOptions{}); err != nil {
			t.Errorf("%s: CRD %s, whose instances users hold: %v", s.Server, crd, err)
		}
		if kept[key("CustomResourceDefinition", "", crd)] == "" {
			t.Errorf("%s: CRD %s is kept but no kept-* finding names it", s.Server, crd)
		}
	}
	for _, ns := range []string{"kubesphere-system", "kubesphere-controls-system", "kubesphere-monitoring-system", "extension-network", "extension-storage-utils", "extension-whizard-telemetry"} {
		_, err := s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			t.Fatal(err)
		case member && ns == "extension-whizard-telemetry":
			// not on a member
		default:
			t.Errorf("%s: namespace %s is left", s.Server, ns)
		}
	}
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		n, err := s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Finalizers) > 0 {
			t.Errorf("%s: namespace %s keeps finalizers %v, whose controller is gone", s.Server, ns, n.Finalizers)
		}
	}
}

// usersOwnMonitoring seeds a user's kube-prometheus-stack release in
// namespace monitoring, which holds ClusterRole and ClusterRoleBinding
// kube-state-metrics: the names whizard-monitoring's agent renders too.
func usersOwnMonitoring(ctx context.Context, s *fixture.Seeder) error {
	helm := func(o *unstructured.Unstructured) *unstructured.Unstructured {
		o.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/instance": "kube-prometheus-stack"})
		o.SetAnnotations(map[string]string{"meta.helm.sh/release-name": "kube-prometheus-stack", "meta.helm.sh/release-namespace": "monitoring"})
		return o
	}
	objs := []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "monitoring"}}},
		helm(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ServiceAccount",
			"metadata": map[string]any{"name": "kube-state-metrics", "namespace": "monitoring"}}}),
		helm(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
			"metadata": map[string]any{"name": "kube-state-metrics"},
			"rules":    []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods", "nodes"}, "verbs": []any{"list", "watch"}}}}}),
		helm(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
			"metadata": map[string]any{"name": "kube-state-metrics"},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kube-state-metrics"},
			"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "kube-state-metrics", "namespace": "monitoring"}}}}),
	}
	return s.CreateAll(ctx, fixture.Protected, objs)
}

// usersOfSharedTypes seeds a user's namespace that holds instances of the
// CRDs the extensions ship but users also install: prometheus-operator's
// and external-snapshotter's.
func usersOfSharedTypes(ctx context.Context, s *fixture.Seeder) error {
	objs := []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop"}}},
		{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "orders", "namespace": "shop"},
			"data": map[string]any{"db": "orders"}}},
		{Object: map[string]any{"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": map[string]any{"name": "orders", "namespace": "shop"},
			"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "orders"}}, "endpoints": []any{map[string]any{"port": "web"}}}}},
		{Object: map[string]any{"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": map[string]any{"name": "orders", "namespace": "shop"},
			"spec": map[string]any{"groups": []any{map[string]any{"name": "orders", "rules": []any{map[string]any{"alert": "OrdersDown", "expr": "up == 0"}}}}}}},
		{Object: map[string]any{"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": map[string]any{"name": "orders-nightly", "namespace": "shop"},
			"spec": map[string]any{"source": map[string]any{"persistentVolumeClaimName": "orders"}}}},
	}
	return s.CreateAll(ctx, fixture.Protected, objs)
}

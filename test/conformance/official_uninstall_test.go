package conformance

import (
	"context"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// TestKS413AfterOfficialUninstall is 4.1.3 with its extensions after the
// one official way out, `helm -n kubesphere-system uninstall ks-core`,
// replayed here: Helm deletes the release's manifest, then the two
// post-delete hooks run (ks-core's scripts/post-delete.sh, and ks-crds'
// charts/ks-crds/scripts/post-delete.sh, kubesphere release-4.1). What they
// leave — wiped namespaces that would keep their content in etcd, the
// extensions, kubesphere-system with what ran there, the hooks' own
// objects — is cleaned with nothing lost and nothing left, and a namespace
// made again under a deleted name is empty.
func TestKS413AfterOfficialUninstall(t *testing.T) {
	ctx := context.Background()
	cp, s := emptyCluster(t)
	// A users' namespace of workspace demo: 4.1.1–4.1.2 label each one
	// kubesphere.io/managed, so the hook wipes it too.
	users := []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop",
			"labels": map[string]any{"kubesphere.io/workspace": "demo", "kubesphere.io/managed": "true"}}}},
		{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "orders", "namespace": "shop"},
			"data": map[string]any{"db": "orders"}}},
	}
	if err := s.CreateAll(ctx, fixture.Protected, users); err != nil {
		t.Fatal(err)
	}
	// What ran in KubeSphere's namespaces and is in no manifest.
	runtime := func(ctx context.Context) error {
		return s.CreateAll(ctx, fixture.Footprint, []*unstructured.Unstructured{
			{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "old-token", "namespace": "kubesphere-system"},
				"stringData": map[string]any{"token": "stale"}}},
			{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "kubectl-admin", "namespace": "kubesphere-controls-system"}}},
		})
	}
	if err := s.CreateAll(ctx, fixture.Footprint, []*unstructured.Unstructured{{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "kubesphere-controls-system", "labels": map[string]any{"kubesphere.io/managed": "true"}}}}}); err != nil {
		t.Fatal(err)
	}
	l, err := LoadWith(ctx, s, LoadOptions{BeforeWebhooks: runtime}, KS413HostFiles...)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	// ks-core's post-install hook labels the system namespaces managed.
	for _, ns := range []string{"kubesphere-system", "kube-system", "default", "kube-public", "kube-node-lease"} {
		if err := labelManaged(ctx, s, ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := cp.StartControllerManager(ctx); err != nil {
		t.Fatal(err)
	}
	replayOfficialUninstall(ctx, t, s)

	c, err := kube.New(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scan.Run(ctx, []scan.Target{{Clients: c}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	critical := false
	for _, f := range rep.Host().Findings {
		if f.ID == hazard.NamespaceUnfinalized && len(f.Objects) > 0 && f.Objects[0].Name == "shop" {
			critical = f.Severity == "critical"
			t.Logf("scan: %s: %s", f.Severity, f.Message)
		}
	}
	if !critical {
		t.Errorf("scan does not report the users' namespace shop, wiped by the hook, as critical %s", hazard.NamespaceUnfinalized)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	teardown(ctx, t, s, c, p)

	shop, err := s.Kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(shop.Spec.Finalizers, corev1.FinalizerKubernetes) {
		t.Errorf("the users' namespace shop did not get its %s finalizer back: %v", corev1.FinalizerKubernetes, shop.Spec.Finalizers)
	}
	// The hooks' cluster-admin grants to their ServiceAccounts, left when
	// a hook Job fails (here: never run), would hand cluster-admin to
	// whoever makes that ServiceAccount again.
	for _, crb := range []string{"ks-core-post-delete", "ks-core-post-delete-crd"} {
		if _, err := s.Kube.RbacV1().ClusterRoleBindings().Get(ctx, crb, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the post-delete hook's ClusterRoleBinding %s is left (%v)", crb, err)
		}
	}
	// Nothing of a deleted namespace waits in etcd for its name.
	for _, ns := range []string{"kubesphere-system", "kubesphere-controls-system", "kubesphere-monitoring-system", "extension-network", "extension-storage-utils", "extension-whizard-telemetry"} {
		if _, err := s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace %s is still there after apply (%v)", ns, err)
			continue
		}
		if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if left := contents(ctx, t, s, ns); len(left) > 0 {
			t.Errorf("namespace %s, made again, holds what the old one had: %v", ns, left)
		}
	}
}

func labelManaged(ctx context.Context, s *fixture.Seeder, ns string) error {
	_, err := s.Kube.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(`{"metadata":{"labels":{"kubesphere.io/managed":"true"}}}`), metav1.PatchOptions{})
	return err
}

// replayOfficialUninstall does what `helm uninstall ks-core` does with its
// hooks, in their order, as the scripts write it.
func replayOfficialUninstall(ctx context.Context, t *testing.T, s *fixture.Seeder) {
	t.Helper()
	ac, err := kube.HelmConfig(s.Config, "kubesphere-system")
	if err != nil {
		t.Fatal(err)
	}
	u := action.NewUninstall(ac)
	u.DisableHooks = true // their effects follow, replayed
	if _, err := u.Run("ks-core"); err != nil {
		t.Fatalf("helm uninstall ks-core: %v", err)
	}
	// ks-core post-delete.sh: every managed namespace loses its workspace
	// label and owners, then a PUT of a bare object to /finalize wipes its
	// labels, annotations and both finalizer lists.
	nss, err := s.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "kubesphere.io/managed=true"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Items {
		if _, err := s.Kube.CoreV1().Namespaces().Finalize(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name}}, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("finalize %s: %v", ns.Name, err)
		}
	}
	// ks-crds post-delete.sh: each instance of a *.kubesphere.io CRD loses
	// its finalizers and is deleted, then the CRD; managed RBAC and Jobs go.
	crds, err := s.APIExt.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range crds.Items {
		if !strings.HasSuffix(crd.Name, "kubesphere.io") {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if !v.Storage {
				continue
			}
			ri := s.Dyn.Resource(schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural})
			list, err := ri.List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range list.Items {
				var c = ri.Namespace(o.GetNamespace())
				if _, err := c.Patch(ctx, o.GetName(), types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
				if err := c.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
			}
		}
		if err := s.APIExt.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sel := metav1.ListOptions{LabelSelector: "kubesphere.io/managed=true"}
	bg := metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)}
	for _, del := range []func() error{
		func() error { return s.Kube.RbacV1().ClusterRoleBindings().DeleteCollection(ctx, bg, sel) },
		func() error { return s.Kube.RbacV1().ClusterRoles().DeleteCollection(ctx, bg, sel) },
		func() error { return s.Kube.RbacV1().RoleBindings("").DeleteCollection(ctx, bg, sel) },
	} {
		if err := del(); err != nil && !apierrors.IsMethodNotSupported(err) {
			t.Logf("managed RBAC: %v", err)
		}
	}
	all, err := s.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range all.Items {
		if err := s.Kube.RbacV1().Roles(ns.Name).DeleteCollection(ctx, bg, sel); err != nil {
			t.Fatal(err)
		}
		if err := s.Kube.RbacV1().RoleBindings(ns.Name).DeleteCollection(ctx, bg, sel); err != nil {
			t.Fatal(err)
		}
		if err := s.Kube.BatchV1().Jobs(ns.Name).DeleteCollection(ctx, bg, sel); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// contents lists what a namespace holds of the kinds a teardown leaves
// behind, less what Kubernetes makes in every namespace.
func contents(ctx context.Context, t *testing.T, s *fixture.Seeder, ns string) []string {
	t.Helper()
	var out []string
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "configmaps"}, {Version: "v1", Resource: "secrets"}, {Version: "v1", Resource: "serviceaccounts"},
		{Version: "v1", Resource: "services"}, {Group: "apps", Version: "v1", Resource: "deployments"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"}, {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		{Group: "batch", Version: "v1", Resource: "jobs"},
	} {
		list, err := s.Dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range list.Items {
			if (gvr.Resource == "configmaps" && o.GetName() == "kube-root-ca.crt") || (gvr.Resource == "serviceaccounts" && o.GetName() == "default") {
				continue
			}
			out = append(out, gvr.Resource+"/"+o.GetName())
		}
	}
	return out
}

package controlplane_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// TestGarbageCollectorDeletesOwnedNamespace is the negative control of the
// whole suite: on this control plane, deleting a Workspace really deletes the
// Namespace it owns and the data inside. If this ever passed on a fake, no
// safety test of ks-clean would mean anything. The Workspace is deleted
// before kube-controller-manager starts: the namespace stays until it does,
// so the cascade is the real controllers', not something the apiserver does.
func TestGarbageCollectorDeletesOwnedNamespace(t *testing.T) {
	ctx := context.Background()
	cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	s, err := fixture.NewSeeder(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ws, owned, bystander := fixture.OwnedNamespaceForControl(ctx, t, s)
	if err := s.Dyn.Resource(fixture.WorkspaceV1alpha1).Delete(ctx, ws.GetName(), metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete workspace: %v", err)
	}
	time.Sleep(2 * time.Second)
	if _, err := s.Kube.CoreV1().Namespaces().Get(ctx, owned, metav1.GetOptions{}); err != nil {
		t.Fatalf("without kube-controller-manager the owned namespace must stay: %v", err)
	}
	if err := cp.StartControllerManager(ctx); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := s.Kube.CoreV1().Namespaces().Get(ctx, owned, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("namespace %s owned by the deleted Workspace still exists: the garbage collector or namespace controller is not running", owned)
	}
	if _, err := s.Kube.CoreV1().ConfigMaps(owned).Get(ctx, "app-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("ConfigMap in the deleted namespace: err=%v, want NotFound", err)
	}
	if _, err := s.Kube.CoreV1().Namespaces().Get(ctx, bystander, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace %s (no owner) must survive: %v", bystander, err)
	}
}

func TestTwoControlPlanesAuditAndUsers(t *testing.T) {
	ctx := context.Background()
	a := controlplane.StartT(t, controlplane.Options{Audit: true, NoControllerManager: true})
	b := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	if a.Server().String() == b.Server().String() {
		t.Fatalf("two control planes share %s", a.Server())
	}

	ka := kubernetes.NewForConfigOrDie(a.Config)
	kb := kubernetes.NewForConfigOrDie(b.Config)
	uidA := kubeSystemUID(ctx, t, ka)
	uidB := kubeSystemUID(ctx, t, kb)
	if uidA == uidB {
		t.Fatalf("kube-system UID %s shared by two control planes", uidA)
	}

	mark := a.AuditMark()
	if _, err := ka.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "audited"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ka.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ka.CoreV1().ConfigMaps("default").Get(ctx, "audited", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	var writes []controlplane.AuditEvent
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		writes, err := a.PersistedWritesSince(mark, controlplane.AdminUser)
		return err == nil && len(writes) >= 1, nil
	})
	writes, rerr := a.PersistedWritesSince(mark, controlplane.AdminUser)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil || len(writes) != 1 || writes[0].ObjectRef.Name != "audited" {
		t.Fatalf("persisted writes = %+v, want exactly the one real create (the dry run must not count)", writes)
	}

	// A user with no RBAC gets a kubeconfig that authenticates but is forbidden.
	cfg, path, err := a.AddUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientcmd.LoadFromFile(path); err != nil {
		t.Fatalf("kubeconfig %s: %v", path, err)
	}
	_, err = kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("user without RBAC listing namespaces: err=%v, want Forbidden", err)
	}
}

func kubeSystemUID(ctx context.Context, t *testing.T, k kubernetes.Interface) string {
	t.Helper()
	ns, err := k.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(ns.UID)
}

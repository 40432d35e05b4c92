package uninstall

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/test/controlplane"
)

// The guard of a large cluster: 5,000 protected namespaces. The first guard
// held their UIDs in one CEL expression, which the apiserver refuses above
// 100,000 code points: apply failed at 5,000 namespaces in the benchmark.
// Matched by name, the apiserver accepts the policy and enforces it: a
// dry-run delete of a real namespace among the 5,000 is refused, one that
// is not guarded is not, and neither is a volume (no volume is guarded:
// the policy must not name all of them by leaving the names out).
func TestGuardOfFiveThousandNamespaces(t *testing.T) {
	cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	c, err := kube.New(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod-data"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := &api.Stage{}
	for i := range 4999 {
		st.Protected = append(st.Protected, api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: fmt.Sprintf("ns-%d", i), UID: string(uuid.NewUUID())})
	}
	st.Protected = append(st.Protected, api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: ns.Name, UID: string(ns.UID)})

	rules := guardRules(guarded(st))
	if len(rules) != 1 || len(rules[0].ResourceNames) != 5000 || rules[0].Resources[0] != "namespaces" {
		t.Fatalf("rules for 5,000 namespaces and no volume: %d rules", len(rules))
	}
	start := time.Now()
	g, err := installGuard(ctx, c, st, func(error) {})
	t.Logf("guard of 5,000 namespaces installed and enforced in %s", time.Since(start).Round(time.Millisecond))
	if err != nil || g.mode != GuardPolicy {
		t.Fatalf("install the guard of 5,000 namespaces: %v (mode %v)", err, g)
	}
	// installGuard waited for enforcement on prod-data; say it once more.
	err = c.Kube.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), guardMessage) {
		t.Fatalf("a dry-run delete of a guarded namespace: %v", err)
	}
	other, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "not-guarded"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kube.CoreV1().Namespaces().Delete(ctx, other.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("a namespace that is not guarded cannot be deleted: %v", err)
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-not-guarded"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/pv-not-guarded"}},
	}}
	if _, err := c.Kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Kube.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("a volume that is not guarded cannot be deleted: %v", err)
	}
	g.remove(ctx)
	if _, err := c.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, GuardName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the guard is still there after remove: %v", err)
	}
}

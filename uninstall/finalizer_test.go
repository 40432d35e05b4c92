package uninstall_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// wipe does to a namespace what KubeSphere 4.1's post-delete hook does: a
// PUT to /finalize with a bare object, which drops its labels, annotations
// and the `kubernetes` finalizer.
func wipe(t *testing.T, k kubernetes.Interface, name string) {
	t.Helper()
	if _, err := k.CoreV1().Namespaces().Finalize(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("wipe namespace %s: %v", name, err)
	}
	ns, err := k.CoreV1().Namespaces().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		t.Fatalf("namespace %s still has its finalizer after the wipe: %v", name, err)
	}
}

// A 4.1 cluster after `helm uninstall ks-core`: the hook wiped the
// finalizer of kubesphere-system and of a users' namespace. scan says so,
// the plan puts both finalizers back, and after apply a namespace made
// again as kubesphere-system is empty: nothing was left in etcd.
//
// The negative control, on the same cluster first: a wiped namespace
// deleted as it is leaves its ConfigMap in etcd, and it comes back with
// the namespace. The check after apply can fail.
func TestWipedNamespaceFinalizerPutBack(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks41")
	ctx := context.Background()
	k := e.s.Kube

	const control = "wiped-control"
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: control}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := k.CoreV1().ConfigMaps(control).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "left"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wipe(t, k, control)
	for i := 0; i < 2; i++ { // the first delete marks it Terminating, the second removes it
		if err := k.CoreV1().Namespaces().Delete(ctx, control, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete %s: %v", control, err)
		}
	}
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: control}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if back, err := k.CoreV1().ConfigMaps(control).Get(ctx, "left", metav1.GetOptions{}); err != nil || back.UID != cm.UID {
		t.Fatalf("negative control: a wiped namespace deleted as it is did not leave its ConfigMap in etcd (%v): the check below proves nothing", err)
	}
	if err := k.CoreV1().Namespaces().Delete(ctx, control, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := k.CoreV1().Namespaces().Get(ctx, control, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	}); err != nil {
		t.Fatalf("namespace %s, made again and deleted, did not go: %v", control, err)
	}

	var users string
	for _, r := range e.s.Seeded.Protected {
		if r.Kind == "Namespace" {
			users = r.Name
			break
		}
	}
	if users == "" {
		t.Fatal("ks41 seeds no users' namespace")
	}
	wipe(t, k, fixture.KubeSphereNamespace)
	wipe(t, k, users)

	e.replan(t)
	found := map[string]api.Severity{}
	for _, f := range e.plan.Single().Findings {
		if f.ID == hazard.NamespaceUnfinalized {
			found[f.Objects[0].Name] = f.Severity
		}
	}
	if found[users] != api.Critical || found[fixture.KubeSphereNamespace] != api.Warning {
		t.Fatalf("findings %s: %v, want critical for %s and a warning for %s", hazard.NamespaceUnfinalized, found, users, fixture.KubeSphereNamespace)
	}
	finalize := map[string]bool{}
	for _, s := range e.plan.Single().Steps {
		if s.Action == api.ActionFinalize {
			finalize[s.Target.Name] = true
		}
	}
	if !finalize[users] || !finalize[fixture.KubeSphereNamespace] {
		t.Fatalf("plan puts the finalizer back into %v, want %s and %s", finalize, users, fixture.KubeSphereNamespace)
	}

	res, err := e.apply(t, e.plan, uninstall.Options{})
	if err != nil || res.Verification == nil || !res.Verification.OK {
		t.Fatalf("apply: %v %+v", err, failed(res))
	}
	e.assertNothingLost(t)
	ns, err := k.CoreV1().Namespaces().Get(ctx, users, metav1.GetOptions{})
	if err != nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		t.Fatalf("namespace %s after apply: %v, finalizers %v", users, err, ns.Spec.Finalizers)
	}
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fixture.KubeSphereNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var inside []fixture.Ref
	for _, r := range e.s.Seeded.Footprint {
		if r.Namespace == fixture.KubeSphereNamespace {
			inside = append(inside, r)
		}
	}
	if len(inside) == 0 {
		t.Fatal("ks41 seeds nothing inside kubesphere-system: the check proves nothing")
	}
	back, err := e.s.Present(ctx, inside)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) > 0 {
		t.Fatalf("a namespace made again as %s holds %d objects of the old one, left in etcd: %v", fixture.KubeSphereNamespace, len(back), back)
	}
}

// A finalizer of KubeSphere's on what a deleted namespace holds (4.x puts
// finalizers.kubesphere.io/serviceaccount on its ServiceAccounts) is never
// removed once its controller is stopped: apply says so and strips it as
// soon as the namespace controller reports it, instead of waiting out the
// finalizer timeout (here longer than the phase timeout, so a wait fails).
func TestOrphanedFinalizersDoNotWait(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks41")
	ctx := context.Background()
	held, err := e.s.Kube.CoreV1().ConfigMaps(fixture.KubeSphereNamespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: "held", Finalizers: []string{"finalizers.kubesphere.io/serviceaccount"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.replan(t)
	var mu sync.Mutex
	var notes []string
	res, err := e.apply(t, e.plan, uninstall.Options{FinalizerTimeout: 10 * time.Minute, PhaseTimeout: 45 * time.Second, Progress: func(ev uninstall.Event) {
		if ev.Status == uninstall.StatusNote {
			mu.Lock()
			notes = append(notes, ev.Detail)
			mu.Unlock()
		}
	}})
	if err != nil || res.Verification == nil || !res.Verification.OK {
		t.Fatalf("apply: %v %+v", err, failed(res))
	}
	said := strings.Join(notes, "; ")
	if !strings.Contains(said, "namespace "+fixture.KubeSphereNamespace) || !strings.Contains(said, "finalizers.kubesphere.io/serviceaccount") {
		t.Errorf("apply's notes %q do not name the namespace and the finalizer it waited for", said)
	}
	if _, err := e.s.Kube.CoreV1().ConfigMaps(fixture.KubeSphereNamespace).Get(ctx, held.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap %s/%s: %v, want it gone", fixture.KubeSphereNamespace, held.Name, err)
	}
	e.assertNothingLost(t)
}

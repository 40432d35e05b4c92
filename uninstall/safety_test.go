package uninstall_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/lease"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// The Lease taken away mid-apply (another holder writes its identity, as a
// second apply would after an expiry): apply stops issuing writes as soon as
// it notices, says so, and loses nothing; once the other holder is done, the
// same apply resumes to the end.
func TestLostLeaseStopsWrites(t *testing.T) {
	e := setup(t, "incident")
	ctx := context.Background()
	leases := e.s.Kube.CoordinationV1().Leases("kube-system")
	const other = "other-host/4242"
	var once sync.Once
	var takeErr error
	mark := e.cp.AuditMark()
	res, err := e.apply(t, e.plan, uninstall.Options{LeaseCheck: 200 * time.Millisecond, Progress: func(ev uninstall.Event) {
		if ev.Phase != api.PhaseDetach || ev.Done < 3 {
			return
		}
		once.Do(func() {
			cur, err := leases.Get(ctx, "ks-clean", metav1.GetOptions{})
			if err != nil {
				takeErr = err
				return
			}
			holder, now := other, metav1.NewMicroTime(time.Now())
			cur.Spec.HolderIdentity, cur.Spec.RenewTime = &holder, &now
			_, takeErr = leases.Update(ctx, cur, metav1.UpdateOptions{})
		})
	}})
	if takeErr != nil {
		t.Fatalf("take the Lease: %v", takeErr)
	}
	for _, s := range res.AllSteps() {
		if s.Status != uninstall.StatusDone {
			t.Logf("first run: %s %s %s: %s", s.ID, s.Status, s.Target, s.Detail)
		}
	}
	var lost *lease.LostError
	if !errors.As(err, &lost) || lost.Holder != other || !errors.Is(err, api.ErrLeaseLost) {
		t.Fatalf("apply after its Lease was taken: err = %v, want a lost Lease naming %s", err, other)
	}
	events, err := e.cp.EventsSince(mark, user)
	if err != nil {
		t.Fatal(err)
	}
	writesStoppedAt(t, events, lost.At, "the loss", func(controlplane.AuditEvent) bool { return false })
	if res.Verification != nil {
		t.Fatalf("an apply that lost its Lease went on to verify")
	}
	cur, err := leases.Get(ctx, "ks-clean", metav1.GetOptions{})
	if err != nil || cur.Spec.HolderIdentity == nil || *cur.Spec.HolderIdentity != other {
		t.Fatalf("the other holder's Lease was touched: %v %+v", err, cur)
	}
	e.assertNothingLost(t)

	// The other holder is done: the same apply resumes and converges.
	if err := leases.Delete(ctx, "ks-clean", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = e.apply(t, e.plan, uninstall.Options{})
	if err != nil || res.Verification == nil || !res.Verification.OK {
		t.Fatalf("resume after the other holder released: %v %+v", err, failed(res))
	}
	e.assertNothingLost(t)
}

// A dry run's backup is not the real apply's: an object that appears after
// the dry run, inside a namespace the plan deletes, is in the real apply's
// backup.
func TestRealApplyBacksUpWhatChangedAfterDryRun(t *testing.T) {
	t.Parallel()
	e := setup(t, "incident")
	ctx := context.Background()
	if res, err := e.apply(t, e.plan, uninstall.Options{DryRun: true}); err != nil {
		t.Fatalf("dry run: %v %+v", err, failed(res))
	}
	const ns, name, value = "kubesphere-system", "added-after-dry-run", "made-between-dry-run-and-apply"
	if _, err := e.s.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": value},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := e.apply(t, e.plan, uninstall.Options{})
	if err != nil || !res.Verification.OK {
		t.Fatalf("apply: %v %+v", err, failed(res))
	}
	b, err := os.ReadFile(filepath.Join(res.BackupDir, "objects", ns, "ConfigMap", name+".json"))
	if err != nil || !strings.Contains(string(b), value) {
		t.Fatalf("the real apply's backup lacks %s/%s, made after the dry run: %v", ns, name, err)
	}
	if _, err := os.Stat(filepath.Join(res.BackupDir, "dry-run", "index.json")); err != nil {
		t.Errorf("the dry run's backup is not kept apart: %v", err)
	}
	e.assertNothingLost(t)
}

// A namespace whose deletion cannot finish (an aggregated API that appeared
// after planning has no backend, so the namespace controller cannot
// discover every group) stops apply with the cause the namespace states,
// instead of a silent wait until the phase timeout; once the cause is gone,
// the same apply resumes to the end and loses nothing.
func TestStuckNamespaceReportedWithCause(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks33-host")
	ctx := context.Background()
	apiSvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": "v1.blocker.example.com"},
		"spec": map[string]any{"group": "blocker.example.com", "version": "v1", "groupPriorityMinimum": int64(100), "versionPriority": int64(100),
			"insecureSkipTLSVerify": true, "service": map[string]any{"namespace": "default", "name": "nothing-here", "port": int64(443)}},
	}}
	apiservices := e.s.Dyn.Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	if _, err := apiservices.Create(ctx, apiSvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.apply(t, e.plan, uninstall.Options{PhaseTimeout: 3 * time.Minute})
	var stuck *uninstall.StuckError
	if !errors.As(err, &stuck) || !strings.Contains(err.Error(), "NamespaceDeletionDiscoveryFailure") || !strings.Contains(err.Error(), "blocker.example.com") {
		t.Fatalf("apply with a namespace that cannot finish: want a StuckError naming NamespaceDeletionDiscoveryFailure and the group, got %v", err)
	}
	t.Logf("apply stopped: %v", err)
	e.assertNothingLost(t)

	if err := apiservices.Delete(ctx, apiSvc.GetName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := e.apply(t, e.plan, uninstall.Options{})
	if err != nil || !res.Verification.OK {
		t.Fatalf("resumed apply: %v, %+v", err, res)
	}
	e.assertNothingLost(t)
}

// Damage already in progress: a hurried uninstall deleted Workspace ws1,
// and the garbage collector is deleting the namespaces it owned. Their
// claims survive only because a KubeFed finalizer holds them. scan says so
// (critical), the plan removes no finalizer that holds the user's data,
// apply leaves the claims with their UIDs, and its final check does not
// count a namespace being deleted as present.
func TestDamageInProgressIsNotFinished(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks33-host")
	ctx := context.Background()
	nss := []string{fixture.UserNamespace("ws1", 0), fixture.UserNamespace("ws1", 1)}
	claims := map[string]types.UID{}
	for _, ns := range nss {
		pvc, err := e.s.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pvc.Finalizers = append(pvc.Finalizers, fixture.FinalizerKubeFedSync)
		if _, err := e.s.Kube.CoreV1().PersistentVolumeClaims(ns).Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		claims[ns] = pvc.UID
	}
	workspaces := e.s.Dyn.Resource(schema.GroupVersionResource{Group: "tenant.kubesphere.io", Version: "v1alpha1", Resource: "workspaces"})
	if err := workspaces.Delete(ctx, "ws1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The garbage collector deletes the namespaces; the namespace
	// controller empties them of all but the held claims.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, ns := range nss {
			n, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil || n.DeletionTimestamp == nil {
				return false, err
			}
			if _, err := e.s.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "app-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the garbage collector did not start deleting ws1's namespaces: %v", err)
	}

	rep, err := scan.Run(ctx, []scan.Target{{Clients: e.clients}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss {
		found := false
		for _, f := range rep.Host().Findings {
			found = found || (f.ID == hazard.UserDataDeleting && f.Severity == api.Critical && strings.Contains(f.Message, ns) && strings.Contains(f.Message, "1 PVCs") && strings.Contains(f.Message, "Workspace ws1"))
		}
		if !found {
			t.Errorf("no critical %s finding for %s naming its claim and its cause; findings: %v", hazard.UserDataDeleting, ns, rep.Host().Findings)
		}
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Single().Steps {
		if s.Remove != nil && len(s.Remove.Finalizers) > 0 && (s.Target.Kind == "PersistentVolumeClaim" || s.Target.Kind == "Namespace") && (s.Target.Namespace == nss[0] || s.Target.Namespace == nss[1] || s.Target.Name == nss[0] || s.Target.Name == nss[1]) {
			t.Errorf("step %s removes finalizers %v from %s, which hold the user's data", s.ID, s.Remove.Finalizers, s.Target)
		}
	}
	res, err := e.apply(t, p, uninstall.Options{})
	if res == nil {
		t.Fatalf("apply: %v", err)
	}
	if res.Verification == nil || res.Verification.OK || !strings.Contains(strings.Join(res.Verification.Problems, "; "), "is being deleted") {
		t.Errorf("final check: %+v (err %v), want it to count the namespaces being deleted as lost", res.Verification, err)
	}
	for ns, uid := range claims {
		pvc, err := e.s.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		if err != nil || pvc.UID != uid {
			t.Errorf("claim %s/data lost: %v", ns, err)
		}
	}
}

// The deletion guard: while apply runs, an admission policy refuses any
// deletion of the protected namespaces, from anyone. A Workspace deleted
// behind apply's back while it still owns a protected namespace (before the
// detach) makes the garbage collector try to delete that namespace: the
// guard refuses it (the audit log shows the refused DELETE), the namespace
// keeps its UID, and the guard is gone afterwards. The negative control,
// without the guard, loses the namespace.
func TestDeletionGuard(t *testing.T) {
	t.Parallel()
	for _, guarded := range []bool{true, false} {
		name := "guarded"
		if !guarded {
			name = "negative control: no guard"
		}
		t.Run(name, func(t *testing.T) {
			e := setup(t, "ks33-host")
			if served, err := uninstall.PolicyServed(e.clients); err != nil || (guarded && !served) {
				// Kubernetes before 1.30: apply sets the tripwire instead,
				// which stops apply but cannot refuse the delete
				// (TestDeletionTripwire).
				t.Skipf("the server has no ValidatingAdmissionPolicy API (%v)", err)
			}
			ctx := context.Background()
			ns := fixture.UserNamespace("ws1", 0)
			nsObj, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			var sawDelete, refused bool
			hook := func(ev uninstall.Event) {
				if ev.Phase != api.PhaseQuiesce {
					return
				}
				once.Do(func() {
					mark := e.cp.AuditMark()
					if err := e.s.Dyn.Resource(fixture.WorkspaceV1alpha1).Delete(ctx, "ws1", metav1.DeleteOptions{}); err != nil {
						t.Error(err)
						return
					}
					// Give the garbage collector time to act on the orphan.
					_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
						evs, _ := e.cp.EventsSince(mark, "system:kube-controller-manager")
						for _, a := range evs {
							if a.Verb == "delete" && a.ObjectRef != nil && a.ObjectRef.Resource == "namespaces" && a.ObjectRef.Name == ns && a.ResponseStatus != nil {
								sawDelete = true
								refused = refused || a.ResponseStatus.Code >= 400
							}
						}
						return sawDelete, nil
					})
					// A scan meanwhile sees the guard (as it would one a
					// killed apply left) and names it.
					rep, err := scan.Run(ctx, []scan.Target{{Clients: e.clients}}, scan.Options{})
					if err != nil {
						t.Errorf("scan while the guard is up: %v", err)
						return
					}
					found := false
					for _, f := range rep.Host().Findings {
						found = found || f.ID == hazard.GuardLeftOver
					}
					if guarded != found {
						t.Errorf("scan while apply runs (guard %v): %s finding %v", guarded, hazard.GuardLeftOver, found)
					}
				})
			}
			tweak := []func(*uninstall.Apply){}
			if !guarded {
				tweak = append(tweak, uninstall.DisableGuard)
			}
			res, err := e.apply(t, e.plan, uninstall.Options{Progress: hook, FinalizerTimeout: 5 * time.Second, PhaseTimeout: time.Minute}, tweak...)
			if !sawDelete {
				t.Fatalf("(apply: %v) the garbage collector never tried to delete %s after its Workspace went: the test proves nothing", err, ns)
			}
			got, gerr := e.s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if !guarded {
				if refused || (gerr == nil && got.UID == nsObj.UID && got.DeletionTimestamp == nil) {
					t.Fatalf("negative control: without the guard the garbage collector's delete of %s was refused (%v) or did nothing", ns, refused)
				}
				return
			}
			if err != nil || res.Stages[0].Guard != uninstall.GuardPolicy {
				t.Fatalf("apply: %v, guard %q", err, res.Stages[0].Guard)
			}
			if !refused || gerr != nil || got.UID != nsObj.UID || got.DeletionTimestamp != nil {
				t.Fatalf("guarded: the garbage collector's delete of %s refused %v; namespace now %v (err %v)", ns, refused, got.DeletionTimestamp, gerr)
			}
			e.assertNothingLost(t)
			if _, err := e.s.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, uninstall.GuardName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("the guard is still there after apply: %v", err)
			}
		})
	}
}

// The tripwire, the guard where the server cannot refuse a delete (no
// ValidatingAdmissionPolicy API, Kubernetes before 1.30; forced here): the
// same Workspace deleted behind apply's back (during the quiesce) makes the
// garbage collector delete prod-ws1-1, which the tripwire cannot prevent;
// apply stops at once
// with an error naming the namespace, issues no write after noticing (the
// audit log), says which guard ran, and leaves no policy behind.
func TestDeletionTripwire(t *testing.T) {
	defer uninstall.UseTripwire()()
	e := setup(t, "ks33-host")
	ctx := context.Background()
	ns := fixture.UserNamespace("ws1", 0)
	var once sync.Once
	var werr error
	mark := e.cp.AuditMark()
	hook := func(ev uninstall.Event) {
		if ev.Phase != api.PhaseQuiesce || ev.Done < 1 {
			return
		}
		once.Do(func() {
			if werr = e.s.Dyn.Resource(fixture.WorkspaceV1alpha1).Delete(ctx, "ws1", metav1.DeleteOptions{}); werr != nil {
				return
			}
			// Hold apply here until the garbage collector has acted (it
			// would otherwise detach the namespace first).
			werr = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				n, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				return err != nil || n.DeletionTimestamp != nil, nil
			})
		})
	}
	res, err := e.apply(t, e.plan, uninstall.Options{Progress: hook, FinalizerTimeout: 5 * time.Second, PhaseTimeout: time.Minute})
	if werr != nil {
		t.Fatal(werr)
	}
	var tripped *uninstall.GuardTrippedError
	// ws1 owns prod-ws1-1 and prod-ws1-2: whichever the garbage collector
	// reaches first trips it.
	ws1 := map[string]bool{"Namespace/" + fixture.UserNamespace("ws1", 0): true, "Namespace/" + fixture.UserNamespace("ws1", 1): true}
	if !errors.As(err, &tripped) || !errors.Is(err, api.ErrGuardTripped) || !ws1[tripped.Object] {
		t.Fatalf("apply while the garbage collector deleted ws1's namespaces: err = %v, want the tripwire naming one", err)
	}
	if res == nil || res.Stages[0].Guard != uninstall.GuardTripwire || res.Verification != nil {
		t.Fatalf("result: guard %q, verification %v; want the tripwire named and no verification", res.Stages[0].Guard, res.Verification)
	}
	events, err := e.cp.EventsSince(mark, user)
	if err != nil {
		t.Fatal(err)
	}
	// The Lease is released as on every way out.
	writesStoppedAt(t, events, tripped.At, "the trip", func(ev controlplane.AuditEvent) bool {
		return ev.ObjectRef != nil && ev.ObjectRef.Resource == "leases"
	})
	if _, err := e.s.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, uninstall.GuardName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a tripwire apply left an admission policy: %v", err)
	}
}

// writesStoppedAt checks that no write of events (one user's) persisted after
// at, when apply noticed what, except those exempt. A request already on the
// wire then reaches the server a moment later; none may be sent after. The
// margin is far below the seconds of writes an apply that went on would
// still make. A test with no write before at proves nothing.
func writesStoppedAt(t *testing.T, events []controlplane.AuditEvent, at time.Time, what string, exempt func(controlplane.AuditEvent) bool) {
	t.Helper()
	const onTheWire = 500 * time.Millisecond
	before := 0
	for _, ev := range events {
		switch {
		case !ev.Persisted() || exempt(ev):
		case ev.RequestReceived.After(at.Add(onTheWire)):
			t.Errorf("write persisted after %s was noticed (%s): %s %s at %s", what, at.Format(time.StampMicro), ev.Verb, ev.RequestURI, ev.RequestReceived.Format(time.StampMicro))
		case ev.RequestReceived.After(at):
			t.Logf("in flight when %s was noticed: %s %s", what, ev.Verb, ev.RequestURI)
		default:
			before++
		}
	}
	if before == 0 {
		t.Fatalf("no write before %s: the test proves nothing", what)
	}
}

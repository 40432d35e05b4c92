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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ks-clean/ks-clean/api"
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
	var lost *uninstall.LeaseLostError
	if !errors.As(err, &lost) || lost.Holder != other || !errors.Is(err, api.ErrLeaseLost) {
		t.Fatalf("apply after its Lease was taken: err = %v, want a lost Lease naming %s", err, other)
	}
	events, err := e.cp.EventsSince(mark, user)
	if err != nil {
		t.Fatal(err)
	}
	// A request already on the wire when the loss is noticed reaches the
	// server a moment later; none may be sent after. The margin is far below
	// the seconds of writes an apply that went on would still make.
	const onTheWire = 500 * time.Millisecond
	before := 0
	for _, ev := range events {
		switch {
		case !ev.Persisted():
		case ev.RequestReceived.After(lost.At.Add(onTheWire)):
			t.Errorf("write persisted after the loss was noticed (%s): %s %s at %s", lost.At.Format(time.StampMicro), ev.Verb, ev.RequestURI, ev.RequestReceived.Format(time.StampMicro))
		case ev.RequestReceived.After(lost.At):
			t.Logf("in flight when the loss was noticed: %s %s", ev.Verb, ev.RequestURI)
		default:
			before++
		}
	}
	if before == 0 {
		t.Fatalf("no write before the loss: the test took the Lease too early to prove anything")
	}
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

package conformance

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// Not parallel: each test runs its own etcd + kube-apiserver, and the
// machines this runs on have two cores.

func TestKS331Footprint(t *testing.T) {
	s, _ := load(t, KS331Files)
	// KubeFed's admission webhook Deployment has no Pods here, and its
	// webhooks say failurePolicy: Fail: creating a KubeFedConfig must now be
	// refused, as on a cluster whose KubeFed pods are gone.
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedConfig",
		"metadata": map[string]any{"name": "conformance-probe", "namespace": "kube-federation-system"},
		"spec":     map[string]any{"scope": "Cluster"},
	}}
	expectWebhookRefusal(t, s, probe, "kubefedconfigs.core.kubefed.io")
}

func TestKS413Footprint(t *testing.T) {
	s, _ := load(t, KS413Files)
	// defaulter.installplan.kubesphere.io (mutating) and its validator both
	// name their webhook installplans.kubesphere.io and fail closed; the
	// objectSelector only exempts Helm-managed objects, which this is not.
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubesphere.io/v1alpha1", "kind": "InstallPlan",
		"metadata": map[string]any{"name": "conformance-probe"},
		"spec":     map[string]any{"extension": map[string]any{"name": "probe", "version": "0.0.1"}},
	}}
	expectWebhookRefusal(t, s, probe, "installplans.kubesphere.io")
}

// load starts a control plane, loads files into it and checks the load is
// the whole footprint: nothing refused, every CRD established, as many
// objects of each kind stored as the files hold, all readable back.
func load(t *testing.T, files []string) (*fixture.Seeder, *Loaded) {
	t.Helper()
	RequireDir(t)
	ctx := context.Background()
	start := time.Now()
	cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	s, err := fixture.NewSeeder(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	l, err := Load(ctx, s, files...)
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	t.Logf("control plane up in %v, %d documents loaded in %v", started.Sub(start).Round(time.Millisecond), len(l.Docs), time.Since(started).Round(time.Millisecond))
	for _, sk := range l.Skipped {
		t.Logf("skipped %s (%s): %s", describe(sk.Doc.Obj), sk.Doc.File, sk.Reason)
	}
	if len(l.Superseded) > 0 {
		t.Logf("%d documents applied again by a later file (same object, created once)", len(l.Superseded))
	}
	if len(l.Failed) > 0 {
		var b strings.Builder
		for _, e := range l.Failed {
			fmt.Fprintf(&b, "\n  %v", e)
		}
		t.Errorf("%d documents refused:%s", len(l.Failed), b.String())
	}

	for _, n := range l.CRDs {
		c, err := s.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !Established(c) {
			t.Errorf("CRD %s not established", n)
		}
	}

	want, got := CountByKind(l.Expected()), CountByKind(l.Created)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("objects per kind: files hold %v, stored %v", want, got)
	}
	t.Logf("stored per kind: %s; plus namespaces %v", formatCounts(got), l.Namespaces)

	missing, err := s.Missing(ctx, s.Seeded.Footprint)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%d recorded objects not found: %v", len(missing), missing)
	}
	// Each Helm release adds its record (a Secret).
	if n, want := len(s.Seeded.Footprint), len(l.Created)+len(l.Namespaces)+len(l.Releases); n != want {
		t.Errorf("%d footprint refs recorded, want %d", n, want)
	}

	checkFailurePolicies(t, l)
	return s, l
}

// checkFailurePolicies compares each stored webhook's failurePolicy with the
// file's, so a defaulted or dropped policy cannot turn fail-closed into
// fail-open unnoticed.
func checkFailurePolicies(t *testing.T, l *Loaded) {
	t.Helper()
	stored := map[string]*unstructured.Unstructured{}
	for _, o := range l.Created {
		stored[o.GetKind()+" "+o.GetName()] = o
	}
	for _, d := range l.Docs {
		k := d.Obj.GetKind()
		if k != "ValidatingWebhookConfiguration" && k != "MutatingWebhookConfiguration" {
			continue
		}
		o := stored[k+" "+d.Obj.GetName()]
		if o == nil {
			continue // reported as refused above
		}
		want, _, _ := unstructured.NestedSlice(d.Obj.Object, "webhooks")
		got, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		if len(want) != len(got) {
			t.Errorf("%s %s: %d webhooks stored, file has %d", k, o.GetName(), len(got), len(want))
			continue
		}
		for i := range want {
			wp, _, _ := unstructured.NestedString(want[i].(map[string]any), "failurePolicy")
			gp, _, _ := unstructured.NestedString(got[i].(map[string]any), "failurePolicy")
			if wp != "" && wp != gp {
				t.Errorf("%s %s webhook %d: failurePolicy %q stored, file says %q", k, o.GetName(), i, gp, wp)
			}
		}
	}
}

// expectWebhookRefusal checks that creating obj fails in the webhook named
// hook. The apiserver picks up new webhook configurations asynchronously, so
// it first waits with dry runs (webhooks with sideEffects: None are called
// for those too) and only then makes the real request, which must fail and
// leave nothing behind.
func expectWebhookRefusal(t *testing.T, s *fixture.Seeder, obj *unstructured.Unstructured, hook string) {
	t.Helper()
	ctx := context.Background()
	gvr, namespaced, err := s.GVR(obj)
	if err != nil {
		t.Fatal(err)
	}
	ri := s.Dyn.Resource(gvr)
	create := func(opts metav1.CreateOptions) error {
		var err error
		if namespaced {
			_, err = ri.Namespace(obj.GetNamespace()).Create(ctx, obj.DeepCopy(), opts)
		} else {
			_, err = ri.Create(ctx, obj.DeepCopy(), opts)
		}
		return err
	}
	refused := func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "failed calling webhook") && strings.Contains(err.Error(), hook)
	}
	start := time.Now()
	for deadline := start.Add(30 * time.Second); ; {
		err := create(metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if refused(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dry-run create of %s never refused by webhook %s; last error: %v", describe(obj), hook, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t0 := time.Now()
	err = create(metav1.CreateOptions{})
	if !refused(err) {
		t.Fatalf("create %s: want refusal by webhook %s (failed calling webhook), got %v", describe(obj), hook, err)
	}
	t.Logf("create %s refused after %v (webhook active after %v): %v", describe(obj), time.Since(t0).Round(time.Millisecond), t0.Sub(start).Round(time.Millisecond), err)
	var getErr error
	if namespaced {
		_, getErr = ri.Namespace(obj.GetNamespace()).Get(ctx, obj.GetName(), metav1.GetOptions{})
	} else {
		_, getErr = ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	}
	if getErr == nil {
		t.Errorf("%s exists although its create was refused", describe(obj))
	}
}

func formatCounts(n map[string]int) string {
	kinds := make([]string, 0, len(n))
	for k := range n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	total := 0
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s=%d", k, n[k])
		total += n[k]
	}
	return fmt.Sprintf("%d objects (%s)", total, strings.Join(parts, " "))
}

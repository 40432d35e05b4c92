package conformance

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// TestKS341Teardown is the full 3.4.1 install (every component on) with the
// incident's run-time state and the neighbours, torn down with the garbage
// collector and namespace controller running: scan, plan, apply. It proves
// that nothing of KubeSphere's or KubeFed's is left unaccounted for (what
// is left, the plan names as kept, with its reason), that every user object
// survives with its UID, that no webhook or APIService is left whose
// backend is gone, and that apply ends within its phase timeouts.
func TestKS341Teardown(t *testing.T) {
	ctx := context.Background()
	cp, s := emptyCluster(t)
	start := time.Now()
	l, err := LoadStaged(ctx, s, func(ctx context.Context) error { return fixture.RunTime(ctx, s, fixture.Options{}) }, KS341Files...)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Logf("loaded %d documents, %d Helm releases, %d label merges in %v", len(l.Docs), len(l.Releases), len(l.Merged), time.Since(start).Round(time.Millisecond))
	if err := cp.StartControllerManager(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := kube.New(cp.Config)
	if err != nil {
		t.Fatal(err)
	}

	// metrics-server's APIService has no backend here, and nothing shows
	// metrics-server is KubeSphere's (the installer applied it without a
	// release or a label of its own): plan must refuse up front, naming it,
	// rather than let apply hang on the namespaces.
	rep, err := scan.Run(ctx, []scan.Target{{Clients: c}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = plan.Build(rep, plan.Options{})
	if r, ok := api.AsRefusal(err); !ok || r.Fix != api.FixBlocker || !strings.Contains(err.Error(), "v1beta1.metrics.k8s.io") {
		t.Fatalf("plan with metrics-server's APIService unavailable: want a refusal naming v1beta1.metrics.k8s.io, got %v", err)
	}
	t.Logf("plan refused: %v", err)
	// The user takes the way out the refusal names.
	so := scan.Options{}
	so.Footprint.RemoveAPIServices = unavailableAPIServices(rep)
	if rep, err = scan.Run(ctx, []scan.Target{{Clients: c}}, so); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatalf("plan with --remove-apiservice %v: %v", so.Footprint.RemoveAPIServices, err)
	}
	if d := os.Getenv("KS_DUMP_PLAN"); d != "" {
		_ = api.Write(d, p)
	}
	teardown(ctx, t, s, c, p)
}

// teardown applies p to the cluster with its controllers running and checks
// what every teardown must leave: every user object with its UID; of the
// footprint, only what the plan names as kept (returned, by key) or what
// bears no trace of KubeSphere at all; no webhook or APIService without its
// backend.
func teardown(ctx context.Context, t *testing.T, s *fixture.Seeder, c *kube.Clients, p *api.Plan) map[string]string {
	t.Helper()
	st := p.Single()
	kept := keptBy(st)
	t.Logf("plan: %d steps, %d protected, %d kept on purpose", len(st.Steps), len(st.Protected), len(kept))

	applyStart := time.Now()
	o := uninstall.DefaultOptions()
	o.PhaseTimeout, o.FinalizerTimeout = 2*time.Minute, 20*time.Second
	a := &uninstall.Apply{Plan: p, Clients: map[string]*kube.Clients{st.Cluster.Context: c}, PlanPath: filepath.Join(t.TempDir(), "plan.json"), Options: o}
	res, err := a.Run(ctx)
	if err != nil {
		for _, s := range res.AllSteps() {
			if s.Status == uninstall.StatusFailed {
				t.Logf("failed: %+v", s)
			}
		}
		t.Fatalf("apply after %v: %v", time.Since(applyStart).Round(time.Millisecond), err)
	}
	t.Logf("apply: %d steps done in %v; verification %+v", res.Done, time.Since(applyStart).Round(time.Millisecond), res.Verification)
	if !res.Verification.OK {
		t.Errorf("apply's final check failed: %v", res.Verification.Problems)
	}
	checkLeft(ctx, t, s, kept)
	return kept
}

// keptBy maps what a stage's kept-* findings name ("Kind ns/name") to the
// finding.
func keptBy(st *api.Stage) map[string]string {
	kept := map[string]string{}
	for _, f := range st.Findings {
		if strings.HasPrefix(f.ID, "kept-") {
			for _, o := range f.Objects {
				kept[key(o.Kind, o.Namespace, o.Name)] = f.ID
			}
		}
	}
	return kept
}

// checkLeft checks a cluster after its teardown: every user object with its
// UID; of the footprint, only what the plan names as kept or what bears no
// trace of KubeSphere (nothing in the cluster could tell it apart from
// anyone else's); no webhook or APIService without its backend.
func checkLeft(ctx context.Context, t *testing.T, s *fixture.Seeder, kept map[string]string) {
	t.Helper()
	missing, err := s.Missing(ctx, s.Seeded.Protected)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%s: %d user objects lost or replaced (UID changed): %v", s.Server, len(missing), missing)
	}
	t.Logf("%d user objects present with their UIDs", len(s.Seeded.Protected)-len(missing))
	present, err := s.Present(ctx, s.Seeded.Footprint)
	if err != nil {
		t.Fatal(err)
	}
	left, untraced := map[string][]string{}, map[string][]string{}
	for _, r := range present {
		name := strings.TrimPrefix(r.Namespace+"/"+r.Name, "/")
		if kept[key(r.Kind, r.Namespace, r.Name)] != "" {
			left[r.Kind] = append(left[r.Kind], name)
			continue
		}
		o, err := s.Get(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if trace := traceOf(o); trace != "" {
			t.Errorf("%s: %s is left, its %s mentions KubeSphere/KubeFed, and the plan does not list it as kept", s.Server, r, trace)
		}
		untraced[r.Kind] = append(untraced[r.Kind], name)
	}
	for _, m := range []struct {
		what   string
		byKind map[string][]string
	}{{"kept, as the plan says", left}, {"kept, no trace of KubeSphere on them", untraced}} {
		kinds := make([]string, 0, len(m.byKind))
		for k := range m.byKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			t.Logf("%s: %s (%d): %s", m.what, k, len(m.byKind[k]), strings.Join(m.byKind[k], ", "))
		}
	}
	checkBackends(ctx, t, s)
}

// unavailableAPIServices names the APIServices a scan found unavailable:
// the test passes them on as the user would after reading plan's refusal.
func unavailableAPIServices(rep *scan.Report) []string {
	var out []string
	for _, f := range rep.Host().Findings {
		if f.ID == "apiservice-unavailable" {
			for _, o := range f.Objects {
				out = append(out, o.Name)
			}
		}
	}
	return out
}

// emptyCluster starts a control plane for a footprint (its controller
// manager later: the load must not race the garbage collector) and a
// seeder on it; it skips without the footprints folder.
func emptyCluster(t *testing.T) (*controlplane.ControlPlane, *fixture.Seeder) {
	t.Helper()
	RequireDir(t)
	cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	s, err := fixture.NewSeeder(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cp, s
}

func key(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// traceOf says what of an object mentions KubeSphere or KubeFed.
func traceOf(o *unstructured.Unstructured) string {
	mentions := func(s string) bool {
		s = strings.ToLower(s)
		return strings.Contains(s, "kubesphere") || strings.Contains(s, "kubefed")
	}
	if mentions(o.GetName()) {
		return "name"
	}
	for k, v := range o.GetLabels() {
		if mentions(k) || mentions(v) {
			return "label " + k
		}
	}
	for k := range o.GetAnnotations() {
		if mentions(k) {
			return "annotation " + k
		}
	}
	return ""
}

// checkBackends fails for every webhook configuration or APIService whose
// backend Service does not exist.
func checkBackends(ctx context.Context, t *testing.T, s *fixture.Seeder) {
	t.Helper()
	svcExists := func(ns, name string) bool {
		_, err := s.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	for _, res := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"} {
		list, err := s.Dyn.Resource(schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: res}).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, wc := range list.Items {
			hooks, _, _ := unstructured.NestedSlice(wc.Object, "webhooks")
			for _, h := range hooks {
				ns, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "service", "namespace")
				name, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "service", "name")
				if name != "" && !svcExists(ns, name) {
					t.Errorf("%s %s is left with its backend Service %s/%s gone", res, wc.GetName(), ns, name)
				}
			}
		}
	}
	list, err := s.Dyn.Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list.Items {
		ns, _, _ := unstructured.NestedString(a.Object, "spec", "service", "namespace")
		name, _, _ := unstructured.NestedString(a.Object, "spec", "service", "name")
		if name != "" && !svcExists(ns, name) {
			t.Errorf("APIService %s is left with its backend Service %s/%s gone", a.GetName(), ns, name)
		}
	}
}

package uninstall_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

const user = "ks-clean-operator"

type env struct {
	cp      *controlplane.ControlPlane
	s       *fixture.Seeder
	cfg     *rest.Config
	clients *kube.Clients
	plan    *api.Plan
	dir     string
}

// setup seeds a scenario, starts the garbage collector and namespace
// controller (after seeding, as in a cluster where KubeSphere has been
// installed for long), and plans as a separate user.
func setup(t *testing.T, scenario string) *env {
	t.Helper()
	st := fixture.Start(t, scenario, controlplane.Options{Audit: true}, true)
	cp, s := st.CP, st.Seeder
	cfg, _, err := cp.AddUser(user, "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{cp: cp, s: s, cfg: cfg, dir: t.TempDir()}
	e.clients = e.newClients(t)
	e.replan(t)
	return e
}

// replan scans again and plans from that scan.
func (e *env) replan(t *testing.T) {
	t.Helper()
	rep, err := scan.Run(context.Background(), []scan.Target{{Clients: e.clients}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.plan, err = plan.Build(rep, plan.Options{}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) newClients(t *testing.T) *kube.Clients {
	c, err := kube.New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) apply(t *testing.T, p *api.Plan, o uninstall.Options, tweak ...func(*uninstall.Apply)) (*uninstall.Result, error) {
	t.Helper()
	if o.FinalizerTimeout == 0 {
		o.FinalizerTimeout = 20 * time.Second
	}
	if o.PhaseTimeout == 0 {
		o.PhaseTimeout = 2 * time.Minute
	}
	a := &uninstall.Apply{Clients: clientsFor(p, e.newClients(t)), Plan: p, PlanPath: filepath.Join(e.dir, "plan.json"), Options: o}
	for _, f := range tweak {
		f(a)
	}
	return a.Run(context.Background())
}

// clientsFor connects every stage of a plan through c.
func clientsFor(p *api.Plan, c *kube.Clients) map[string]*kube.Clients {
	out := map[string]*kube.Clients{}
	for _, ctx := range p.Contexts() {
		out[ctx] = c
	}
	return out
}

// clone copies a plan deeply enough to edit its stages' steps.
func clone(p *api.Plan) *api.Plan {
	c := *p
	c.Stages = append([]api.Stage(nil), p.Stages...)
	for i := range c.Stages {
		c.Stages[i].Steps = append([]api.Step(nil), p.Stages[i].Steps...)
	}
	return &c
}

// assertNothingLost: every seeded user object is present with its UID.
func (e *env) assertNothingLost(t *testing.T) {
	t.Helper()
	missing, err := e.s.Missing(context.Background(), e.s.Seeded.Protected)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("%d user objects lost: %v", len(missing), missing)
	}
}

func TestApplyScenarios(t *testing.T) {
	t.Parallel()
	for _, sc := range fixture.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, sc.Name)
			mark := e.cp.AuditMark()
			start := time.Now()
			res, err := e.apply(t, e.plan, uninstall.Options{})
			if err != nil {
				t.Fatalf("apply: %v\n%+v", err, failed(res))
			}
			writes, err := e.cp.PersistedWritesSince(mark, user)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("apply %s: %s, %d steps done, %d skipped, %d objects backed up, %d persisted writes",
				sc.Name, time.Since(start).Round(time.Millisecond), res.Done, res.Skipped, res.BackedUp, len(writes))
			if res.Verification == nil || !res.Verification.OK {
				t.Fatalf("verification: %+v", res.Verification)
			}
			e.assertNothingLost(t)
			present, err := e.s.Present(context.Background(), e.s.Seeded.Footprint)
			if err != nil {
				t.Fatal(err)
			}
			if len(present) > 0 {
				t.Fatalf("%d footprint objects remain: %v", len(present), present)
			}
			after, err := scan.Cluster(context.Background(), scan.Target{Clients: e.newClients(t)}, scan.Options{})
			if err != nil || after.Critical() || !after.Footprint.Empty() {
				t.Fatalf("scan after apply: err %v findings %+v", err, after.Findings)
			}
		})
	}
}

// The negative control: the same plan without its detach phase is refused
// by the drift check; forced through, it loses the workspace namespaces to
// the garbage collector. It proves that the test above would catch a
// teardown that forgot to detach.
func TestApplyWithoutDetachLosesNamespaces(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks33-host")
	p := clone(e.plan)
	st := &p.Stages[0]
	st.Steps = nil
	for _, s := range e.plan.Stages[0].Steps {
		if s.Phase != api.PhaseDetach {
			st.Steps = append(st.Steps, s)
		}
	}
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	_, err := e.apply(t, p, uninstall.Options{})
	if err == nil || !strings.Contains(err.Error(), "does not detach") {
		t.Fatalf("plan without detach: err = %v, want the drift check's refusal", err)
	}
	e.assertNothingLost(t)
	// Without the guard too: it would refuse the garbage collector's
	// deletes and, finding the namespaces at risk, stay (TestModelledControllers).
	e.apply(t, p, uninstall.Options{FinalizerTimeout: 5 * time.Second, PhaseTimeout: 20 * time.Second}, uninstall.DisableDriftCheck, uninstall.DisableGuard)
	ns := fixture.UserNamespace("ws1", 0)
	err = wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := e.s.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "app-config", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("without detach, namespace %s kept its data: the apply test could not catch a missing detach", ns)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, "incident")
	mark := e.cp.AuditMark()
	res, err := e.apply(t, e.plan, uninstall.Options{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v\n%+v", err, failed(res))
	}
	e.cp.NoWritesSince(t, mark, user, "dry run")
	if res.Done == 0 {
		t.Fatalf("dry run reported no step that would succeed")
	}
	e.assertNothingLost(t)
	if present, _ := e.s.Present(context.Background(), e.s.Seeded.Footprint); len(present) != len(e.s.Seeded.Footprint) {
		t.Fatalf("dry run removed %d footprint objects", len(e.s.Seeded.Footprint)-len(present))
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	e := setup(t, "incident")
	// Another cluster's plan: the recorded clean scenario's (no second
	// control plane needed to make one).
	otherPlan, err := fixture.RecordedPlan("clean")
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, p *api.Plan, o uninstall.Options, want string) {
		t.Helper()
		mark := e.cp.AuditMark()
		_, err := e.apply(t, p, o)
		if _, refused := api.AsRefusal(err); !refused || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want a refusal containing %q", name, err, want)
		}
		e.cp.NoWritesSince(t, mark, user, name+": refused apply")
	}
	check("plan for another cluster", otherPlan, uninstall.Options{}, "was made for cluster")

	tampered := clone(e.plan)
	steps := tampered.Stages[0].Steps
	steps[len(steps)-2].Target.Name = "prod-ws1-1"
	check("tampered plan", tampered, uninstall.Options{}, "digest does not match")

	stale := clone(e.plan)
	stale.CreatedAt = time.Now().Add(-48 * time.Hour)
	stale.Seal()
	check("stale plan", stale, uninstall.Options{}, "old")

	check("unwritable backup dir", e.plan, uninstall.Options{BackupDir: "/proc/ks-clean-backup"}, "backup directory")

	// Another apply, on another machine, holds the cluster.
	holder, secs, now := "other-host/4242", int32(60), metav1.NewMicroTime(time.Now())
	if _, err := e.s.Kube.CoordinationV1().Leases("kube-system").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "ks-clean"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	check("lease held", e.plan, uninstall.Options{}, "another ks-clean run holds the cluster")
	if err := e.s.Kube.CoordinationV1().Leases("kube-system").Delete(context.Background(), "ks-clean", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// A user who may only read is refused before any write, with every
	// missing permission named at once.
	viewerCfg, _, err := e.cp.AddUser("viewer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Kube.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "viewer", APIGroup: "rbac.authorization.k8s.io"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vc, err := kube.New(viewerCfg)
	if err != nil {
		t.Fatal(err)
	}
	mark := e.cp.AuditMark()
	a := &uninstall.Apply{Clients: clientsFor(e.plan, vc), Plan: e.plan, PlanPath: filepath.Join(t.TempDir(), "plan.json")}
	_, err = a.Run(context.Background())
	if _, refused := api.AsRefusal(err); !refused || !strings.Contains(err.Error(), "delete namespaces") || !strings.Contains(err.Error(), "patch deployments.apps (ks-apiserver in kubesphere-system") {
		t.Errorf("viewer apply: err = %v, want a refusal listing the missing permissions", err)
	}
	e.cp.NoWritesSince(t, mark, "viewer", "refused viewer apply")
}

// An object deleted and re-created after planning is another object: the
// UID precondition leaves it alone.
func TestRecreatedObjectIsLeftAlone(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks33-host")
	ctx := context.Background()
	crs := e.s.Kube.RbacV1().ClusterRoles()
	old, err := crs.Get(ctx, "kubefed-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := crs.Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	old.ResourceVersion, old.UID = "", ""
	fresh, err := crs.Create(ctx, old, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.apply(t, e.plan, uninstall.Options{})
	if err == nil || !strings.Contains(err.Error(), "verification failed") {
		t.Fatalf("apply: err = %v, want a verification failure naming the re-created object", err)
	}
	got, err := crs.Get(ctx, "kubefed-admin", metav1.GetOptions{})
	if err != nil || got.UID != fresh.UID {
		t.Fatalf("re-created ClusterRole: %v (uid %v, want %v)", err, got.UID, fresh.UID)
	}
	found := false
	for _, s := range res.AllSteps() {
		found = found || (s.Target.Name == "kubefed-admin" && s.Status == uninstall.StatusSkipped && strings.Contains(s.Detail, "re-created"))
	}
	if !found {
		t.Fatalf("no skipped step reports the re-created kubefed-admin")
	}
	e.assertNothingLost(t)
}

// Stopped by a journal that cannot be written, or interrupted after k
// writes, a rerun of the same plan converges and loses nothing.
func TestResumeAfterInterruption(t *testing.T) {
	t.Parallel()
	e := setup(t, "incident")

	// A journal that cannot be written stops the apply: a step done but
	// not recorded would run again after a crash, and a resume could not
	// be trusted. No write starts after the failure (those in flight
	// finish), and the error names the cause.
	const recorded = 10
	o := uninstall.Options{Concurrency: 4}
	res, err := e.apply(t, e.plan, o, func(a *uninstall.Apply) { uninstall.FailJournal(a, recorded) })
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("apply with a journal that fails after %d records: %v", recorded, err)
	}
	done := 0
	for _, s := range res.AllSteps() {
		if s.Status == uninstall.StatusDone {
			done++
		}
	}
	t.Logf("journal failed: %v; %d steps done of %d", err, done, len(e.plan.Single().Steps))
	// The failing record itself, and at most one step in flight per
	// worker beside it.
	if done > recorded+1+o.Concurrency {
		t.Errorf("%d steps done after the journal failed at record %d: writes went on", done, recorded+1)
	}
	e.assertNothingLost(t)

	for _, k := range []int{3, 25} {
		_, err := e.apply(t, e.plan, uninstall.Options{StopAfter: k})
		if err == nil || !strings.Contains(err.Error(), "interrupted") {
			t.Fatalf("stop after %d writes: err = %v", k, err)
		}
		e.assertNothingLost(t)
	}
	res, err = e.apply(t, e.plan, uninstall.Options{})
	if err != nil {
		t.Fatalf("resume: %v\n%+v", err, failed(res))
	}
	if !res.Verification.OK {
		t.Fatalf("resume verification: %+v", res.Verification)
	}
	e.assertNothingLost(t)
}

func failed(r *uninstall.Result) []uninstall.StepResult {
	if r == nil {
		return nil
	}
	var out []uninstall.StepResult
	for _, s := range r.AllSteps() {
		if s.Status == uninstall.StatusFailed {
			out = append(out, s)
		}
	}
	return out
}

// A namespace added to a workspace after planning is owned by a Workspace
// the plan deletes but is not detached by it: apply refuses before any write.
func TestNamespaceAddedAfterPlanningRefuses(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks33-host")
	ctx := context.Background()
	ws, err := e.s.Dyn.Resource(fixture.WorkspaceV1alpha1).Get(ctx, "ws1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod-late", OwnerReferences: []metav1.OwnerReference{{
		APIVersion: "tenant.kubesphere.io/v1alpha1", Kind: "Workspace", Name: "ws1", UID: ws.GetUID(), Controller: &yes, BlockOwnerDeletion: &yes,
	}}}}
	if _, err := e.s.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mark := e.cp.AuditMark()
	_, err = e.apply(t, e.plan, uninstall.Options{})
	if _, refused := api.AsRefusal(err); !refused || !strings.Contains(err.Error(), "prod-late") {
		t.Fatalf("apply after a namespace joined a workspace: err = %v, want a refusal naming prod-late", err)
	}
	e.cp.NoWritesSince(t, mark, user, "refused apply")
	if _, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, "prod-late", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}

// The plan shows what each delete takes with it; apply works that out again
// before its first write. A KubeSphere role binding that came to depend on a
// Workspace after planning would go with it without the plan showing it:
// apply refuses, writes nothing, and names it.
func TestCascadeGrownAfterPlanningRefuses(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks33-host")
	ctx := context.Background()
	shown := 0
	for _, s := range e.plan.Single().Steps {
		if s.Cascade != nil {
			shown += s.Cascade.Objects
		}
	}
	if shown == 0 {
		t.Fatal("the plan shows no cascade at all")
	}
	ws, err := e.s.Dyn.Resource(fixture.WorkspaceV1alpha1).Get(ctx, "ws1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "late-admin", Namespace: fixture.StandaloneNamespace, Labels: map[string]string{fixture.LabelUserRef: "alice"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "tenant.kubesphere.io/v1alpha1", Kind: "Workspace", Name: "ws1", UID: ws.GetUID(), Controller: &yes}}},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice", APIGroup: "rbac.authorization.k8s.io"}},
	}
	if _, err := e.s.Kube.RbacV1().RoleBindings(fixture.StandaloneNamespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mark := e.cp.AuditMark()
	_, err = e.apply(t, e.plan, uninstall.Options{})
	if _, refused := api.AsRefusal(err); !refused || !strings.Contains(err.Error(), "late-admin") || !strings.Contains(err.Error(), "Workspace") {
		t.Fatalf("apply after a cascade grew: err = %v, want a refusal naming late-admin and its Workspace", err)
	}
	e.cp.NoWritesSince(t, mark, user, "refused apply")
}

// Quiesce waits until the scaled controllers have no pod left: a pod still
// running KubeFed's controller could undo the detach. With a pod that does
// not go away, apply stops in quiesce and detaches nothing; once it is gone,
// the rerun converges.
func TestQuiesceWaitsForPods(t *testing.T) {
	t.Parallel()
	e := setup(t, "incident")
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kubefed-controller-manager-0", Namespace: fixture.KubeFedNamespace,
			Labels: map[string]string{"app": "kubefed-controller-manager"}, Finalizers: []string{"test.ks-clean.io/hold"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "kubefed:v0.8.1"}}},
	}
	if _, err := e.s.Kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.apply(t, e.plan, uninstall.Options{PhaseTimeout: 3 * time.Second, FinalizerTimeout: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "kubefed-controller-manager") {
		t.Fatalf("apply with a controller pod left: err = %v, want a stop in quiesce naming it", err)
	}
	ns, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, fixture.UserNamespace("ws1", 0), metav1.GetOptions{})
	if err != nil || len(ns.OwnerReferences) == 0 {
		t.Fatalf("detach ran while a controller pod was alive: %v %v", err, ns.OwnerReferences)
	}
	if _, err := e.s.Kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.s.Kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	if res, err := e.apply(t, e.plan, uninstall.Options{}); err != nil {
		t.Fatalf("rerun: %v %+v", err, failed(res))
	}
	e.assertNothingLost(t)
}

// A step that fails stops the teardown at the end of its phase: here a
// fail-closed webhook added after planning refuses the finalizer patch of
// KubeSphere Users, so their CRD and the system namespaces must stay.
func TestFailedStepStopsLaterPhases(t *testing.T) {
	t.Parallel()
	e := setup(t, "ks33-host")
	ctx := context.Background()
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	path := "/validate"
	if _, err := e.s.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "late-guard.example.com"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "late-guard.example.com", FailurePolicy: &fail, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "default", Name: "absent", Path: &path}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"iam.kubesphere.io"}, APIVersions: []string{"*"}, Resources: []string{"users"}},
			}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.apply(t, e.plan, uninstall.Options{})
	if err == nil || !strings.Contains(err.Error(), "phase kubesphere") {
		t.Fatalf("apply with a refused step: err = %v, want a stop after phase kubesphere", err)
	}
	if _, err := e.s.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "users.iam.kubesphere.io", metav1.GetOptions{}); err != nil {
		t.Fatalf("the CRD of Users still holding finalizers was deleted: %v", err)
	}
	if _, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, "kubesphere-system", metav1.GetOptions{}); err != nil {
		t.Fatalf("a later phase ran: %v", err)
	}
	e.assertNothingLost(t)
}

// A detach patch starts from what the backup read. A change made to the
// object after that (here: another finalizer, added when the detach phase
// starts) fails the patch's test operations; the step is redone from a fresh
// read, removes only what the plan lists, and keeps the change.
func TestPatchRedoneAfterConcurrentChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, "ks33-host")
	ns := fixture.UserNamespace("ws1", 0)
	const theirs = "example.com/keep-me"
	changed := false
	res, err := e.apply(t, e.plan, uninstall.Options{Progress: func(ev uninstall.Event) {
		if ev.Phase != api.PhaseDetach || changed {
			return
		}
		changed = true
		cur, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		cur.Finalizers = append(cur.Finalizers, theirs)
		if _, err := e.s.Kube.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	}})
	if err != nil || !res.Verification.OK {
		t.Fatalf("apply: %v %+v", err, failed(res))
	}
	got, err := e.s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Finalizers, ",") != theirs || len(got.OwnerReferences) != 0 {
		t.Fatalf("namespace %s after apply: finalizers %v, ownerReferences %v; want only %s kept", ns, got.Finalizers, got.OwnerReferences, theirs)
	}
	e.assertNothingLost(t)
}

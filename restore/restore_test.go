package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/restore"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

const user = "ks-clean-operator"

// Fields the server sets or that follow from others, left out when
// comparing an object before apply with the object restore made.
func comparable(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	for _, f := range [][]string{
		{"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "creationTimestamp"},
		{"metadata", "generation"}, {"metadata", "managedFields"}, {"status"},
	} {
		unstructured.RemoveNestedField(c.Object, f...)
	}
	if c.GetKind() == "ServiceAccount" {
		// Its token Secrets, listed by the token controller before 1.24.
		unstructured.RemoveNestedField(c.Object, "secrets")
	}
	if ip, _, _ := unstructured.NestedString(c.Object, "spec", "clusterIP"); c.GetKind() == "Service" && ip != "None" {
		// Allocated again by restore.
		unstructured.RemoveNestedField(c.Object, "spec", "clusterIP")
		unstructured.RemoveNestedField(c.Object, "spec", "clusterIPs")
	}
	refs := c.GetOwnerReferences()
	for i := range refs {
		refs[i].UID = ""
	}
	c.SetOwnerReferences(refs)
	return c.Object
}

func plan1(t *testing.T, c *kube.Clients) *api.Plan {
	t.Helper()
	rep, err := scan.Run(context.Background(), []scan.Target{{Clients: c}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func apply(t *testing.T, c *kube.Clients, p *api.Plan, dir string) *uninstall.Result {
	t.Helper()
	o := uninstall.DefaultOptions()
	o.FinalizerTimeout, o.PhaseTimeout, o.BackupDir = 20*time.Second, 2*time.Minute, dir
	a := &uninstall.Apply{Clients: map[string]*kube.Clients{p.Single().Cluster.Context: c}, Plan: p, PlanPath: filepath.Join(dir, "..", "plan.json"), Options: o}
	res, err := a.Run(context.Background())
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return res
}

// KubeSphere's own RBAC, webhooks and APIServices come back too: the
// backup is the one this test's apply wrote.
var allowAll = restore.SensitiveKinds

func restorePlan(t *testing.T, c *kube.Clients, dir string, o restore.Options) *api.RestorePlan {
	t.Helper()
	o.AllowKinds = allowAll
	srcs, err := restore.Load(dir)
	if err != nil {
		t.Fatalf("load the backup: %v", err)
	}
	p, err := restore.Build(context.Background(), srcs, map[string]*kube.Clients{srcs[0].Stage.Cluster.Context: c}, dir, o)
	if err != nil {
		t.Fatalf("restore plan: %v", err)
	}
	return p
}

// TestApplyThenRestore: on the incident, with the garbage collector on,
// plan → apply → restore gives back every footprint object (same kind,
// namespace and name; its fields as before, but for what the server sets),
// while every user object keeps its UID throughout; a restore stopped
// half-way resumes to the end; a second plan and apply clean the cluster
// again. A backup that was edited, or that is another cluster's, is refused
// with no write at all.
func TestApplyThenRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := fixture.Start(t, "incident", controlplane.Options{Audit: true}, true)
	cfg, _, err := st.CP.AddUser(user, "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// KubeSphere's data on a volume: apply retains it and deletes the claim
	// with kubesphere-system; restore must bind the new claim to it again.
	volumeDir := fixture.StaticVolume(t, st.Seeder.Kube, fixture.KubeSphereNamespace, "data", "pv-restore")
	workloads := seedWorkloads(t, st.Seeder.Kube, fixture.KubeSphereNamespace)
	before := map[fixture.Ref]map[string]any{}
	for _, r := range st.Seeder.Seeded.Footprint {
		u, err := st.Seeder.Get(ctx, r)
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		before[r] = comparable(u)
	}
	work := t.TempDir()
	dir := filepath.Join(work, "plan.json.apply")
	p := plan1(t, c)
	res := apply(t, c, p, dir)
	if !res.Verification.OK {
		t.Fatalf("apply's final check: %v", res.Verification.Problems)
	}
	present, err := st.Seeder.Present(ctx, st.Seeder.Seeded.Footprint)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("apply: %d steps done; %d of %d footprint objects left (kept on purpose)", res.Done, len(present), len(st.Seeder.Seeded.Footprint))

	// Someone made a ClusterRole of a deleted one's name since: a
	// conflict, listed and left alone.
	x, _, err := api.ReadBackup(dir)
	if err != nil {
		t.Fatal(err)
	}
	var taken *fixture.Ref
	for _, e := range x.Objects {
		if e.Kind == "ClusterRole" {
			taken = &fixture.Ref{APIVersion: e.APIVersion, Kind: e.Kind, Name: e.Name}
			break
		}
	}
	if taken == nil {
		t.Fatal("the backup holds no ClusterRole")
	}
	theirs, err := st.Seeder.Kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: taken.Name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(before, *taken)
	for r := range before {
		if r.Kind == taken.Kind && r.Name == taken.Name {
			delete(before, r)
		}
	}

	// A dry run stores nothing, and fails no step.
	mark := st.CP.AuditMark()
	dry := restorePlan(t, c, dir, restore.Options{DryRun: true})
	do := restore.DefaultOptions()
	do.DryRun = true
	dres, err := (&restore.Restore{Plan: dry, Clients: map[string]*kube.Clients{dry.Stages[0].Cluster.Context: c}, PlanPath: "dry", Options: do}).Run(ctx)
	if err != nil || dres.Failed > 0 {
		t.Fatalf("restore dry run: %v (%d failed)", err, dres.Failed)
	}
	if w, err := st.CP.PersistedWritesSince(mark, user); err != nil || len(w) > 0 {
		t.Fatalf("restore dry run stored %d writes (%v)", len(w), err)
	}

	// A restore stopped after 40 writes resumes to the end.
	rp := restorePlan(t, c, dir, restore.Options{})
	planPath := filepath.Join(dir, restore.PlanFile)
	if err := api.WriteRestorePlan(planPath, rp); err != nil {
		t.Fatal(err)
	}
	o := restore.DefaultOptions()
	o.StopAfter = 40
	r := &restore.Restore{Plan: rp, Clients: map[string]*kube.Clients{rp.Stages[0].Cluster.Context: c}, PlanPath: planPath, Options: o}
	first, err := r.Run(ctx)
	if !errors.Is(err, api.ErrInterrupted) || first.Created < 40 {
		t.Fatalf("restore stopped after 40 writes: want ErrInterrupted after at least 40, got %v after %d", err, first.Created)
	}
	r.StopAfter = 0
	out, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("restore, resumed: %v", err)
	}
	for _, s := range out.Stages[0].Steps {
		if s.Status != restore.StatusDone {
			t.Logf("%s %s: %s %s", s.ID, s.Target, s.Status, s.Detail)
		}
	}
	t.Logf("restore: %d steps in the plan, %d created on resume (%d before the stop), %d skipped, %d conflicts, kept %d, in %.1fs",
		len(rp.Stages[0].Steps), out.Created, first.Created, out.Skipped, out.Conflicts, len(rp.Stages[0].Kept), out.DurationSeconds)
	if len(rp.Stages[0].Conflicts) != 1 || rp.Stages[0].Conflicts[0].Object.Name != taken.Name {
		t.Errorf("restore plan's conflicts: %v, want ClusterRole %s", rp.Stages[0].Conflicts, taken.Name)
	}
	if now, err := st.Seeder.Kube.RbacV1().ClusterRoles().Get(ctx, taken.Name, metav1.GetOptions{}); err != nil || now.UID != theirs.UID || len(now.Rules) != 0 {
		t.Errorf("the conflicting ClusterRole %s was not left alone: %v", taken.Name, err)
	}
	if n := first.Created + first.Skipped + out.Created + out.Skipped; n != len(rp.Stages[0].Steps) || out.Conflicts != 1 {
		t.Errorf("restore: %d+%d steps done or skipped before the stop, %d+%d after it, of %d; %d conflicts", first.Created, first.Skipped, out.Created, out.Skipped, len(rp.Stages[0].Steps), out.Conflicts)
	}

	missing, err := st.Seeder.Missing(ctx, st.Seeder.Seeded.Protected)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("%d user objects lost or replaced: %v", len(missing), missing)
	}
	// The restored claim is bound to its old volume, which keeps Retain
	// and its data.
	var claim *corev1.PersistentVolumeClaim
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		claim, err = st.Seeder.Kube.CoreV1().PersistentVolumeClaims(fixture.KubeSphereNamespace).Get(ctx, "data", metav1.GetOptions{})
		return err == nil && claim.Status.Phase == corev1.ClaimBound, nil
	})
	if err != nil {
		t.Fatalf("the restored claim data is not Bound within a minute (%v): %+v", err, claim)
	}
	pv, err := st.Seeder.Kube.CoreV1().PersistentVolumes().Get(ctx, "pv-restore", metav1.GetOptions{})
	if err != nil || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != claim.UID || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Fatalf("volume pv-restore after restore: %v %+v", err, pv)
	}
	if _, err := os.Stat(filepath.Join(volumeDir, "data")); err != nil {
		t.Fatalf("the volume's data is gone: %v", err)
	}
	checkWorkloads(t, st.Seeder.Kube, fixture.KubeSphereNamespace, workloads)
	var notBack, changed []string
	for r, want := range before {
		r.UID = ""
		u, err := st.Seeder.Get(ctx, r)
		if err != nil {
			notBack = append(notBack, r.String())
			continue
		}
		if got := comparable(u); !reflect.DeepEqual(got, want) {
			changed = append(changed, r.String())
			t.Logf("%s before: %v", r, want)
			t.Logf("%s after:  %v", r, got)
		}
	}
	if len(notBack) > 0 {
		t.Errorf("%d footprint objects not back after restore: %s", len(notBack), strings.Join(notBack, ", "))
	}
	if len(changed) > 0 {
		t.Errorf("%d footprint objects back but not as they were: %s", len(changed), strings.Join(changed, ", "))
	}

	// --reattach, on a copy of the backup (the first restore's journal
	// stays with its plan): the users' namespaces are owned by their
	// Workspaces again, as a 3.x install has them, and scan names the hazard.
	ns := fixture.UserNamespace("ws1", 0)
	if n, _ := st.Seeder.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); n == nil || len(n.OwnerReferences) > 0 {
		t.Fatalf("namespace %s after restore without --reattach: %+v, want no owner references", ns, n)
	}
	reattach := filepath.Join(work, "reattach")
	if err := os.CopyFS(reattach, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(reattach, restore.JournalFile))
	ro := restore.DefaultOptions()
	ro.Reattach = true
	rp2 := restorePlan(t, c, reattach, ro)
	// Restored objects compare equal to their backup (numbers, what the
	// server generates): no conflict but the ClusterRole taken above.
	for _, c := range rp2.Stages[0].Conflicts {
		if c.Object.Name != taken.Name {
			t.Errorf("restored %s is a conflict with its own backup: %s", c.Object, c.Reason)
		}
	}
	reattached, err := (&restore.Restore{Plan: rp2, Clients: map[string]*kube.Clients{rp2.Stages[0].Cluster.Context: c}, PlanPath: filepath.Join(reattach, restore.PlanFile), Options: ro}).Run(ctx)
	if err != nil || reattached.Created == 0 {
		t.Fatalf("restore --reattach: %v (%+v)", err, reattached)
	}
	ws1, err := st.Seeder.Dyn.Resource(fixture.WorkspaceV1alpha1).Get(ctx, "ws1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.Seeder.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil || len(n.OwnerReferences) != 1 || n.OwnerReferences[0].UID != ws1.GetUID() || n.Labels["kubesphere.io/workspace"] != "ws1" {
		t.Fatalf("namespace %s after restore --reattach: %v %+v, want owned by Workspace ws1 (%s) and labelled", ns, err, n, ws1.GetUID())
	}
	rep, err := scan.Cluster(ctx, scan.Target{Clients: c}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	named := false
	for _, f := range rep.Findings {
		named = named || f.ID == hazard.NamespaceOwned
	}
	if !named {
		t.Errorf("after restore --reattach, scan does not name %s", hazard.NamespaceOwned)
	}

	// Edited and foreign backups: refused, nothing written.
	mark = st.CP.AuditMark()
	edited := filepath.Join(work, "edited")
	if err := os.CopyFS(edited, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(edited, x.Objects[0].File)
	b, _ := os.ReadFile(f)
	if err := os.WriteFile(f, []byte(strings.Replace(string(b), "{", "{\"x\":1,", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Load(edited); !errors.Is(err, api.ErrBackupEdited) {
		t.Errorf("an edited backup: want a refusal wrapping ErrBackupEdited, got %v", err)
	}
	// An apply that wrote nothing: its journal has no finished write.
	unstarted := filepath.Join(work, "unstarted")
	if err := os.CopyFS(unstarted, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	jb, _ := os.ReadFile(filepath.Join(dir, api.JournalFile))
	line, _, _ := strings.Cut(string(jb), "\n")
	if err := os.WriteFile(filepath.Join(unstarted, api.JournalFile), []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.Load(unstarted); err == nil || !strings.Contains(err.Error(), "changed nothing") {
		t.Errorf("the backup of an apply that wrote nothing: want a refusal, got %v", err)
	}
	other := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	oc, err := kube.New(other.Config)
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := restore.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = restore.Build(ctx, srcs, map[string]*kube.Clients{srcs[0].Stage.Cluster.Context: oc}, dir, restore.Options{})
	if ref, ok := api.AsRefusal(err); !ok || ref.Fix != api.FixCluster {
		t.Errorf("another cluster's backup: want a refusal naming the cluster, got %v", err)
	}
	if w, err := st.CP.PersistedWritesSince(mark, user); err != nil || len(w) > 0 {
		t.Errorf("refused restores wrote %d times (%v)", len(w), err)
	}

	// Uninstalled again.
	res = apply(t, c, plan1(t, c), filepath.Join(work, "again.apply"))
	if !res.Verification.OK {
		t.Fatalf("second apply's final check: %v", res.Verification.Problems)
	}
	if missing, _ := st.Seeder.Missing(ctx, st.Seeder.Seeded.Protected); len(missing) > 0 {
		t.Fatalf("%d user objects lost by the second apply: %v", len(missing), missing)
	}
}

// A host and its member torn down in one plan (unjoin, member, host), then
// restored from that plan's backup, every stage in the reverse order: each
// cluster's footprint is back as it was, and the users' objects kept their
// UIDs on both clusters, with both garbage collectors on.
func TestRestoreHostAndMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, m := fixture.StartHostMember(t)
	clients := map[string]*kube.Clients{}
	var targets []scan.Target
	before := map[string]map[fixture.Ref]map[string]any{}
	for name, side := range map[string]fixture.Started{"host": h, "member1": m} {
		if err := side.CP.StartControllerManager(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := kube.New(side.CP.Config)
		if err != nil {
			t.Fatal(err)
		}
		clients[name] = c
		targets = append(targets, scan.Target{Context: name, Clients: c})
		before[name] = map[fixture.Ref]map[string]any{}
		for _, r := range side.Seeded.Footprint {
			u, err := side.Get(ctx, r)
			if err != nil {
				t.Fatalf("%s %s: %v", name, r, err)
			}
			before[name][r] = comparable(u)
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Context < targets[j].Context }) // host first
	rep, err := scan.Run(ctx, targets, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	dir := filepath.Join(work, "plan.json.apply")
	o := uninstall.DefaultOptions()
	o.FinalizerTimeout, o.PhaseTimeout, o.BackupDir = 20*time.Second, 2*time.Minute, dir
	res, err := (&uninstall.Apply{Clients: clients, Plan: p, PlanPath: filepath.Join(work, "plan.json"), Options: o}).Run(ctx)
	if err != nil || !res.Verification.OK {
		t.Fatalf("apply of %d stages: %v %+v", len(p.Stages), err, res.Verification)
	}

	srcs, err := restore.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := restore.Build(ctx, srcs, clients, dir, restore.Options{AllowKinds: allowAll})
	if err != nil {
		t.Fatal(err)
	}
	var applied, restored []string
	for i := range p.Stages {
		applied = append(applied, p.Stages[len(p.Stages)-1-i].Name)
	}
	for _, st := range rp.Stages {
		restored = append(restored, st.Name)
	}
	if len(p.Stages) < 3 || strings.Join(restored, " ") != strings.Join(applied, " ") {
		t.Fatalf("restore stages %v, want the apply's %d stages in reverse: %v", restored, len(p.Stages), applied)
	}
	out, err := (&restore.Restore{Plan: rp, Clients: clients, PlanPath: filepath.Join(dir, restore.PlanFile), Options: restore.DefaultOptions()}).Run(ctx)
	if err != nil || out.Failed > 0 {
		t.Fatalf("restore: %v (%+v)", err, out)
	}
	t.Logf("restore of %d stages: %d created, %d skipped, %d conflicts in %.1fs", len(rp.Stages), out.Created, out.Skipped, out.Conflicts, out.DurationSeconds)
	for name, side := range map[string]fixture.Started{"host": h, "member1": m} {
		if missing, _ := side.Missing(ctx, side.Seeded.Protected); len(missing) > 0 {
			t.Errorf("%s: user objects lost or replaced: %v", name, missing)
		}
		var notBack, changed []string
		for r, want := range before[name] {
			r.UID = ""
			u, err := side.Get(ctx, r)
			if err != nil {
				notBack = append(notBack, r.String())
				continue
			}
			if got := comparable(u); !reflect.DeepEqual(got, want) {
				changed = append(changed, r.String())
				t.Logf("%s %s before: %v", name, r, want)
				t.Logf("%s %s after:  %v", name, r, got)
			}
		}
		if len(notBack)+len(changed) > 0 {
			t.Errorf("%s: %d footprint objects not back (%s), %d back but changed (%s)", name, len(notBack), strings.Join(notBack, ", "), len(changed), strings.Join(changed, ", "))
		}
	}
}

// seedWorkloads makes, in KubeSphere's namespace ns, objects whose restore
// needs what the server generated taken out (issue 22, item 11): Services
// (a plain one, a load balancer with a node port and a health check port, a
// headless one), a Job (its selector and controller-uid labels are the
// server's) and a StatefulSet. They hold numbers, which a backup decoded
// as float64 would never compare equal to the server's int64.
func seedWorkloads(t *testing.T, kc kubernetes.Interface, ns string) map[string]types.UID {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "ks-test"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "c", Image: "kubesphere/ks-test:v1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
	}}
	uids := map[string]types.UID{}
	svcs := []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "ks-test"}, Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ks-test-lb"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, Selector: labels,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: 31880}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ks-test-headless"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: labels, Ports: []corev1.ServicePort{{Port: 8080}}}},
	}
	for _, s := range svcs {
		got, err := kc.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids["Service/"+s.Name] = got.UID
	}
	job, err := kc.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "ks-test-post-install"}, Spec: batchv1.JobSpec{Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Spec.Selector == nil || job.Spec.Template.Labels["batch.kubernetes.io/controller-uid"] != string(job.UID) {
		t.Fatalf("the server did not generate the Job's selector and labels: %+v", job.Spec)
	}
	uids["Job/"+job.Name] = job.UID
	sts, err := kc.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "ks-test"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To[int32](2), ServiceName: "ks-test-headless", Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: corev1.PodSpec{Containers: tmpl.Spec.Containers}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uids["StatefulSet/"+sts.Name] = sts.UID
	return uids
}

// checkWorkloads: each is back, new, as it was where it matters.
func checkWorkloads(t *testing.T, kc kubernetes.Interface, ns string, old map[string]types.UID) {
	t.Helper()
	ctx := context.Background()
	fresh := func(kind, name string, uid types.UID, err error) bool {
		if err != nil {
			t.Errorf("%s %s/%s is not back after restore: %v", kind, ns, name, err)
			return false
		}
		if uid == old[kind+"/"+name] {
			t.Errorf("%s %s/%s still has its UID from before apply", kind, ns, name)
		}
		return true
	}
	svc, err := kc.CoreV1().Services(ns).Get(ctx, "ks-test", metav1.GetOptions{})
	if fresh("Service", "ks-test", uidOf(svc), err) && (svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.IntVal != 8080) {
		t.Errorf("restored Service ks-test: %+v", svc.Spec)
	}
	lb, err := kc.CoreV1().Services(ns).Get(ctx, "ks-test-lb", metav1.GetOptions{})
	if fresh("Service", "ks-test-lb", uidOf(lb), err) && (lb.Spec.Ports[0].NodePort != 31880 || lb.Spec.HealthCheckNodePort == 0) {
		t.Errorf("restored Service ks-test-lb: node port %d (want 31880 kept), health check node port %d", lb.Spec.Ports[0].NodePort, lb.Spec.HealthCheckNodePort)
	}
	hl, err := kc.CoreV1().Services(ns).Get(ctx, "ks-test-headless", metav1.GetOptions{})
	if fresh("Service", "ks-test-headless", uidOf(hl), err) && hl.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("restored headless Service has cluster IP %q", hl.Spec.ClusterIP)
	}
	job, err := kc.BatchV1().Jobs(ns).Get(ctx, "ks-test-post-install", metav1.GetOptions{})
	if fresh("Job", "ks-test-post-install", uidOf(job), err) && (job.Spec.Selector == nil || job.Spec.Template.Labels["batch.kubernetes.io/controller-uid"] != string(job.UID)) {
		t.Errorf("restored Job: selector %v, template labels %v, want the new UID %s", job.Spec.Selector, job.Spec.Template.Labels, job.UID)
	}
	sts, err := kc.AppsV1().StatefulSets(ns).Get(ctx, "ks-test", metav1.GetOptions{})
	if fresh("StatefulSet", "ks-test", uidOf(sts), err) && (sts.Spec.Replicas == nil || *sts.Spec.Replicas != 2 || sts.Spec.ServiceName != "ks-test-headless") {
		t.Errorf("restored StatefulSet: %+v", sts.Spec)
	}
}

func uidOf(o metav1.Object) types.UID {
	if reflect.ValueOf(o).IsNil() {
		return ""
	}
	return o.GetUID()
}

package plan_test

// Variants of recorded scenarios: a recording with a few objects changed or
// added (withObjects), for cases no seeded scenario has.

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/inventory"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// withObjects adds objects (of types the recording lists) to the first
// recorded cluster.
func withObjects(t *testing.T, l *fixture.Loaded, objs ...map[string]any) {
	t.Helper()
	rec, err := inventory.Record(l.Targets[0].Inventory)
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]int{}
	for i, r := range rec.Resources {
		res[r.Group+"/"+r.Kind] = i
	}
	for _, o := range objs {
		u := unstructured.Unstructured{Object: o}
		i, ok := res[u.GroupVersionKind().Group+"/"+u.GetKind()]
		if !ok {
			t.Fatalf("the recording lists no type %s", u.GroupVersionKind())
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		rec.Objects = append(rec.Objects, inventory.RecordedObject{Resource: i, Content: b})
	}
	inv, err := inventory.Load(rec)
	if err != nil {
		t.Fatal(err)
	}
	l.Targets[0].Inventory = inv
}

// scanAndPlan scans a (changed) recording and plans from it.
func scanAndPlan(t *testing.T, l *fixture.Loaded) (*scan.Report, *api.Plan) {
	t.Helper()
	rep, err := l.Scan()
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep, p
}

// Volumes pre-bound to a claim in a namespace the teardown deletes are
// switched to Retain like bound ones: by claimRef without a UID yet (static
// provisioning), and by the claim's spec.volumeName (the binder's first
// pass). Once the binder completes the binding, the volume would go with
// the claim. A volume pre-bound to a claim elsewhere, or bound to another
// claim of that name, is not touched.
func TestPreBoundVolumesRetained(t *testing.T) {
	l := load(t, "ks41")
	var objs []map[string]any
	add := func(obj map[string]any) { objs = append(objs, obj) }
	ks := fixture.KubeSphereNamespace
	claim := func(name, uid, volume string) {
		spec := map[string]any{}
		if volume != "" {
			spec["volumeName"] = volume
		}
		add(map[string]any{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
			"metadata": map[string]any{"name": name, "namespace": ks, "uid": uid}, "spec": spec})
	}
	volume := func(name, uid string, claimRef map[string]any) {
		add(map[string]any{"apiVersion": "v1", "kind": "PersistentVolume",
			"metadata": map[string]any{"name": name, "uid": uid},
			"spec":     map[string]any{"persistentVolumeReclaimPolicy": "Delete", "claimRef": claimRef}})
	}
	claim("static", "c-static", "")
	volume("pv-static", "v-static", map[string]any{"namespace": ks, "name": "static"})
	claim("first-pass", "c-first", "pv-first")
	volume("pv-first", "v-first", nil)
	claim("taken", "c-taken", "")
	volume("pv-other-claim", "v-other", map[string]any{"namespace": ks, "name": "taken", "uid": "someone-else"})
	volume("pv-elsewhere", "v-elsewhere", map[string]any{"namespace": "prod-ws1-1", "name": "data"})
	withObjects(t, l, objs...)
	_, p := scanAndPlan(t, l)
	retained := map[string]bool{}
	for _, s := range p.Single().Steps {
		if s.Action == api.ActionRetain {
			retained[s.Target.Name] = true
		}
	}
	if !retained["pv-static"] || !retained["pv-first"] || retained["pv-other-claim"] || retained["pv-elsewhere"] || len(retained) != 2 {
		t.Fatalf("retained %v; want pv-static and pv-first only", retained)
	}
}

// KubeSphere 4.1.0–4.1.2 give a workspace's namespaces a controller
// ownerReference to their Workspace, as 3.x did: the plan detaches each
// before the Workspace goes, as on 3.x (rule detach-before-owner-delete).
func TestWorkspaceOwnedNamespacesOn41(t *testing.T) {
	l := load(t, "ks41")
	ws := map[string]any{"apiVersion": "tenant.kubesphere.io/v1beta1", "kind": "Workspace",
		"metadata": map[string]any{"name": "ws1", "uid": "ws1-uid"}}
	inv := l.Targets[0].Inventory
	var owned []string
	for _, ns := range inv.OfKind("", "Namespace") {
		if ns.GetLabels()["kubesphere.io/workspace"] == "ws1" {
			yes := true
			ns.Content.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "tenant.kubesphere.io/v1beta1", Kind: "Workspace", Name: "ws1", UID: "ws1-uid", Controller: &yes, BlockOwnerDeletion: &yes}})
			owned = append(owned, ns.GetName())
		}
	}
	if len(owned) == 0 {
		t.Fatal("the ks41 recording has no namespace of workspace ws1")
	}
	withObjects(t, l, ws)
	_, p := scanAndPlan(t, l)
	detached, wsDeleted := map[string]int{}, -1
	for i, s := range p.Single().Steps {
		switch {
		case s.Action == api.ActionPatch && s.Target.Kind == "Namespace" && s.Remove != nil && len(s.Remove.OwnerReferences) > 0:
			detached[s.Target.Name] = i
		case s.Action == api.ActionDelete && s.Target.UID == "ws1-uid":
			wsDeleted = i
		}
	}
	if wsDeleted < 0 {
		t.Fatal("the plan does not delete Workspace ws1")
	}
	for _, ns := range owned {
		if i, ok := detached[ns]; !ok || i > wsDeleted {
			t.Errorf("namespace %s: detached at step %d (ok %v), Workspace deleted at step %d", ns, i, ok, wsDeleted)
		}
	}
}

// A binding that grants a role the teardown removes only to Kubernetes'
// own identities goes with it, first (disarm), so it cannot hand the role
// to whoever makes one of that name later: KubeFed's anonymous-auth
// binding, when nothing else proves it KubeFed's. A binding of the same
// role to a person, or one that grants Kubernetes' own role to anonymous,
// is the user's and stays.
func TestGrantsOfRemovedRoles(t *testing.T) {
	base, err := fixture.RecordedPlan("incident")
	if err != nil {
		t.Fatal(err)
	}
	role := ""
	for _, s := range base.Single().Steps {
		if s.Phase == api.PhaseRBAC && s.Action == api.ActionDelete && s.Target.Kind == "ClusterRole" {
			role = s.Target.Name
			break
		}
	}
	if role == "" {
		t.Fatal("the incident's plan deletes no ClusterRole in its rbac phase")
	}
	binding := func(name, roleName string, subjects ...map[string]any) map[string]any {
		subs := make([]any, len(subjects))
		for i, s := range subjects {
			subs[i] = s
		}
		return map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
			"metadata": map[string]any{"name": name, "uid": name + "-uid"},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": roleName},
			"subjects": subs}
	}
	anonymous := map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}
	unauthenticated := map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}
	person := map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "oncall@example.com"} // no KubeSphere user
	l := load(t, "incident")
	withObjects(t, l,
		binding("anon-grant", role, anonymous, unauthenticated),
		binding("person-grant", role, person, anonymous),
		binding("anon-view", "view", anonymous))
	rep, p := scanAndPlan(t, l)
	deleted := map[string]api.Phase{}
	roleWave, grantWave := -1, -1
	for _, s := range p.Single().Steps {
		if s.Action != api.ActionDelete {
			continue
		}
		deleted[s.Target.Name] = s.Phase
		switch s.Target.Name {
		case role:
			roleWave = s.Wave
		case "anon-grant":
			grantWave = s.Wave
		}
	}
	if deleted["anon-grant"] != api.PhaseDisarm || deleted[role] != api.PhaseRBAC || grantWave < 0 || roleWave < 0 {
		t.Fatalf("anon-grant deleted in phase %q, role %s in %q; want disarm, then rbac", deleted["anon-grant"], role, deleted[role])
	}
	if _, ok := deleted["person-grant"]; ok {
		t.Errorf("a binding that grants the role to a person is deleted (role %s)", role)
	}
	if _, ok := deleted["anon-view"]; ok {
		t.Error("a binding of Kubernetes' own role view is deleted")
	}
	if _, err := plan.Rederive(rep.Host().Footprint, p.Single()); err != nil {
		t.Fatalf("fresh-scan check of the plan: %v", err)
	}
}

// A CRD of a group that is not KubeSphere's stays, but when the cluster
// shows KubeSphere used it (KubeSphere's label, as 4.x charts set it; a
// FederatedTypeConfig federating it, as the 3.x installer made), a
// kept-shared-type finding names it, with its instances and how to remove
// it. A CRD with neither is not named: nothing ties it to KubeSphere.
func TestSharedTypesNamed(t *testing.T) {
	crd := func(name string, labels map[string]any) map[string]any {
		md := map[string]any{"name": name, "uid": name + "-uid"}
		if labels != nil {
			md["labels"] = labels
		}
		return map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": md}
	}
	for _, tc := range []struct {
		recording string
		objs      []map[string]any
		named     string
	}{
		{"incident", []map[string]any{crd("applications.app.k8s.io", nil),
			{"apiVersion": "core.kubefed.io/v1beta1", "kind": "FederatedTypeConfig",
				"metadata": map[string]any{"name": "applications.app.k8s.io", "namespace": "kube-federation-system", "uid": "ftc-uid"}}},
			"applications.app.k8s.io"},
		{"ks41", []map[string]any{crd("volumesnapshots.snapshot.storage.k8s.io", map[string]any{"kubesphere.io/resource-served": "true"}),
			crd("widgets.example.com", nil)},
			"volumesnapshots.snapshot.storage.k8s.io"},
	} {
		t.Run(tc.recording, func(t *testing.T) {
			l := load(t, tc.recording)
			withObjects(t, l, tc.objs...)
			_, p := scanAndPlan(t, l)
			named := map[string]string{}
			for _, f := range p.Single().Findings {
				for _, o := range f.Objects {
					if o.Kind == "CustomResourceDefinition" {
						named[o.Name] = f.ID + ": " + f.Message
					}
				}
			}
			msg := named[tc.named]
			if !strings.HasPrefix(msg, "kept-shared-type") || !strings.Contains(msg, "kubectl delete crd "+tc.named) {
				t.Errorf("CRD %s: finding %q; want kept-shared-type with how to remove it", tc.named, msg)
			}
			if m, ok := named["widgets.example.com"]; ok {
				t.Errorf("a CRD nothing ties to KubeSphere is named: %s", m)
			}
			for _, s := range p.Single().Steps {
				if s.Target.Kind == "CustomResourceDefinition" && (s.Target.Name == tc.named || s.Target.Name == "widgets.example.com") {
					t.Errorf("the plan changes CRD %s (%s)", s.Target.Name, s.Action)
				}
			}
		})
	}
}

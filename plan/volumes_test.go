package plan_test

import (
	"encoding/json"
	"testing"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan/inventory"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// Volumes pre-bound to a claim in a namespace the teardown deletes are
// switched to Retain like bound ones: by claimRef without a UID yet (static
// provisioning), and by the claim's spec.volumeName (the binder's first
// pass). Once the binder completes the binding, the volume would go with
// the claim. A volume pre-bound to a claim elsewhere, or bound to another
// claim of that name, is not touched.
func TestPreBoundVolumesRetained(t *testing.T) {
	l := load(t, "ks41")
	rec, err := inventory.Record(l.Targets[0].Inventory)
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]int{}
	for i, r := range rec.Resources {
		res[r.Kind] = i
	}
	add := func(kind string, obj map[string]any) {
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		rec.Objects = append(rec.Objects, inventory.RecordedObject{Resource: res[kind], Content: b})
	}
	ks := fixture.KubeSphereNamespace
	claim := func(name, uid, volume string) {
		spec := map[string]any{}
		if volume != "" {
			spec["volumeName"] = volume
		}
		add("PersistentVolumeClaim", map[string]any{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
			"metadata": map[string]any{"name": name, "namespace": ks, "uid": uid}, "spec": spec})
	}
	volume := func(name, uid string, claimRef map[string]any) {
		add("PersistentVolume", map[string]any{"apiVersion": "v1", "kind": "PersistentVolume",
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
	inv, err := inventory.Load(rec)
	if err != nil {
		t.Fatal(err)
	}
	l.Targets[0].Inventory = inv
	rep, err := l.Scan()
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
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

package plan_test

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// The recorded 4.1 cluster as KubeSphere's post-delete hook leaves it:
// kubesphere-system and a users' namespace without their `kubernetes`
// finalizer, and a second users' namespace wiped and then deleted. The
// plan puts the finalizer back into the first two, never into the third
// (the namespace controller would then delete what it holds), and a plan
// edited to do so is refused by the fresh scan's check.
func TestWipedFinalizers(t *testing.T) {
	l := load(t, "ks41")
	inv := l.Targets[0].Inventory
	var users []string
	for _, ns := range inv.OfKind("", "Namespace") {
		name := ns.GetName()
		switch {
		case name == fixture.KubeSphereNamespace:
		case !strings.HasPrefix(name, "prod-") || len(users) == 2: // fixture.UserNamespace
			continue
		default:
			users = append(users, name)
		}
		unstructured.RemoveNestedField(ns.Content.Object, "spec", "finalizers")
		if len(users) == 2 && name == users[1] {
			ns.Content.SetDeletionTimestamp(&metav1.Time{Time: time.Now()})
		}
	}
	if len(users) != 2 {
		t.Fatalf("the ks41 recording has %d users' namespaces, want 2", len(users))
	}
	alive, dying := users[0], users[1]
	rep, p := scanAndPlan(t, l)
	sev := map[string]api.Severity{}
	for _, f := range rep.Host().Findings {
		if f.ID == hazard.NamespaceUnfinalized {
			sev[f.Objects[0].Name] = f.Severity
		}
	}
	if sev[alive] != api.Critical || sev[dying] != api.Critical || sev[fixture.KubeSphereNamespace] != api.Warning {
		t.Fatalf("%s findings: %v", hazard.NamespaceUnfinalized, sev)
	}
	st := p.Single()
	finalize := map[string]api.Step{}
	for _, s := range st.Steps {
		if s.Action == api.ActionFinalize {
			finalize[s.Target.Name] = s
		}
	}
	if _, ok := finalize[dying]; ok || len(finalize) != 2 || finalize[alive].Phase != api.PhaseDetach || finalize[fixture.KubeSphereNamespace].Phase != api.PhaseDetach {
		t.Fatalf("finalize steps: %v; want %s and %s in the detach phase, not %s", finalize, alive, fixture.KubeSphereNamespace, dying)
	}

	// The plan edited (and sealed again) to put the finalizer back into
	// the dying namespace: the fresh scan's check refuses it.
	fp := rep.Host().Footprint
	if _, err := plan.Rederive(fp, st); err != nil {
		t.Fatalf("the plan as made: %v", err)
	}
	edited := *st
	s := finalize[alive]
	for _, ns := range inv.OfKind("", "Namespace") {
		if ns.GetName() == dying {
			s.ID, s.Target = "9999-detach-finalize", ns.Ref()
		}
	}
	edited.Steps = append([]api.Step{s}, st.Steps...)
	if _, err := plan.Rederive(fp, &edited); err == nil || !strings.Contains(err.Error(), "Terminating") {
		t.Fatalf("a finalize step on a users' Terminating namespace: %v, want a refusal", err)
	}
}

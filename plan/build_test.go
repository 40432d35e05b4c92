package plan_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

const user = "ks-clean-planner"

// planScenario seeds a scenario on a real control plane and plans it as a
// separate user, so the audit log tells the planner's requests apart.
func planScenario(t *testing.T, name string) (*fixture.Seeder, *scan.Result, *api.Stage) {
	t.Helper()
	st := fixture.Start(t, name, controlplane.Options{Audit: true}, false)
	cp, s := st.CP, st.Seeder
	cfg, _, err := cp.AddUser(user, "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	mark := cp.AuditMark()
	res, p := planWith(t, cfg)
	assertNoWrites(t, cp, mark)
	return s, res, p
}

func planWith(t *testing.T, cfg *rest.Config) (*scan.Result, *api.Stage) {
	t.Helper()
	c, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scan.Run(context.Background(), []scan.Target{{Context: "test", Clients: c}}, scan.Options{})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	pl, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	res, p := rep.Host(), pl.Single()
	if p == nil || pl.APIVersion != api.APIVersion {
		t.Fatalf("a single cluster's plan is not one cluster stage: %+v", pl.Stages)
	}
	t.Logf("scan+plan: %s, %d steps, requests %s", res.Duration.Round(time.Millisecond), len(p.Steps), c.Requests)
	return res, p
}

func assertNoWrites(t *testing.T, cp *controlplane.ControlPlane, mark int) {
	t.Helper()
	events, err := cp.EventsSince(mark, user)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		t.Fatalf("audit log shows no requests from %s: the audit check itself is broken", user)
	}
	for _, e := range events {
		if e.IsWrite() {
			t.Errorf("scan/plan wrote to the cluster: %s %s", e.Verb, e.RequestURI)
		}
		if e.Verb == "get" && e.ObjectRef != nil && e.ObjectRef.Name != "" && e.ObjectRef.Resource != "namespaces" {
			t.Errorf("per-object GET (lists only): %s", e.RequestURI)
		}
	}
}

// assertCoversSeeded: every seeded KubeSphere/KubeFed object is a step
// target or inside a namespace the plan deletes; no protected object is a
// delete target; every protected namespace is in the plan's protected list.
func assertCoversSeeded(t *testing.T, s *fixture.Seeder, p *api.Stage) {
	t.Helper()
	targets, deleted, deletedNS := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, st := range p.Steps {
		targets[st.Target.UID] = true
		if st.Action == api.ActionDelete {
			deleted[st.Target.UID] = true
			if st.Target.Kind == "Namespace" {
				deletedNS[st.Target.Name] = true
			}
		}
		if st.Action == api.ActionHelmUninstall {
			deletedNS["helm:"+st.Target.Namespace+"/"+st.Target.Name] = true
		}
	}
	for _, r := range s.Seeded.Footprint {
		if !targets[string(r.UID)] && !(r.Namespace != "" && deletedNS[r.Namespace]) {
			t.Errorf("seeded footprint object %s is in no step", r)
		}
	}
	protected := map[string]bool{}
	for _, r := range p.Protected {
		protected[r.UID] = true
	}
	for _, r := range s.Seeded.Protected {
		if deleted[string(r.UID)] {
			t.Errorf("protected %s is a delete target", r)
		}
		if r.Namespace != "" && deletedNS[r.Namespace] {
			t.Errorf("protected %s is in namespace %s, which the plan deletes", r, r.Namespace)
		}
		if r.Kind == "Namespace" && !protected[string(r.UID)] {
			t.Errorf("namespace %s is not in the plan's protected list", r.Name)
		}
	}
}

func assertHazards(t *testing.T, s *fixture.Seeder, res *scan.Result) {
	t.Helper()
	found := map[string]bool{}
	for _, f := range res.Findings {
		found[f.ID] = true
	}
	for _, h := range s.Seeded.Hazards {
		if !found[h] {
			t.Errorf("planted hazard %s not found; findings: %s", h, ids(res.Findings))
		}
	}
}

func ids(fs []api.Finding) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID+"("+string(f.Severity)+")")
	}
	return strings.Join(out, " ")
}

func TestPlanScenarios(t *testing.T) {
	for _, sc := range fixture.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			s, res, p := planScenario(t, sc.Name)
			assertCoversSeeded(t, s, p)
			assertHazards(t, s, res)
			b, _ := json.Marshal(p)
			for _, v := range s.Seeded.SecretValues {
				if strings.Contains(string(b), v) {
					t.Errorf("plan contains the value of a user Secret")
				}
			}
			if err := plan.Validate(&api.Plan{Stages: []api.Stage{*p}}); err != nil {
				t.Fatal(err)
			}
			switch sc.Name {
			case "clean":
				if res.Critical() || len(res.Findings) != 0 || res.KubeSphere.Role != api.RoleAbsent {
					t.Errorf("clean cluster: role %q findings %s", res.KubeSphere.Role, ids(res.Findings))
				}
				if len(p.Steps) != 2 {
					t.Errorf("clean cluster plan has %d steps, want preflight and verify only", len(p.Steps))
				}
			case "incident":
				if !res.Critical() {
					t.Errorf("incident scan has no critical finding: %s", ids(res.Findings))
				}
				assertAlias(t, res, "host", "produce-trt")
			case "ks33-host":
				if res.KubeSphere.Version != "v3.3.1" || res.KubeSphere.Role != api.RoleHost {
					t.Errorf("detected %+v", res.KubeSphere)
				}
			case "ks41":
				if !strings.HasPrefix(res.KubeSphere.Version, "v4.1") {
					t.Errorf("detected %+v", res.KubeSphere)
				}
			case "half-uninstalled":
				if res.KubeSphere.Role != api.RoleLeftovers {
					t.Errorf("detected %+v", res.KubeSphere)
				}
			}
		})
	}
}

// The alias must be proven by identity (kube-system UID through each
// record's credentials), not by comparing URL strings, which differ.
func assertAlias(t *testing.T, res *scan.Result, names ...string) {
	t.Helper()
	for _, f := range res.Findings {
		if f.ID != hazard.ClusterAlias || f.Severity != api.Critical {
			continue
		}
		var got []string
		for _, o := range f.Objects {
			got = append(got, o.Name)
		}
		if fmt.Sprint(got) == fmt.Sprint(names) && strings.Contains(f.Message, "kube-system UID") {
			return
		}
	}
	t.Errorf("no verified %s finding for %v: %s", hazard.ClusterAlias, names, ids(res.Findings))
}

// A 3.3 host managing a member on a second control plane: each side's plan
// covers what was seeded there and protects its users' namespaces.
func TestPlanHostAndMember(t *testing.T) {
	h, m := fixture.StartHostMember(t)
	hostCP, memberCP, host, member := h.CP, m.CP, h.Seeder, m.Seeder
	for _, side := range []struct {
		name string
		cp   *controlplane.ControlPlane
		s    *fixture.Seeder
		role string
	}{{"host", hostCP, host, api.RoleHost}, {"member", memberCP, member, api.RoleMember}} {
		res, p := planWith(t, side.cp.Config)
		assertCoversSeeded(t, side.s, p)
		assertHazards(t, side.s, res)
		if res.KubeSphere.Role != side.role {
			t.Errorf("%s detected as %+v", side.name, res.KubeSphere)
		}
		if side.name == "host" {
			for _, f := range res.Findings {
				if f.ID == hazard.ClusterAlias {
					t.Errorf("host and member1 are two clusters, yet: %s", f.Message)
				}
			}
		}
	}
}

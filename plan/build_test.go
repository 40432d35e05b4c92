package plan_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// planWith scans a cluster as cfg and plans it, as ks-clean plan does.
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
	return planReport(t, rep)
}

func planReport(t *testing.T, rep *scan.Report) (*scan.Result, *api.Stage) {
	t.Helper()
	pl, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	res, p := rep.Host(), pl.Single()
	if p == nil || pl.APIVersion != api.APIVersion {
		t.Fatalf("a single cluster's plan is not one cluster stage: %+v", pl.Stages)
	}
	return res, p
}

// assertCoversSeeded: every seeded KubeSphere/KubeFed object is a step
// target or inside a namespace the plan deletes; no protected object is a
// delete target; every protected namespace is in the plan's protected list.
func assertCoversSeeded(t *testing.T, s fixture.Seeded, p *api.Stage) {
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
	for _, r := range s.Footprint {
		if !targets[string(r.UID)] && !(r.Namespace != "" && deletedNS[r.Namespace]) {
			t.Errorf("seeded footprint object %s is in no step", r)
		}
	}
	protected := map[string]bool{}
	for _, r := range p.Protected {
		protected[r.UID] = true
	}
	for _, r := range s.Protected {
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

func assertHazards(t *testing.T, s fixture.Seeded, res *scan.Result) {
	t.Helper()
	found := map[string]bool{}
	for _, f := range res.Findings {
		found[f.ID] = true
	}
	for _, h := range s.Hazards {
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

// Each scenario, planned from its recording (test/fixture/testdata/recorded,
// checked against the live scenario by TestRecordingsMatchScenarios): the
// plan covers what was seeded, protects users' namespaces, finds the planted
// hazards, holds no Secret's value and passes Validate.
func TestPlanScenarios(t *testing.T) {
	for _, sc := range fixture.Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			l := load(t, sc.Name)
			rep, err := l.Scan()
			if err != nil {
				t.Fatal(err)
			}
			res, p := planReport(t, rep)
			s := l.Seeded[0]
			assertCoversSeeded(t, s, p)
			assertHazards(t, s, res)
			b, _ := json.Marshal(p)
			for _, v := range s.SecretValues {
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

func load(t *testing.T, name string) *fixture.Loaded {
	t.Helper()
	l, err := fixture.LoadRecording(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
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

// A 3.3 host managing a member on a second cluster, each planned alone:
// each side's plan covers what was seeded there and protects its users'
// namespaces.
func TestPlanHostAndMember(t *testing.T) {
	l := load(t, fixture.HostMember)
	for i, side := range []struct {
		name string
		role string
	}{{"host", api.RoleHost}, {"member", api.RoleMember}} {
		rep, err := scan.Run(context.Background(), l.Targets[i:i+1], l.Options)
		if err != nil {
			t.Fatal(err)
		}
		res, p := planReport(t, rep)
		assertCoversSeeded(t, l.Seeded[i], p)
		assertHazards(t, l.Seeded[i], res)
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

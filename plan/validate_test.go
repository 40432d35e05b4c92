package plan

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ks-clean/ks-clean/api"
)

func ref(kind, ns, name, uid string) api.ObjectRef {
	av := "v1"
	switch kind {
	case "Workspace":
		av = "tenant.kubesphere.io/v1alpha1"
	case "CustomResourceDefinition":
		av = "apiextensions.k8s.io/v1"
	case "ValidatingWebhookConfiguration":
		av = "admissionregistration.k8s.io/v1"
	}
	return api.ObjectRef{APIVersion: av, Kind: kind, Namespace: ns, Name: name, UID: uid}
}

func step(id string, ph api.Phase, a api.Action, t api.ObjectRef, rm *api.Removal) api.Step {
	return api.Step{ID: id, Phase: ph, Action: a, Target: t, Reason: "test", Remove: rm}
}

// A safe plan for one workspace namespace, from which each test breaks one rule.
func safePlan() *api.Plan {
	ns := ref("Namespace", "", "prod", "ns-uid")
	ws := ref("Workspace", "", "ws1", "ws-uid")
	return &api.Plan{
		APIVersion: api.APIVersion, Kind: api.KindPlan,
		CreatedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Stages: []api.Stage{{Name: "cluster", Kind: api.StageCluster,
			Cluster:   api.Cluster{UID: "ks-uid", Server: "https://127.0.0.1:6443"},
			Protected: []api.ObjectRef{ns},
			Steps: []api.Step{
				step("1", api.PhasePreflight, api.ActionVerify, ref("Namespace", "", "kube-system", "ks-uid"), nil),
				step("2", api.PhaseDisarm, api.ActionDelete, ref("ValidatingWebhookConfiguration", "", "users.iam.kubesphere.io", "wh-uid"), nil),
				step("3", api.PhaseDetach, api.ActionPatch, ns, &api.Removal{OwnerReferences: []string{"ws-uid"}}),
				step("4", api.PhaseKubeSphere, api.ActionDelete, ws, nil),
				step("5", api.PhaseNamespaces, api.ActionDelete, ref("Namespace", "", "kubesphere-system", "kss-uid"), nil),
				step("6", api.PhaseCRDs, api.ActionDelete, ref("CustomResourceDefinition", "", "workspaces.tenant.kubesphere.io", "crd-uid"), nil),
				step("7", api.PhaseVerify, api.ActionVerify, ref("Namespace", "", "kube-system", "ks-uid"), nil),
			},
		}},
	}
}

func TestValidateAcceptsSafePlan(t *testing.T) {
	if err := Validate(safePlan()); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	swap := func(p *api.Plan, i, j int) {
		p.Stages[0].Steps[i], p.Stages[0].Steps[j] = p.Stages[0].Steps[j], p.Stages[0].Steps[i]
	}
	cases := []struct {
		name   string
		break_ func(p *api.Plan)
		want   string
		rule   string
	}{
		{"owner deleted before detach", func(p *api.Plan) {
			p.Stages[0].Steps[3].Phase = api.PhaseDetach
			swap(p, 2, 3)
		}, "before that object is detached", "detach-before-owner-delete"},
		{"protected namespace deleted", func(p *api.Plan) {
			p.Stages[0].Steps[4].Target = ref("Namespace", "", "prod", "ns-uid")
		}, "deletes protected", "protected-never-deleted"},
		{"kube-system deleted", func(p *api.Plan) {
			p.Stages[0].Steps[4].Target = ref("Namespace", "", "kube-system", "other")
		}, "deletes Kubernetes namespace", "kubernetes-namespaces-never-deleted"},
		{"webhook outlives a write", func(p *api.Plan) {
			p.Stages[0].Steps[1].Phase = api.PhaseDetach
			swap(p, 1, 2)
		}, "after step", "webhooks-before-writes"},
		{"CRD before its instances", func(p *api.Plan) {
			p.Stages[0].Steps[5].Phase = api.PhaseKubeSphere
			p.Stages[0].Steps[3].Phase = api.PhaseKubeSphere
			swap(p, 3, 5)
		}, "after its CRD is deleted", "crd-after-its-objects"},
		{"phases out of order", func(p *api.Plan) { swap(p, 4, 5) }, "after a later phase", "phases-in-order"},
		{"namespace before detach", func(p *api.Plan) {
			nsDelete := p.Stages[0].Steps[4]
			nsDelete.Phase = api.PhaseDetach
			p.Stages[0].Steps = append(p.Stages[0].Steps[:4], p.Stages[0].Steps[5:]...)
			p.Stages[0].Steps = append(p.Stages[0].Steps[:2], append([]api.Step{nsDelete}, p.Stages[0].Steps[2:]...)...)
		}, "before every detach", "namespaces-after-detaches"},
		{"volume retained after a delete", func(p *api.Plan) {
			pv := ref("PersistentVolume", "", "pv-data", "pv-uid")
			p.Stages[0].Protected = append(p.Stages[0].Protected, pv)
			retain := step("4r", api.PhaseKubeSphere, api.ActionRetain, pv, nil)
			st := p.Stages[0].Steps
			p.Stages[0].Steps = append(st[:4:4], append([]api.Step{retain}, st[4:]...)...)
		}, "may already have deleted its claim", "retain-protected-volumes-first"},
		{"delete cascades to a protected namespace", func(p *api.Plan) {
			p.Stages[0].Steps[3].Cascade = &api.Cascade{Objects: 1, To: []api.ObjectRef{ref("Namespace", "", "prod", "ns-uid")}}
		}, "takes protected", "cascade-within-plan"},
		{"delete cascades to a namespace it does not delete", func(p *api.Plan) {
			p.Stages[0].Steps[3].Cascade = &api.Cascade{Objects: 1, To: []api.ObjectRef{ref("Namespace", "", "team-b", "other-uid")}}
		}, "which the plan does not delete", "cascade-within-plan"},
		{"binding in the wave of its role", func(p *api.Plan) {
			st := p.Stages[0].Steps
			role := step("6a", api.PhaseRBAC, api.ActionDelete, ref("ClusterRole", "", "ks-admin", "cr-uid"), nil)
			binding := step("6b", api.PhaseRBAC, api.ActionDelete, ref("ClusterRoleBinding", "", "ks-admin", "crb-uid"), nil)
			p.Stages[0].Steps = append(st[:6:6], role, binding, st[6])
		}, "not after the roles", "roles-before-bindings"},
		{"unknown action", func(p *api.Plan) { p.Stages[0].Steps[2].Action = "shred" }, "unknown action", "known-steps"},
		{"retained volume not protected", func(p *api.Plan) {
			retain := step("3r", api.PhaseDetach, api.ActionRetain, ref("PersistentVolume", "", "pv-data", "pv-uid"), nil)
			st := p.Stages[0].Steps
			p.Stages[0].Steps = append(st[:3:3], append([]api.Step{retain}, st[3:]...)...)
		}, "not a protected PersistentVolume", "retain-protected-volumes-first"},
	}
	broken := map[string]bool{}
	for _, tc := range cases {
		broken[tc.rule] = true
	}
	for _, r := range Rules {
		if !broken[r.Name] {
			t.Errorf("rule %s has no case that breaks it", r.Name)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := safePlan()
			tc.break_(p)
			err := Validate(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "["+tc.rule+"]") {
				t.Fatalf("Validate = %v, want an error of rule %s containing %q", err, tc.rule, tc.want)
			}
		})
	}
}

// Every stage of a plan keeps the rules; a broken one is named.
func TestValidateStages(t *testing.T) {
	p := safePlan()
	host := p.Stages[0]
	host.Name, host.Kind = "host-h", api.StageHost
	member := safePlan().Stages[0]
	member.Name, member.Kind = "member-m", api.StageMember
	member.Steps[0].Phase = api.PhaseVerify
	p.Stages = []api.Stage{member, host}
	if err := Validate(p); err == nil || !strings.Contains(err.Error(), "stage member-m") {
		t.Fatalf("a broken stage: %v", err)
	}
}

// The phase table is the order Validate enforces and the order of the
// wire format's phases; docs/safety-model.md shows it as generated.
func TestPhaseTable(t *testing.T) {
	if len(Table) != len(api.Phases) {
		t.Fatalf("table has %d phases, the format %d", len(Table), len(api.Phases))
	}
	for i, r := range Table {
		if r.Phase != api.Phases[i] {
			t.Errorf("table row %d is %s, the format's phase %d is %s", i, r.Phase, i, api.Phases[i])
		}
	}
	doc, err := os.ReadFile("../docs/safety-model.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- phase-table:begin -->\n")
	table, _, ok2 := strings.Cut(rest, "<!-- phase-table:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/safety-model.md has no phase-table markers")
	}
	if table != TableMarkdown() {
		t.Errorf("docs/safety-model.md's phase table is not plan.Table; replace it with:\n%s", TableMarkdown())
	}
	_, rest, ok = strings.Cut(string(doc), "<!-- safety-rules:begin -->\n")
	rules, _, ok2 := strings.Cut(rest, "<!-- safety-rules:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/safety-model.md has no safety-rules markers")
	}
	if rules != RulesMarkdown() {
		t.Errorf("docs/safety-model.md's rules are not plan.Rules; replace them with:\n%s", RulesMarkdown())
	}
}

package plan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ref(kind, ns, name, uid string) ObjectRef {
	av := "v1"
	switch kind {
	case "Workspace":
		av = "tenant.kubesphere.io/v1alpha1"
	case "CustomResourceDefinition":
		av = "apiextensions.k8s.io/v1"
	case "ValidatingWebhookConfiguration":
		av = "admissionregistration.k8s.io/v1"
	}
	return ObjectRef{APIVersion: av, Kind: kind, Namespace: ns, Name: name, UID: uid}
}

func step(id string, ph Phase, a Action, t ObjectRef, rm *Removal) Step {
	return Step{ID: id, Phase: ph, Action: a, Target: t, Reason: "test", Remove: rm}
}

// A safe plan for one workspace namespace, from which each test breaks one rule.
func safePlan() *Plan {
	ns := ref("Namespace", "", "prod", "ns-uid")
	ws := ref("Workspace", "", "ws1", "ws-uid")
	return &Plan{
		APIVersion: APIVersion,
		Cluster:    Cluster{UID: "ks-uid", Server: "https://127.0.0.1:6443"},
		CreatedAt:  time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Protected:  []ObjectRef{ns},
		Steps: []Step{
			step("1", PhasePreflight, ActionVerify, ref("Namespace", "", "kube-system", "ks-uid"), nil),
			step("2", PhaseDisarm, ActionDelete, ref("ValidatingWebhookConfiguration", "", "users.iam.kubesphere.io", "wh-uid"), nil),
			step("3", PhaseDetach, ActionPatch, ns, &Removal{OwnerReferences: []string{"ws-uid"}}),
			step("4", PhaseKubeSphere, ActionDelete, ws, nil),
			step("5", PhaseNamespaces, ActionDelete, ref("Namespace", "", "kubesphere-system", "kss-uid"), nil),
			step("6", PhaseCRDs, ActionDelete, ref("CustomResourceDefinition", "", "workspaces.tenant.kubesphere.io", "crd-uid"), nil),
			step("7", PhaseVerify, ActionVerify, ref("Namespace", "", "kube-system", "ks-uid"), nil),
		},
	}
}

func TestValidateAcceptsSafePlan(t *testing.T) {
	if err := Validate(safePlan()); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	swap := func(p *Plan, i, j int) { p.Steps[i], p.Steps[j] = p.Steps[j], p.Steps[i] }
	cases := []struct {
		name   string
		break_ func(p *Plan)
		want   string
	}{
		{"owner deleted before detach", func(p *Plan) {
			p.Steps[3].Phase = PhaseDetach
			swap(p, 2, 3)
		}, "before that object is detached"},
		{"protected namespace deleted", func(p *Plan) {
			p.Steps[4].Target = ref("Namespace", "", "prod", "ns-uid")
		}, "deletes protected"},
		{"kube-system deleted", func(p *Plan) {
			p.Steps[4].Target = ref("Namespace", "", "kube-system", "other")
		}, "deletes Kubernetes namespace"},
		{"webhook outlives a write", func(p *Plan) {
			p.Steps[1].Phase = PhaseDetach
			swap(p, 1, 2)
		}, "after step"},
		{"CRD before its instances", func(p *Plan) {
			p.Steps[5].Phase = PhaseKubeSphere
			p.Steps[3].Phase = PhaseKubeSphere
			swap(p, 3, 5)
		}, "after its CRD is deleted"},
		{"phases out of order", func(p *Plan) { swap(p, 4, 5) }, "after a later phase"},
		{"namespace before detach", func(p *Plan) {
			nsDelete := p.Steps[4]
			nsDelete.Phase = PhaseDetach
			p.Steps = append(p.Steps[:4], p.Steps[5:]...)
			p.Steps = append(p.Steps[:2], append([]Step{nsDelete}, p.Steps[2:]...)...)
		}, "before every detach"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := safePlan()
			tc.break_(p)
			err := Validate(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestWriteReadDigest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "plan.json")
	p := safePlan()
	if err := Write(path, p); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("plan file mode %v, want 0600", st.Mode().Perm())
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != p.Digest || len(got.Steps) != len(p.Steps) {
		t.Fatalf("round trip changed the plan")
	}

	b, _ := os.ReadFile(path)
	edited := strings.Replace(string(b), `"name": "kubesphere-system"`, `"name": "prod"`, 1)
	if _, err := Parse([]byte(edited), "edited.json"); err == nil || !strings.Contains(err.Error(), "edited after planning") {
		t.Fatalf("edited plan: err = %v", err)
	}
	for name, in := range map[string]string{"empty": "", "truncated": string(b[:len(b)/2]), "not json": "hello"} {
		if _, err := Parse([]byte(in), name); err == nil || !strings.Contains(err.Error(), "ks-clean plan") {
			t.Errorf("%s: err = %v, want a message naming the way out", name, err)
		}
	}
	other := strings.Replace(string(b), APIVersion, "ks-clean/v9", 1)
	if _, err := Parse([]byte(other), "v9.json"); err == nil || !strings.Contains(err.Error(), "apiVersion") {
		t.Errorf("unknown apiVersion: err = %v", err)
	}
}

package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func safePlan() *Plan {
	ks := ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kube-system", UID: "ks-uid"}
	return &Plan{
		APIVersion: APIVersion, Kind: KindPlan,
		CreatedAt: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Stages: []Stage{{Name: "cluster", Kind: StageCluster, Cluster: Cluster{UID: "ks-uid"}, Steps: []Step{
			{ID: "1", Phase: PhasePreflight, Action: ActionVerify, Target: ks},
			{ID: "2", Phase: PhaseNamespaces, Action: ActionDelete, Target: ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kubesphere-system", UID: "kss-uid"}},
			{ID: "3", Phase: PhaseVerify, Action: ActionVerify, Target: ks},
		}}},
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
	if got.Digest != p.Digest || len(got.Stages[0].Steps) != len(p.Stages[0].Steps) {
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

func TestStageOrder(t *testing.T) {
	stage := func(name string, kind StageKind) Stage { return Stage{Name: name, Kind: kind} }
	p := &Plan{Stages: []Stage{stage("unjoin-members", StageUnjoin), stage("member-m", StageMember), stage("host-h", StageHost)}}
	if err := p.CheckStages(); err != nil {
		t.Fatalf("unjoin, member, host refused: %v", err)
	}
	p.Stages[0], p.Stages[1] = p.Stages[1], p.Stages[0]
	if err := p.CheckStages(); err == nil || !strings.Contains(err.Error(), "after a later kind") {
		t.Fatalf("member before unjoin: %v", err)
	}
	p = &Plan{Stages: []Stage{stage("a", StageCluster), stage("b", StageHost)}}
	if err := p.CheckStages(); err == nil || !strings.Contains(err.Error(), "only ever alone") {
		t.Fatalf("a cluster stage beside another: %v", err)
	}
}

// A plan of the previous format is refused with the command that makes a
// new one.
func TestOldPlanRefused(t *testing.T) {
	old := `{"apiVersion":"ks-clean/v1alpha1","cluster":{"uid":"x"},"steps":[],"digest":"sha256:0"}`
	_, err := Parse([]byte(old), "old.json")
	if _, ok := AsRefusal(err); !ok || !strings.Contains(err.Error(), "ks-clean plan --out") || !strings.Contains(err.Error(), "v1alpha1") {
		t.Fatalf("old plan: %v", err)
	}
}

package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func safeMulti() *MultiCluster {
	stage := func(name, kind, ctx string) Stage {
		return Stage{Name: name, Kind: kind, Context: ctx, Plan: safePlan()}
	}
	return &MultiCluster{APIVersion: APIVersion, Kind: KindMultiCluster, Host: "h", Members: []string{"m"},
		Stages: []Stage{stage("unjoin-members", StageUnjoin, "h"), stage("member-m", StageMember, "m"), stage("host-h", StageHost, "h")}}
}

func TestMultiStageOrder(t *testing.T) {
	if err := safeMulti().Validate(); err != nil {
		t.Fatalf("safe multi-cluster plan refused: %v", err)
	}
	m := safeMulti()
	m.Stages[0], m.Stages[1] = m.Stages[1], m.Stages[0]
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "after a later kind") {
		t.Fatalf("member before unjoin: %v", err)
	}
	m = safeMulti()
	m.Stages[1].Plan.Steps[0].Phase = PhaseVerify // a stage that breaks the single-cluster rules
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "stage member-m") {
		t.Fatalf("a broken stage plan: %v", err)
	}
}

// Each stage's digest guards it even when the file's own digest is redone.
func TestMultiDigests(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "multi.json")
	m := safeMulti()
	if err := WriteMulti(path, m); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil || f.Multi == nil || f.Single != nil {
		t.Fatalf("read back: %v %+v", err, f)
	}
	m.Stages[1].Plan.Steps[2].Reason = "edited"
	m.Digest = ""
	if m.Digest, err = m.ComputeDigest(); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(path, m); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "stage member-m") {
		t.Fatalf("edited stage with a redone file digest: %v", err)
	}

	single := filepath.Join(dir, "single.json")
	if err := Write(single, safePlan()); err != nil {
		t.Fatal(err)
	}
	if f, err := ReadFile(single); err != nil || f.Single == nil || f.Multi != nil {
		t.Fatalf("single plan through ReadFile: %v %+v", err, f)
	}
	if err := os.WriteFile(single, []byte(`{"kind":"MultiClusterPlan","apiVersion":"ks-clean/v9"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(single); err == nil || !strings.Contains(err.Error(), "apiVersion") {
		t.Fatalf("multi plan of another version: %v", err)
	}
}

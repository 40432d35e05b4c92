package uninstall

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ks-clean/ks-clean/kube"
	"github.com/ks-clean/ks-clean/plan"
)

// ApplyMulti executes a multi-cluster plan: every stage's preflight first,
// so a refusal anywhere comes before the first write anywhere; then stage by
// stage, each with every safety of Apply (its own backup and journal under
// BackupDir/NN-STAGE, its own Lease, its own verification). A stage that
// fails stops the rest; the same command resumes.
type ApplyMulti struct {
	Plan *plan.MultiCluster
	// Clients by kubeconfig context, one for each stage's context.
	Clients  map[string]*kube.Clients
	PlanPath string
	Options
}

// StageResult is one stage's outcome.
type StageResult struct {
	Name    string  `json:"name"`
	Context string  `json:"context"`
	Result  *Result `json:"result,omitempty"`
}

// MultiResult is the machine-readable outcome of a multi-cluster apply.
type MultiResult struct {
	DryRun    bool          `json:"dryRun"`
	BackupDir string        `json:"backupDir"`
	Stages    []StageResult `json:"stages"`
	Duration  string        `json:"duration"`
}

// Run applies the plan.
func (m *ApplyMulti) Run(ctx context.Context) (*MultiResult, error) {
	start := time.Now()
	if m.BackupDir == "" {
		m.BackupDir = m.PlanPath + ".apply"
	}
	res := &MultiResult{DryRun: m.DryRun, BackupDir: m.BackupDir, Stages: []StageResult{}}
	defer func() { res.Duration = time.Since(start).Round(time.Millisecond).String() }()
	if err := m.Plan.Validate(); err != nil {
		return res, refuse("plan %s: %v", m.PlanPath, err)
	}

	applies := make([]*Apply, len(m.Plan.Stages))
	for i, st := range m.Plan.Stages {
		c := m.Clients[st.Context]
		if c == nil {
			return res, refuse("plan %s: no connection for context %q of stage %s", m.PlanPath, st.Context, st.Name)
		}
		o := m.Options
		o.BackupDir = filepath.Join(m.BackupDir, fmt.Sprintf("%02d-%s", i+1, st.Name))
		if m.Progress != nil {
			name := st.Name
			o.Progress = func(e Event) { e.Stage = name; m.Progress(e) }
		}
		applies[i] = &Apply{Clients: c, Plan: st.Plan, PlanPath: fmt.Sprintf("%s (stage %s)", m.PlanPath, st.Name), Options: o}
	}
	for i, a := range applies {
		if err := a.Check(ctx); err != nil {
			return res, fmt.Errorf("stage %s: %w", m.Plan.Stages[i].Name, err)
		}
	}
	for i, a := range applies {
		st := m.Plan.Stages[i]
		r, err := a.Run(ctx)
		res.Stages = append(res.Stages, StageResult{Name: st.Name, Context: st.Context, Result: r})
		if err != nil {
			return res, fmt.Errorf("stage %s (context %q): %w; later stages were not run", st.Name, st.Context, err)
		}
	}
	return res, nil
}

// Package uninstall is the executor behind `ks-clean apply`: it runs a plan
// exactly, stage by stage. Each stage has preflight checks that refuse before
// any write (of any stage), a backup first, preconditions on every write,
// phases in order with a wait for each phase's deletions, a journal to
// resume from, a Lease that stops every write when lost, and a rescan at the
// end that proves nothing of KubeSphere is left and every protected object
// is still there.
package uninstall

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/lease"
	"github.com/ks-clean/ks-clean/plan"
)

// Options of an apply.
type Options struct {
	// DryRun sends every write with dryRun=All: admission and validation
	// run, nothing is stored.
	DryRun bool
	// BackupDir holds the backup and the journal (default: PLAN.apply/;
	// a plan of several stages keeps each under BackupDir/NN-STAGE).
	BackupDir string
	// MaxAge refuses older plans unless AllowStale.
	MaxAge     time.Duration
	AllowStale bool
	// Concurrency is the most writes in flight within a phase; while the
	// server throttles (429, 503) fewer are sent (kube.Pace), then the bound
	// grows back.
	Concurrency int
	// FinalizerTimeout is how long a phase waits for its deletions before
	// removing the finalizers of footprint objects still present.
	FinalizerTimeout time.Duration
	// PhaseTimeout bounds each wait in all.
	PhaseTimeout time.Duration
	// HelmHooks runs Helm's uninstall hooks (off: KubeSphere 4's hook Jobs
	// need images a broken cluster may not pull).
	HelmHooks bool
	// LeaseDuration is how long the cluster's Lease lasts unrenewed;
	// LeaseCheck how often apply reads it to notice a loss.
	LeaseDuration, LeaseCheck time.Duration
	// Progress receives events as steps finish (nil: none).
	Progress func(Event)
	// StopAfter, when positive, stops after that many writes as if
	// interrupted (tests use it to prove resumption).
	StopAfter int
}

// DefaultOptions are the defaults of every option: the CLI's flags start
// from them, and Run fills a zero field with them.
func DefaultOptions() Options {
	return Options{
		MaxAge:           24 * time.Hour,
		Concurrency:      kube.DefaultMaxInFlight,
		FinalizerTimeout: 60 * time.Second,
		PhaseTimeout:     10 * time.Minute,
		LeaseDuration:    60 * time.Second,
		LeaseCheck:       2 * time.Second,
	}
}

func (o *Options) defaults(planPath string) {
	d := DefaultOptions()
	for _, f := range []struct{ v, def *time.Duration }{
		{&o.MaxAge, &d.MaxAge}, {&o.FinalizerTimeout, &d.FinalizerTimeout}, {&o.PhaseTimeout, &d.PhaseTimeout},
		{&o.LeaseDuration, &d.LeaseDuration}, {&o.LeaseCheck, &d.LeaseCheck},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.BackupDir == "" {
		o.BackupDir = planPath + ".apply"
	}
}

// Event reports progress.
type Event struct {
	// Stage names the stage of a plan of several stages ("" otherwise).
	Stage       string
	Phase       api.Phase
	Done, Total int
	Step        *api.Step
	Status      string
	Detail      string
}

// Apply executes a plan.
type Apply struct {
	Plan *api.Plan
	// Clients by kubeconfig context, one for each stage's context.
	Clients map[string]*kube.Clients
	// PlanPath names the plan in messages and locates the default backup
	// directory.
	PlanPath string
	Options
	// Leases the caller holds, by context, for its own longer run
	// (reinstall holds the host's from its uninstall to its import); apply
	// takes the other clusters' Leases once, for all of its stages, and
	// releases them at its end.
	Leases map[string]*lease.Lease

	// journalFault, tests only (export_test.go): an error for a journal
	// write, as from a disk that is full or gone.
	journalFault func(step string) error
	noDriftCheck bool // tests only (export_test.go): the negative control
	noGuard      bool // tests only (export_test.go): the guard's negative control
}

// KindResult is the kind of an apply's result.
const KindResult = "ApplyResult"

// Result is the machine-readable outcome (`apply -o json`).
type Result struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	DryRun     bool   `json:"dryRun"`
	BackupDir  string `json:"backupDir"`
	// Totals over the stages run.
	BackedUp int `json:"backedUp"`
	Done     int `json:"done"`
	Skipped  int `json:"skipped"`
	Failed   int `json:"failed"`
	// Verification sums up the stages' verifications (nil when none ran:
	// a dry run, or a stop before the end).
	Verification    *Verification `json:"verification,omitempty"`
	Stages          []StageResult `json:"stages"`
	DurationSeconds float64       `json:"durationSeconds"`
}

// StageResult is one stage's outcome.
type StageResult struct {
	Name         string        `json:"name"`
	Context      string        `json:"context"`
	BackupDir    string        `json:"backupDir"`
	BackedUp     int           `json:"backedUp"`
	Done         int           `json:"done"`
	Skipped      int           `json:"skipped"`
	Failed       int           `json:"failed"`
	Steps        []StepResult  `json:"steps"`
	Verification *Verification `json:"verification,omitempty"`
	// Guard is how the stage's protected namespaces and retained volumes
	// were guarded against deletion while it ran: admission-policy, or none
	// (a server without ValidatingAdmissionPolicies, or nothing to guard;
	// dry runs are not guarded).
	Guard string `json:"guard,omitempty"`
	// GuardKept: the guard was left in place because the final check found
	// protected objects the garbage collector would delete without it
	// (Verification.AtRisk). The next apply takes it over.
	GuardKept bool `json:"guardKept,omitempty"`
}

// StepResult is what happened to one step.
type StepResult struct {
	ID     string        `json:"id"`
	Phase  api.Phase     `json:"phase"`
	Action api.Action    `json:"action"`
	Target api.ObjectRef `json:"target"`
	Status string        `json:"status"`
	Detail string        `json:"detail,omitempty"`
}

// AllSteps are the step results of every stage, in order.
func (r *Result) AllSteps() []StepResult {
	var out []StepResult
	for _, st := range r.Stages {
		out = append(out, st.Steps...)
	}
	return out
}

// Duration is how long the apply took.
func (r *Result) Duration() time.Duration {
	return time.Duration(r.DurationSeconds * float64(time.Second)).Round(time.Millisecond)
}

// Run applies the plan: every stage's preflight first, so a refusal anywhere
// comes before the first write anywhere; then stage by stage. A stage that
// fails stops the rest; the same command resumes.
func (a *Apply) Run(ctx context.Context) (*Result, error) {
	start := time.Now()
	a.Options.defaults(a.PlanPath)
	res := &Result{APIVersion: api.APIVersion, Kind: KindResult, DryRun: a.DryRun, BackupDir: a.BackupDir, Stages: []StageResult{}}
	defer func() { res.DurationSeconds = time.Since(start).Seconds() }()

	stages, err := a.stages()
	if err != nil {
		return res, err
	}
	targets := make([]map[string]*resolved, len(stages))
	for i, st := range stages {
		if targets[i], err = st.preflight(ctx); err != nil {
			return res, st.wrap(err)
		}
	}
	// Backup directories and journals before the Lease, its first write:
	// a refusal of them changes nothing.
	for _, st := range stages {
		if err := st.open(); err != nil {
			return res, st.wrap(err)
		}
		defer st.journal.Close()
	}
	if !a.DryRun {
		release, err := a.takeLeases(ctx, stages)
		if err != nil {
			return res, err
		}
		defer release()
	}
	for i, st := range stages {
		// The first stage starts right after its check; a later one is
		// checked again: its cluster may have changed while earlier stages
		// ran.
		if i > 0 {
			targets[i] = nil
		}
		sr, err := st.run(ctx, targets[i])
		res.add(sr, len(stages) > 1)
		if err != nil {
			if len(stages) > 1 {
				err = fmt.Errorf("stage %s (context %q): %w; later stages were not run", st.Plan.Name, st.Plan.Cluster.Context, err)
			}
			return res, err
		}
	}
	return res, nil
}

// stages checks the plan as a whole and prepares a runner per stage.
func (a *Apply) stages() ([]*stage, error) {
	p := a.Plan
	if d, err := p.ComputeDigest(); err != nil || d != p.Digest {
		return nil, api.Refuse(api.FixNewPlan, "plan %s: %w: make a new plan instead of editing one", a.PlanPath, api.ErrTampered)
	}
	if err := plan.Validate(p); err != nil {
		return nil, api.Refuse(api.FixNewPlan, "plan %s: %w", a.PlanPath, err)
	}
	out := make([]*stage, len(p.Stages))
	for i := range p.Stages {
		st := &p.Stages[i]
		c := a.Clients[st.Cluster.Context]
		if c == nil {
			return nil, api.Refuse(api.FixCluster, "plan %s: no connection for context %q of stage %s", a.PlanPath, st.Cluster.Context, st.Name)
		}
		o := a.Options
		name := a.PlanPath
		if len(p.Stages) > 1 {
			o.BackupDir = filepath.Join(a.BackupDir, api.StageDirName(i, st.Name))
			name = fmt.Sprintf("%s (stage %s)", a.PlanPath, st.Name)
			if a.Progress != nil {
				o.Progress = func(e Event) { e.Stage = st.Name; a.Progress(e) }
			}
		}
		out[i] = &stage{Clients: c, Plan: st, PlanPath: name, Options: o, createdAt: p.CreatedAt, planDigest: p.Digest, multi: len(p.Stages) > 1, noDriftCheck: a.noDriftCheck, noGuard: a.noGuard, journalFault: a.journalFault}
	}
	return out, nil
}

// takeLeases gives each stage its cluster's Lease: the caller's, else one
// taken here for the whole apply, so no other run can write between two
// stages on the same cluster (a host's unjoin and its teardown).
func (a *Apply) takeLeases(ctx context.Context, stages []*stage) (release func(), err error) {
	held := map[string]*lease.Lease{}
	var taken []*lease.Lease
	release = func() {
		for _, l := range taken {
			l.Release()
		}
	}
	for _, st := range stages {
		uid := st.Plan.Cluster.UID
		l := held[uid]
		if l == nil {
			l = a.Leases[st.Plan.Cluster.Context]
		}
		if l == nil {
			if l, err = lease.Acquire(ctx, st.Clients.Kube, lease.Options{Duration: a.LeaseDuration, Check: a.LeaseCheck}); err != nil {
				release()
				return nil, st.wrap(err)
			}
			taken = append(taken, l)
		}
		held[uid] = l
		st.lease = l
	}
	return release, nil
}

func (r *Result) add(sr *StageResult, multi bool) {
	if sr == nil {
		return
	}
	r.Stages = append(r.Stages, *sr)
	r.BackedUp += sr.BackedUp
	r.Done += sr.Done
	r.Skipped += sr.Skipped
	r.Failed += sr.Failed
	if v := sr.Verification; v != nil {
		if r.Verification == nil {
			r.Verification = &Verification{OK: true}
		}
		r.Verification.OK = r.Verification.OK && v.OK
		r.Verification.Remaining += v.Remaining
		r.Verification.ProtectedChecked += v.ProtectedChecked
		for _, p := range v.Problems {
			if multi {
				p = sr.Name + ": " + p
			}
			r.Verification.Problems = append(r.Verification.Problems, p)
		}
		for _, p := range v.AtRisk {
			if multi {
				p = sr.Name + ": " + p
			}
			r.Verification.AtRisk = append(r.Verification.AtRisk, p)
		}
	}
}

package api

import (
	"fmt"
	"time"
)

// StageKind says what a stage does; stages run in the order of their kinds.
type StageKind string

const (
	// StageCluster tears one cluster down: the only stage of a
	// single-cluster plan.
	StageCluster StageKind = "cluster"
	// StageUnjoin runs on a host: its controllers are stopped and the
	// records of the members (Cluster, KubeFedCluster, token Secret) go, so
	// nothing on the host acts on a member while the member is torn down.
	StageUnjoin StageKind = "unjoin"
	// StageMember tears one member down.
	StageMember StageKind = "member"
	// StageHost tears the host down.
	StageHost StageKind = "host"
)

// stageRank orders stage kinds: unjoin, members, host. A cluster stage is
// only ever alone.
var stageRank = map[StageKind]int{StageCluster: 0, StageUnjoin: 0, StageMember: 1, StageHost: 2}

// Plan is an ordered teardown: stages run in order, each on one cluster and
// each applied with every safety of apply (its own backup, journal, Lease and
// verification). A single cluster is one stage.
type Plan struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	CreatedAt  time.Time `json:"createdAt"`
	// Findings are the hazards across clusters; each stage holds its
	// cluster's own.
	Findings []Finding `json:"findings"`
	Stages   []Stage   `json:"stages"`
	Digest   string    `json:"digest"`
}

// Stage is one cluster's part of a plan.
type Stage struct {
	Name string    `json:"name"`
	Kind StageKind `json:"kind"`
	// Cluster is the cluster the stage runs on; its Context is the
	// kubeconfig context the plan was made with.
	Cluster    Cluster     `json:"cluster"`
	KubeSphere KubeSphere  `json:"kubesphere"`
	Findings   []Finding   `json:"findings"`
	Protected  []ObjectRef `json:"protected"`
	Steps      []Step      `json:"steps"`
}

// Whole reports whether the stage is a whole teardown of its cluster, which
// ends with a verification that nothing is left; an unjoin stage is not.
func (s *Stage) Whole() bool {
	for _, st := range s.Steps {
		if st.Phase == PhaseVerify {
			return true
		}
	}
	return false
}

// Single returns the only stage of a single-cluster plan, else nil.
func (p *Plan) Single() *Stage {
	if len(p.Stages) == 1 && p.Stages[0].Kind == StageCluster {
		return &p.Stages[0]
	}
	return nil
}

// Contexts lists the kubeconfig contexts of the stages, each once, in order.
func (p *Plan) Contexts() []string {
	var out []string
	seen := map[string]bool{}
	for _, st := range p.Stages {
		if !seen[st.Cluster.Context] {
			seen[st.Cluster.Context] = true
			out = append(out, st.Cluster.Context)
		}
	}
	return out
}

// CheckStages checks the stage order: one cluster stage alone, or unjoin,
// then members, then the host. The ordering rules of each stage's steps are
// the planner's (plan.Validate).
func (p *Plan) CheckStages() error {
	if len(p.Stages) == 0 {
		return fmt.Errorf("the plan has no stages")
	}
	prev := -1
	for i, st := range p.Stages {
		r, ok := stageRank[st.Kind]
		if !ok {
			return fmt.Errorf("stage %d (%s): unknown kind %q", i, st.Name, st.Kind)
		}
		if st.Kind == StageCluster && len(p.Stages) > 1 {
			return fmt.Errorf("stage %d (%s): a %s stage is only ever alone", i, st.Name, st.Kind)
		}
		if r < prev {
			return fmt.Errorf("stage %d (%s): %s stage after a later kind of stage", i, st.Name, st.Kind)
		}
		prev = r
	}
	return nil
}

package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// KindMultiCluster marks a plan file that tears down a host and its members.
// Single-cluster plans have no kind, so files written before it still read.
const KindMultiCluster = "MultiClusterPlan"

// Stage kinds, in the order a multi-cluster plan runs them.
const (
	// StageUnjoin runs on the host: its controllers are stopped and the
	// records of the members (Cluster, KubeFedCluster, token Secret) go, so
	// nothing on the host acts on a member while the member is torn down.
	StageUnjoin = "unjoin"
	// StageMember tears one member down.
	StageMember = "member"
	// StageHost tears the host down.
	StageHost = "host"
)

// Stage is one cluster's part of a multi-cluster plan: a complete
// single-cluster plan, sealed on its own, run against Context.
type Stage struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Context string `json:"context"`
	Plan    *Plan  `json:"plan"`
}

// MultiCluster is one teardown across a host and its members: stages run in
// order, each applied with every safety of a single-cluster apply.
type MultiCluster struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	CreatedAt  time.Time `json:"createdAt"`
	// Host and Members are kubeconfig context names.
	Host    string   `json:"host"`
	Members []string `json:"members"`
	// Findings are the cross-cluster hazards; each stage's plan holds its
	// cluster's own.
	Findings []Finding `json:"findings"`
	Stages   []Stage   `json:"stages"`
	Digest   string    `json:"digest"`
}

// ComputeDigest is the sha256 of the canonical JSON with the digest empty.
func (m *MultiCluster) ComputeDigest() (string, error) {
	c := *m
	c.Digest = ""
	return digestOf(&c)
}

// Seal seals every stage's plan, then the whole.
func (m *MultiCluster) Seal() error {
	for _, st := range m.Stages {
		if err := st.Plan.Seal(); err != nil {
			return err
		}
	}
	d, err := m.ComputeDigest()
	if err != nil {
		return err
	}
	m.Digest = d
	return nil
}

// Validate checks the stage order (unjoin, members, host) and each stage's
// plan against the single-cluster rules.
func (m *MultiCluster) Validate() error {
	rank := map[string]int{StageUnjoin: 0, StageMember: 1, StageHost: 2}
	prev := -1
	for i, st := range m.Stages {
		r, ok := rank[st.Kind]
		if !ok {
			return fmt.Errorf("stage %d (%s): unknown kind %q", i, st.Name, st.Kind)
		}
		if r < prev {
			return fmt.Errorf("stage %d (%s): %s stage after a later kind of stage", i, st.Name, st.Kind)
		}
		prev = r
		if st.Plan == nil {
			return fmt.Errorf("stage %d (%s): no plan", i, st.Name)
		}
		if err := Validate(st.Plan); err != nil {
			return fmt.Errorf("stage %s: %w", st.Name, err)
		}
	}
	return nil
}

// WriteMulti saves a multi-cluster plan like Write saves a plan.
func WriteMulti(path string, m *MultiCluster) error {
	if m.Digest == "" {
		if err := m.Seal(); err != nil {
			return err
		}
	}
	return writeFile(path, m)
}

// File is what a plan file holds: one plan, or a multi-cluster plan.
type File struct {
	Single *Plan
	Multi  *MultiCluster
}

// ReadFile loads a plan file of either kind and checks format and digests.
func ReadFile(path string) (*File, error) {
	b, err := readPlanBytes(path)
	if err != nil {
		return nil, err
	}
	var head struct {
		Kind string `json:"kind"`
	}
	if len(bytes.TrimSpace(b)) > 0 && json.Unmarshal(b, &head) == nil && head.Kind == KindMultiCluster {
		m, err := ParseMulti(b, path)
		return &File{Multi: m}, err
	}
	p, err := Parse(b, path)
	return &File{Single: p}, err
}

// ParseMulti decodes and checks a multi-cluster plan.
func ParseMulti(b []byte, name string) (*MultiCluster, error) {
	var m MultiCluster
	if err := decode(b, name, &m); err != nil {
		return nil, err
	}
	for _, st := range m.Stages {
		if st.Plan == nil {
			return nil, fmt.Errorf("plan %s: stage %s has no plan: make a new plan", name, st.Name)
		}
		if d, err := st.Plan.ComputeDigest(); err != nil || d != st.Plan.Digest {
			return nil, fmt.Errorf("plan %s: stage %s: %w: make a new plan instead of editing one", name, st.Name, ErrTampered)
		}
	}
	return &m, nil
}

package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ComputeDigest is the sha256 of the plan's canonical JSON with the digest
// field empty. encoding/json writes struct fields in declaration order, so
// the form is stable for a given build of the format.
func (p *Plan) ComputeDigest() (string, error) {
	c := *p
	c.Digest = ""
	return digestOf(&c)
}

func digestOf(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Seal sets the digest.
func (p *Plan) Seal() error {
	d, err := p.ComputeDigest()
	if err != nil {
		return err
	}
	p.Digest = d
	return nil
}

// Write saves the plan as indented JSON, readable only by its owner: plans
// name every object of the cluster.
func Write(path string, p *Plan) error {
	if p.Digest == "" {
		if err := p.Seal(); err != nil {
			return err
		}
	}
	return writeFile(path, p)
}

// writeFile writes v as indented JSON, mode 0600, atomically.
func writeFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".plan-*.json")
	if err != nil {
		return fmt.Errorf("write plan %s: %w (check the directory exists and is writable)", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Read loads a plan and checks its format and digest.
func Read(path string) (*Plan, error) {
	b, err := readInput(path)
	if err != nil {
		return nil, Refuse(FixNewPlan, "read plan %s: %w", path, err)
	}
	return Parse(b, path)
}

// Parse decodes and checks a plan; name is used in errors. Every problem is
// a Refusal: nothing was tried yet.
func Parse(b []byte, name string) (*Plan, error) {
	if len(b) == 0 {
		return nil, Refuse(FixNewPlan, "plan %s is empty: make a new one with `ks-clean plan --out %s`", name, name)
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, Refuse(FixNewPlan, "plan %s is not a ks-clean plan (%v): make a new one with `ks-clean plan --out FILE`", name, err)
	}
	if p.APIVersion != APIVersion || p.Kind != KindPlan {
		return nil, Refuse(FixNewPlan, "plan %s has apiVersion %q, kind %q; this ks-clean reads %q, kind %q: make a new plan with this version: `ks-clean plan --out FILE`", name, p.APIVersion, p.Kind, APIVersion, KindPlan)
	}
	d, err := p.ComputeDigest()
	if err != nil {
		return nil, err
	}
	if d != p.Digest {
		return nil, Refuse(FixNewPlan, "plan %s: %w (it was edited after planning): make a new plan instead of editing one", name, ErrTampered)
	}
	if err := p.CheckStages(); err != nil {
		return nil, Refuse(FixNewPlan, "plan %s: %w", name, err)
	}
	return &p, nil
}

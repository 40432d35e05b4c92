package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// ErrTampered is returned by Read when the digest does not match.
var ErrTampered = errors.New("plan digest does not match its content")

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
	b, err := readPlanBytes(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, path)
}

func readPlanBytes(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return b, nil
}

// Parse decodes and checks a plan; name is used in errors.
func Parse(b []byte, name string) (*Plan, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("plan %s is empty: make a new one with `ks-clean plan --out %s`", name, name)
	}
	var p Plan
	if err := decode(b, name, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// sealed is either form of plan file: versioned and digested.
type sealed interface {
	header() (apiVersion, digest string)
	ComputeDigest() (string, error)
}

func (p *Plan) header() (string, string)         { return p.APIVersion, p.Digest }
func (m *MultiCluster) header() (string, string) { return m.APIVersion, m.Digest }

// decode unmarshals a plan file and checks its version and digest.
func decode(b []byte, name string, v sealed) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("plan %s is not a ks-clean plan (%v): make a new one with `ks-clean plan --out FILE`", name, err)
	}
	version, digest := v.header()
	if version != APIVersion {
		return fmt.Errorf("plan %s has apiVersion %q; this ks-clean reads %q: make a new plan with this version", name, version, APIVersion)
	}
	d, err := v.ComputeDigest()
	if err != nil {
		return err
	}
	if d != digest {
		return fmt.Errorf("plan %s: %w (it was edited after planning): make a new plan instead of editing one", name, ErrTampered)
	}
	return nil
}

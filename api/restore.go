package api

import (
	"encoding/json"
	"time"
)

// KindRestorePlan is the kind of a restore plan: what `ks-clean restore`
// will put back from an apply's backup, saved before it writes.
const KindRestorePlan = "RestorePlan"

// Tier of a restore, in execution order: what others depend on first, what
// acts on others (workloads, webhooks, APIServices) last.
type Tier string

const (
	TierNamespaces Tier = "namespaces"
	// TierCRDs: each is waited until Established before the next tier.
	TierCRDs       Tier = "crds"
	TierCluster    Tier = "cluster"
	TierNamespaced Tier = "namespaced"
	// TierWorkloads scales workloads back to the replicas the plan
	// recorded when apply scaled them to 0.
	TierWorkloads Tier = "workloads"
	// TierWebhooks: webhook configurations and APIServices, once what
	// serves them is back.
	TierWebhooks Tier = "webhooks"
)

// Tiers lists every tier in order.
var Tiers = []Tier{TierNamespaces, TierCRDs, TierCluster, TierNamespaced, TierWorkloads, TierWebhooks}

// Restore actions.
const (
	// ActionCreate creates the object from its backup file, without the
	// fields the server sets, its owner references pointing at the owners'
	// UIDs now.
	ActionCreate Action = "create"
	// ActionReattach gives a kept object back the owner references and
	// labels apply's detach removed (only with --reattach).
	ActionReattach Action = "reattach"
	// ActionOwn gives a restored object the owner references it could not
	// have when it was created, its owner coming later in the order (a
	// system namespace owned by a Workspace, a custom resource).
	ActionOwn Action = "own"
)

// RestorePlan is what a restore does, stage by stage (in the reverse order
// of the apply's stages).
type RestorePlan struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	CreatedAt  time.Time `json:"createdAt"`
	// Backup is the backup directory given.
	Backup string         `json:"backup"`
	Stages []RestoreStage `json:"stages"`
	Digest string         `json:"digest"`
}

// RestoreStage restores one stage's backup on its cluster.
type RestoreStage struct {
	Name    string  `json:"name"`
	Cluster Cluster `json:"cluster"`
	// Dir is the stage's backup directory; BackupDigest its index's
	// digest when the plan was made.
	Dir          string        `json:"dir"`
	BackupDigest string        `json:"backupDigest"`
	Steps        []RestoreStep `json:"steps"`
	// Conflicts exist now and differ from the backup: left alone.
	Conflicts []RestoreNote `json:"conflicts"`
	// Kept is what the restore leaves as apply left it, and why.
	Kept []RestoreNote `json:"kept"`
	// Protected are the objects apply kept: the final check finds each
	// with its UID.
	Protected []ObjectRef `json:"protected"`
}

// RestoreStep is one write of a restore.
type RestoreStep struct {
	ID     string    `json:"id"`
	Tier   Tier      `json:"tier"`
	Action Action    `json:"action"`
	Target ObjectRef `json:"target"` // as backed up: its UID is the old one
	// File is the backup file the object is created from (create,
	// reattach).
	File string `json:"file,omitempty"`
	// Replicas, for scale steps, is the count to scale back to.
	Replicas *int64 `json:"replicas,omitempty"`
	// Wave orders the steps of a tier: an object's owners restored in the
	// same tier are in earlier waves; the steps of one wave run
	// concurrently.
	Wave int `json:"wave,omitempty"`
}

// RestoreNote is an object with a reason.
type RestoreNote struct {
	Object ObjectRef `json:"object"`
	Reason string    `json:"reason"`
}

// Seal sets the digest.
func (p *RestorePlan) Seal() error {
	c := *p
	c.Digest = ""
	d, err := digestOf(&c)
	if err != nil {
		return err
	}
	p.Digest = d
	return nil
}

// WriteRestorePlan seals and saves a restore plan (0600).
func WriteRestorePlan(path string, p *RestorePlan) error {
	if err := p.Seal(); err != nil {
		return err
	}
	return writeFile(path, p)
}

// ReadRestorePlan loads a restore plan and checks its digest.
func ReadRestorePlan(path string) (*RestorePlan, error) {
	b, err := ReadRegularFile(path, MaxBackupRecordBytes)
	if err != nil {
		return nil, Refuse(FixBackup, "restore plan %s: %w: move it away and run restore again", path, err)
	}
	var p RestorePlan
	if err := json.Unmarshal(b, &p); err != nil || p.Kind != KindRestorePlan {
		return nil, Refuse(FixBackup, "%s is not a ks-clean restore plan: move it away and run restore again", path)
	}
	want := p.Digest
	if err := p.Seal(); err != nil || p.Digest != want {
		return nil, Refuse(FixBackup, "restore plan %s: %w: move it away and run restore again", path, ErrTampered)
	}
	return &p, nil
}

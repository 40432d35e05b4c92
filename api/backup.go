package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The files of an apply's backup directory (one per stage): what `ks-clean
// restore` reads back.
const (
	BackupIndexFile = "index.json"
	BackupStageFile = "stage.json"
	JournalFile     = "journal.jsonl"
	KindBackupIndex = "BackupIndex"
)

// BackupIndex lists what a stage's backup holds and which run took it. Its
// digest and each file's sha256 let restore refuse a backup that was cut
// short or edited.
type BackupIndex struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	// Plan is the journal key of the stage backed up (plan digest, and
	// "/STAGE" in a plan of several stages).
	Plan string `json:"plan"`
	// Cluster is the UID of the backed-up cluster's kube-system namespace.
	Cluster string    `json:"cluster,omitempty"`
	TakenAt time.Time `json:"takenAt"`
	// StageSHA256 is the sha256 of BackupStageFile: the plan's stage,
	// which says what apply was to do.
	StageSHA256 string        `json:"stageSha256,omitempty"`
	Objects     []BackupEntry `json:"objects"`
	Digest      string        `json:"digest,omitempty"`
}

// BackupEntry is one object of the backup: what it was, and the file
// (relative to the backup directory) holding it as read before any write.
type BackupEntry struct {
	ObjectRef
	File   string `json:"file"`
	SHA256 string `json:"sha256,omitempty"`
}

// ComputeDigest is the sha256 of the index's JSON with the digest empty.
func (x *BackupIndex) ComputeDigest() (string, error) {
	c := *x
	c.Digest = ""
	return digestOf(&c)
}

// FileSHA256 is the "sha256:HEX" of a file's bytes.
func FileSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ReadBackup loads a stage's backup index and stage from dir and checks
// that nothing in it was edited or is missing. Every problem is a Refusal.
func ReadBackup(dir string) (*BackupIndex, *Stage, error) {
	path := filepath.Join(dir, BackupIndexFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, Refuse(FixBackup, "%s is not a complete backup of an apply (%v): an apply that stopped before its backup was written changed nothing; give the backup directory apply printed", dir, err)
	}
	var x BackupIndex
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, nil, Refuse(FixBackup, "backup index %s is damaged: %v", path, err)
	}
	if x.Digest == "" || x.StageSHA256 == "" {
		return nil, nil, Refuse(FixBackup, "backup %s was taken by a ks-clean that could not restore (no checksums): restore it by hand from its objects/ folder", dir)
	}
	if d, err := x.ComputeDigest(); err != nil || d != x.Digest {
		return nil, nil, Refuse(FixBackup, "backup index %s: %w (it was edited after the backup): use the backup as apply wrote it", path, ErrBackupEdited)
	}
	sb, err := os.ReadFile(filepath.Join(dir, BackupStageFile))
	if err != nil || FileSHA256(sb) != x.StageSHA256 {
		return nil, nil, Refuse(FixBackup, "backup %s: %s is missing or %v: use the backup as apply wrote it", dir, BackupStageFile, ErrBackupEdited)
	}
	var st Stage
	if err := json.Unmarshal(sb, &st); err != nil {
		return nil, nil, Refuse(FixBackup, "backup %s: %s is damaged: %v", dir, BackupStageFile, err)
	}
	for _, e := range x.Objects {
		ob, err := os.ReadFile(filepath.Join(dir, e.File))
		if err != nil {
			return nil, nil, Refuse(FixBackup, "backup %s is incomplete: %s (%s) is missing: %v", dir, e.File, e.ObjectRef, err)
		}
		if FileSHA256(ob) != e.SHA256 {
			return nil, nil, Refuse(FixBackup, "backup %s: %s (%s): %w (edited after the backup): use the backup as apply wrote it", dir, e.File, e.ObjectRef, ErrBackupEdited)
		}
	}
	return &x, &st, nil
}

// WriteBackupIndex seals and writes the index, mode 0600, atomically.
func WriteBackupIndex(dir string, x *BackupIndex) error {
	x.APIVersion, x.Kind = APIVersion, KindBackupIndex
	d, err := x.ComputeDigest()
	if err != nil {
		return err
	}
	x.Digest = d
	if err := writeFile(filepath.Join(dir, BackupIndexFile), x); err != nil {
		return fmt.Errorf("write backup index: %w", err)
	}
	return nil
}

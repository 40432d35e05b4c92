// Package restore is the executor behind `ks-clean restore`: it puts back
// what an apply deleted, from that apply's backup, with apply's safety
// model: a saved plan, a dry run, confirmation, the cluster's Lease, a
// journal to resume from and a final check. It never overwrites an object
// that exists and differs from the backup (a conflict, reported), and it
// re-attaches users' namespaces to what owned them only when asked.
package restore

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/uninstall"
)

// Source is one stage's backup, read and checked.
type Source struct {
	Dir   string
	Index *api.BackupIndex
	Stage *api.Stage
	// Finished says how each step apply finished ended (done, skipped),
	// by ID.
	Finished map[string]string
}

// done: apply made the step's change.
func (s *Source) done(id string) bool { return s.Finished[id] == uninstall.StatusDone }

// gone: the step's target may be gone because of apply: it deleted it, or
// found it gone already (a run killed after its delete, before the
// journal's line). Restore creates only what is missing, so one gone for
// another reason is put back too, as the backup has it.
func (s *Source) gone(id string) bool { return s.Finished[id] != "" }

// Load reads the backup in dir: one stage's (dir holds index.json), or a
// plan of several stages' (dir/NN-STAGE each). Stages come in the order to
// restore them: the reverse of apply's. Every problem is a Refusal, before
// any cluster is asked anything.
func Load(dir string) ([]*Source, error) {
	dirs := []string{dir}
	if _, err := os.Stat(filepath.Join(dir, api.BackupIndexFile)); err != nil {
		subs, _ := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*", api.BackupIndexFile))
		if len(subs) == 0 {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, api.Refuse(api.FixBackup, "backup directory %s: %v: give the directory apply printed as its backup (default PLAN.apply)", dir, serr)
			}
			return nil, api.Refuse(api.FixBackup, "%s holds no backup of an apply (no %s): give the directory apply printed as its backup (default PLAN.apply); an apply that stopped before its backup was written changed nothing", dir, api.BackupIndexFile)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(subs)))
		dirs = dirs[:0]
		for _, s := range subs {
			dirs = append(dirs, filepath.Dir(s))
		}
	}
	var out []*Source
	for _, d := range dirs {
		x, st, err := api.ReadBackup(d)
		if err != nil {
			return nil, err
		}
		key, done, err := uninstall.ReadJournal(d)
		if err != nil {
			return nil, api.Refuse(api.FixBackup, "journal of %s: %v", d, err)
		}
		if key == "" {
			return nil, api.Refuse(api.FixBackup, "the apply whose backup is %s never started writing (no journal): there is nothing to restore", d)
		}
		if key != x.Plan {
			return nil, api.Refuse(api.FixBackup, "backup %s: its journal belongs to another plan than its backup (%s, not %s): use the directory as apply left it", d, key, x.Plan)
		}
		out = append(out, &Source{Dir: d, Index: x, Stage: st, Finished: done})
	}
	changed := false
	for _, s := range out {
		for _, step := range s.Stage.Steps {
			changed = changed || s.done(step.ID) && writes(step.Action)
		}
	}
	if !changed {
		return nil, api.Refuse(api.FixBackup, "the apply whose backup is %s changed nothing (its journal has no finished write): there is nothing to restore", dir)
	}
	return out, nil
}

// writes: the action changes the cluster.
func writes(a api.Action) bool {
	switch a {
	case api.ActionWait, api.ActionVerify:
		return false
	}
	return true
}

// readObject reads the backed-up object in file (relative to the stage's
// backup directory dir).
func readObject(dir, file string) (*unstructured.Unstructured, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(b, &u.Object); err != nil {
		return nil, fmt.Errorf("backup file %s: %w", file, err)
	}
	return u, nil
}

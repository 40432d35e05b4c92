// Package restore is the executor behind `ks-clean restore`: it puts back
// what an apply deleted, from that apply's backup, with apply's safety
// model: a saved plan, a dry run, confirmation, the cluster's Lease, a
// journal to resume from and a final check. It never overwrites an object
// that exists and differs from the backup (a conflict, reported), and it
// re-attaches users' namespaces to what owned them only when asked.
//
// A backup is an input like a plan: anyone who can write files may have
// made it. restore reads only plain files inside it (api.ReadBackup), each
// checked against the index; creates only what the apply's journal says it
// deleted; and creates objects that grant or intercept access (RBAC,
// admission, APIServices, Secrets outside the namespaces the plan deleted)
// only for the kinds the operator names (Options.AllowKinds).
package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
	"github.com/ks-clean/ks-clean/plan"
)

// Source is one stage's backup, read and checked.
type Source struct {
	Dir   string
	Index *api.BackupIndex
	Stage *api.Stage
	// Finished says how each step apply finished ended (done, skipped),
	// by ID.
	Finished map[string]journal.Entry
}

// done: apply made the step's change.
func (s *Source) done(id string) bool { return s.Finished[id].Status == journal.Done }

// gone: the step's target is gone because of apply: it deleted it, or
// found it gone already (a run killed after its delete, before the
// journal's line). A delete skipped because the object was re-created since
// planning is not: that object is there, and left alone.
func (s *Source) gone(id string) bool { return s.Finished[id].Gone() }

// stageDir is the name apply gives a stage's directory in a plan of
// several stages (api.StageDirName).
var stageDir = regexp.MustCompile(`^([0-9]{2,})-[a-z0-9.-]+$`)

// Load reads the backup in dir: one stage's (dir holds index.json), or a
// plan of several stages' (dir/NN-STAGE each). Stages come in the order to
// restore them: the reverse of apply's. Every problem is a Refusal, before
// any cluster is asked anything.
func Load(dir string) ([]*Source, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, api.Refuse(api.FixBackup, "backup directory %s: %w: give the directory apply printed as its backup (default PLAN.apply)", dir, err)
	}
	var dirs []string
	single := false
	if _, err := os.Lstat(filepath.Join(dir, api.BackupIndexFile)); err == nil {
		dirs, single = []string{dir}, true
	} else if dirs, err = stageDirs(dir); err != nil {
		return nil, err
	}
	var out []*Source
	for i, d := range dirs {
		if _, err := os.Lstat(filepath.Join(d, api.BackupIndexFile)); errors.Is(err, fs.ErrNotExist) && !single {
			// A stage apply never reached (it backs up before its first
			// write): it and every later one changed nothing.
			if err := unstarted(d, dirs[i:]); err != nil {
				return nil, err
			}
			break
		}
		x, st, err := api.ReadBackup(d)
		if err != nil {
			return nil, err
		}
		head, done, err := journal.Read(filepath.Join(d, api.JournalFile))
		key := journal.Key(head)
		if err != nil {
			return nil, api.Refuse(api.FixBackup, "journal of %s: %w", d, err)
		}
		if key == "" {
			return nil, api.Refuse(api.FixBackup, "the apply whose backup is %s never started writing (no journal): there is nothing to restore", d)
		}
		if key != x.Plan {
			return nil, api.Refuse(api.FixBackup, "backup %s: its journal belongs to another plan than its backup (%s, not %s): use the directory as apply left it", d, key, x.Plan)
		}
		digest, name, multi := strings.Cut(x.Plan, "/")
		switch {
		case single && multi:
			return nil, api.Refuse(api.FixBackup, "backup %s is one stage (%s) of a plan of several: give the directory above it, which holds every stage", d, name)
		case !single && !multi:
			return nil, api.Refuse(api.FixBackup, "backup %s, a stage directory, holds the backup of a single-cluster plan: use the directory as apply left it", d)
		case !single && filepath.Base(d) != api.StageDirName(i, st.Name):
			return nil, api.Refuse(api.FixBackup, "backup %s holds stage %q, which apply would have saved as %s: use the directory as apply left it", d, st.Name, api.StageDirName(i, st.Name))
		case len(out) > 0 && !strings.HasPrefix(out[0].Index.Plan, digest+"/"):
			return nil, api.Refuse(api.FixBackup, "backup %s: stage %s is of another plan (%s) than stage %s (%s): every stage must be of one apply", dir, st.Name, digest, out[0].Stage.Name, out[0].Index.Plan)
		}
		out = append(out, &Source{Dir: d, Index: x, Stage: st, Finished: done})
	}
	// The stages as apply ran them must be a plan apply would have run.
	p := &api.Plan{}
	for _, s := range out {
		p.Stages = append(p.Stages, *s.Stage)
	}
	if err := plan.Validate(p); err != nil {
		return nil, api.Refuse(api.FixBackup, "backup %s: its stages are not a plan apply runs: %w", dir, err)
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
	// Restored in the reverse order of apply's.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// stageDirs lists the stage directories of a plan of several stages, in
// apply's order; each must be a real directory named as apply names them
// (NN-STAGE, numbered from 01 without a gap), so that none is missed.
func stageDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, api.Refuse(api.FixBackup, "backup directory %s: %w", dir, err)
	}
	byNum := map[int]string{}
	last := 0
	for _, e := range ents {
		n := e.Name()
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue // restore's own files, a dry run's backup
		}
		m := stageDir.FindStringSubmatch(n)
		if m == nil || e.Type()&fs.ModeSymlink != 0 || !e.IsDir() {
			return nil, api.Refuse(api.FixBackup, "backup %s: %s is not a stage directory as apply makes them (NN-NAME, a directory, NAME of [a-z0-9.-]); a stage of an older ks-clean named after a context with '/' or ':' is in nested directories and cannot be restored as a whole: restore its objects by hand, or move what is not apply's out of %s", dir, n, dir)
		}
		num, _ := strconv.Atoi(m[1])
		if byNum[num] != "" {
			return nil, api.Refuse(api.FixBackup, "backup %s: two directories of stage %d (%s, %s): use the directory as apply left it", dir, num, byNum[num], n)
		}
		byNum[num] = filepath.Join(dir, n)
		last = max(last, num)
	}
	if last == 0 {
		return nil, api.Refuse(api.FixBackup, "%s holds no backup of an apply (no %s): give the directory apply printed as its backup (default PLAN.apply); an apply that stopped before its backup was written changed nothing", dir, api.BackupIndexFile)
	}
	var out []string
	for i := 1; i <= last; i++ {
		if byNum[i] == "" {
			return nil, api.Refuse(api.FixBackup, "backup %s: stage %02d is missing, though stage %02d is there: restore would miss what stage %02d deleted; put it back as apply left it", dir, i, last, i)
		}
		out = append(out, byNum[i])
	}
	sort.Strings(out)
	return out, nil
}

// unstarted checks that the stages in dirs, the first of which has no
// backup, changed nothing: none has a backup or a finished write.
func unstarted(first string, dirs []string) error {
	for _, d := range dirs {
		_, errIndex := os.Lstat(filepath.Join(d, api.BackupIndexFile))
		_, done, err := journal.Read(filepath.Join(d, api.JournalFile))
		if err != nil {
			return api.Refuse(api.FixBackup, "journal of %s: %w", d, err)
		}
		if errIndex == nil || len(done) > 0 {
			return api.Refuse(api.FixBackup, "backup %s: stage %s has no %s, yet the later stage %s ran: use the directory as apply left it", filepath.Dir(d), filepath.Base(first), api.BackupIndexFile, filepath.Base(d))
		}
	}
	return nil
}

// writes: the action changes the cluster.
func writes(a api.Action) bool {
	switch a {
	case api.ActionWait, api.ActionVerify:
		return false
	}
	return true
}

// readObject reads the backed-up object of entry e of the stage's backup
// in dir: a plain file inside it, with the checksum the index records and
// the object the index names. Numbers are decoded as the API machinery does
// (integers as int64), so they compare equal to what the server returns.
func readObject(dir string, e api.BackupEntry) (*unstructured.Unstructured, error) {
	b, err := api.ReadBackupFile(dir, e.File, api.MaxBackupObjectBytes)
	if err != nil {
		return nil, fmt.Errorf("backup file %s: %w", e.File, err)
	}
	if api.FileSHA256(b) != e.SHA256 {
		return nil, fmt.Errorf("backup file %s (%s): %w", e.File, e.ObjectRef, api.ErrBackupEdited)
	}
	u := &unstructured.Unstructured{}
	if err := utiljson.Unmarshal(b, &u.Object); err != nil {
		return nil, fmt.Errorf("backup file %s: %w", e.File, err)
	}
	if u.GetAPIVersion() != e.APIVersion || u.GetKind() != e.Kind || u.GetNamespace() != e.Namespace || u.GetName() != e.Name || string(u.GetUID()) != e.UID {
		return nil, fmt.Errorf("backup file %s holds %s %s/%s (UID %s), not %s (UID %s) as its index says: %w", e.File, u.GetKind(), u.GetNamespace(), u.GetName(), u.GetUID(), e.ObjectRef, e.UID, api.ErrBackupEdited)
	}
	return u, nil
}

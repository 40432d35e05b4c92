package restore

import (
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/ks-clean/ks-clean/api"
)

// SensitiveKinds are the kinds restore creates only when the operator
// names them (--allow-kind): each grants access (RBAC), sees or changes
// every request it matches (admission), serves an API group (APIService),
// or holds credentials (a Secret outside the namespaces the plan deleted).
// A crafted backup would use exactly these to take over the cluster.
var SensitiveKinds = []string{
	"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
	"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
	"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
	"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
	"APIService", "Secret",
}

// sensitive returns the kind to allow for creating r, or "" when none is
// needed. deletedNS are the namespaces the stage deleted: their Secrets
// are the deleted applications' own.
func sensitive(r api.ObjectRef, deletedNS map[string]bool) string {
	switch g := r.Group(); {
	case g == "rbac.authorization.k8s.io" && (r.Kind == "ClusterRole" || r.Kind == "ClusterRoleBinding" || r.Kind == "Role" || r.Kind == "RoleBinding"):
		return r.Kind
	case g == "admissionregistration.k8s.io":
		return r.Kind
	case g == "apiregistration.k8s.io" && r.Kind == "APIService":
		return r.Kind
	case g == "" && r.Kind == "Secret" && !deletedNS[r.Namespace]:
		return r.Kind
	}
	return ""
}

// facts are what a stage's journal says apply did.
type facts struct {
	// deleted: UIDs of the targets of delete steps that left them gone.
	deleted map[string]bool
	// deletedNS: namespaces deleted (gone), whose whole content the
	// backup holds; plannedNS: every namespace the stage deletes.
	deletedNS, plannedNS map[string]bool
	// targets: every step's target by UID.
	targets map[string]api.ObjectRef
	// scaled: replicas of the workloads apply scaled down, by UID.
	scaled map[string]*int64
	// detached: done patches that removed owner references or labels.
	detached []api.Step
}

// analyze reads the stage's journal against its steps and its index. An
// index entry apply would never have written (no step names it and it is in
// no namespace the stage deletes, or it names the UID of a step's target
// but another object) refuses the backup.
func analyze(src *Source) (*facts, error) {
	f := &facts{deleted: map[string]bool{}, deletedNS: map[string]bool{}, plannedNS: map[string]bool{}, targets: map[string]api.ObjectRef{}, scaled: map[string]*int64{}}
	for _, s := range src.Stage.Steps {
		if s.Target.UID != "" {
			f.targets[s.Target.UID] = s.Target
		}
		isNS := s.Target.Kind == "Namespace" && s.Target.Group() == ""
		if s.Action == api.ActionDelete && isNS {
			f.plannedNS[s.Target.Name] = true
		}
		if s.Action == api.ActionDelete && src.gone(s.ID) {
			f.deleted[s.Target.UID] = true
			if isNS {
				f.deletedNS[s.Target.Name] = true
			}
		}
		if !src.done(s.ID) {
			continue
		}
		switch s.Action {
		case api.ActionScale:
			f.scaled[s.Target.UID] = s.Replicas
		case api.ActionPatch:
			if s.Remove != nil && (len(s.Remove.OwnerReferences) > 0 || len(s.Remove.Labels) > 0) {
				f.detached = append(f.detached, s)
			}
		}
	}
	for _, e := range src.Index.Objects {
		t, ok := f.targets[e.UID]
		switch {
		case ok && !sameObject(t, e.ObjectRef):
			return nil, api.Refuse(api.FixBackup, "backup %s: index entry %s has the UID of the stage's target %s: %w; use the backup as apply wrote it", src.Dir, e.ObjectRef, t, api.ErrBackupEdited)
		case !ok && !f.plannedNS[e.Namespace]:
			return nil, api.Refuse(api.FixBackup, "backup %s: index entry %s is no target of the stage and in no namespace it deletes: apply never backs such an object up (%w); use the backup as apply wrote it", src.Dir, e.ObjectRef, api.ErrBackupEdited)
		}
	}
	return f, nil
}

// restorable: the entry is of an object apply deleted (a delete step's
// target it left gone, or what was in a namespace it deleted).
func (f *facts) restorable(e api.BackupEntry) bool {
	return f.deleted[e.UID] || f.deletedNS[e.Namespace]
}

// sameObject: the same kind (of the same group), namespace and name.
func sameObject(a, b api.ObjectRef) bool {
	return a.Group() == b.Group() && a.Kind == b.Kind && a.Namespace == b.Namespace && a.Name == b.Name
}

// Check refuses a restore plan that does more than the backups in srcs
// allow: a plan saved by an earlier run is a file like any other. Its
// stages must be srcs' (directory, backup digest, cluster, protected
// objects); it may create only what apply deleted, of the sensitive kinds
// only those o.AllowKinds names; re-attach only what apply detached, scale
// only what apply scaled down, to the replicas it found. Build checks every
// plan it makes with it; the CLI checks a saved plan before resuming it.
func Check(p *api.RestorePlan, srcs []*Source, o Options) error {
	if p.Kind != api.KindRestorePlan || len(p.Stages) != len(srcs) {
		return api.Refuse(api.FixBackup, "restore plan of %s has %d stages, its backup %d: move the plan away and run restore again", p.Backup, len(p.Stages), len(srcs))
	}
	allowed := map[string]bool{}
	for _, k := range o.AllowKinds {
		allowed[k] = true
	}
	need := map[string]bool{}
	var objects []string
	for i := range p.Stages {
		st, src := &p.Stages[i], srcs[i]
		if !sameDir(st.Dir, src.Dir) || st.BackupDigest != src.Index.Digest || st.Name != src.Stage.Name || st.Cluster != src.Stage.Cluster || !reflect.DeepEqual(st.Protected, src.Stage.Protected) && len(st.Protected)+len(src.Stage.Protected) > 0 {
			return api.Refuse(api.FixBackup, "restore plan stage %d (%s, %s) is not of the backup %s: move the plan away and run restore again", i, st.Name, st.Dir, src.Dir)
		}
		f, err := analyze(src)
		if err != nil {
			return err
		}
		entries := map[string]api.BackupEntry{}
		for _, e := range src.Index.Objects {
			entries[e.File] = e
		}
		detached := map[string]bool{}
		for _, s := range f.detached {
			detached[s.Target.UID] = true
		}
		for _, step := range st.Steps {
			bad := ""
			e, inIndex := entries[step.File]
			switch step.Action {
			case api.ActionCreate, api.ActionOwn:
				if !inIndex || e.ObjectRef != step.Target || !f.restorable(e) {
					bad = "apply did not delete it, or the backup does not hold it"
				}
				if k := sensitive(step.Target, f.deletedNS); bad == "" && step.Action == api.ActionCreate && k != "" && !allowed[k] {
					need[k] = true
					objects = append(objects, fmt.Sprintf("%s (stage %s)", step.Target, st.Name))
				}
			case api.ActionReattach:
				if !inIndex || e.UID != step.Target.UID || !sameObject(e.ObjectRef, step.Target) || !detached[step.Target.UID] || !o.Reattach {
					bad = "apply did not detach it, or --reattach was not given"
				}
			case api.ActionScale:
				n := f.scaled[step.Target.UID]
				if n == nil || step.Replicas == nil || *n != *step.Replicas || !sameObject(f.targets[step.Target.UID], step.Target) {
					bad = "apply did not scale it down from that count"
				}
			default:
				bad = "unknown action"
			}
			if bad != "" {
				return api.Refuse(api.FixBackup, "restore plan step %s (%s %s): %s: %w; move the plan away and run restore again", step.ID, step.Action, step.Target, bad, api.ErrTampered)
			}
		}
	}
	if len(need) > 0 {
		var kinds, flags []string
		for k := range need {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			flags = append(flags, "--allow-kind "+k)
		}
		shown := objects
		if len(shown) > 20 {
			shown = append(shown[:20:20], fmt.Sprintf("and %d more", len(objects)-20))
		}
		return api.Refuse(api.FixNone, "restore would create %d objects that grant or intercept access to the cluster (%s): %s. A backup is a file anyone who could write it may have made: check these are what apply deleted (the backup's %s lists them with their files), then run again with %s",
			len(objects), strings.Join(kinds, ", "), strings.Join(shown, ", "), api.BackupIndexFile, strings.Join(flags, " "))
	}
	return nil
}

// sameDir: a and b name one directory (the plan may have been saved by a
// run started elsewhere, with a relative path).
func sameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

package plan

import (
	"fmt"
	"strings"

	"github.com/ks-clean/ks-clean/api"
)

// Kubernetes' own namespaces: no plan may delete them.
var kubernetesNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}

// Validate enforces the ordering rules that keep users' data alive. It reads
// only the plan, so `apply` checks a plan file with it before any write:
//
//  1. phases run in order;
//  2. no protected object, and no Kubernetes namespace, is deleted;
//  3. nothing that owns a protected object is deleted before that object is
//     detached, and no namespace is deleted before every detach is done;
//  4. every webhook configuration is deleted before the first patch or
//     delete of anything else, so a webhook whose backend goes away never
//     outlives the writes it matches;
//  5. no CRD is deleted before every step on objects of its group, so no
//     instance with finalizers remains when its type goes.
//
// A plan's stages must come in order (api.Plan.CheckStages) and each stage
// must keep these rules.
func Validate(p *api.Plan) error {
	if err := p.CheckStages(); err != nil {
		return err
	}
	for i := range p.Stages {
		if err := validateStage(&p.Stages[i]); err != nil {
			if len(p.Stages) == 1 {
				return err
			}
			return fmt.Errorf("stage %s: %w", p.Stages[i].Name, err)
		}
	}
	return nil
}

var knownActions = map[api.Action]bool{
	api.ActionScale: true, api.ActionPatch: true, api.ActionRetain: true, api.ActionDelete: true,
	api.ActionHelmUninstall: true, api.ActionWait: true, api.ActionVerify: true,
}

func validateStage(p *api.Stage) error {
	rank := map[api.Phase]int{}
	for i, r := range Table {
		rank[r.Phase] = i
	}
	protected := map[string]api.ObjectRef{}
	for _, r := range p.Protected {
		protected[r.UID] = r
	}
	detachOf := map[string]int{} // owner UID -> index of the last detach naming it
	lastDetach, firstOtherWrite := -1, -1
	var errs []string
	fail := func(i int, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("step %d (%s): %s", i, p.Steps[i].ID, fmt.Sprintf(format, args...)))
	}

	// Detaches first: later checks compare every delete against them.
	for i, s := range p.Steps {
		if s.Action == api.ActionPatch && s.Remove != nil && (len(s.Remove.OwnerReferences) > 0 || protected[s.Target.UID].UID != "") {
			lastDetach = i
			for _, uid := range s.Remove.OwnerReferences {
				detachOf[uid] = i
			}
		}
	}

	prev, firstDataDelete := -1, -1
	seen := map[string]bool{}
	for i, s := range p.Steps {
		r, ok := rank[s.Phase]
		if !ok {
			fail(i, "unknown phase %q", s.Phase)
			continue
		}
		if r < prev {
			fail(i, "phase %s after a later phase", s.Phase)
		}
		prev = r
		if seen[s.ID] {
			fail(i, "duplicate step id")
		}
		if !knownActions[s.Action] {
			fail(i, "unknown action %q (a plan made by a newer ks-clean?)", s.Action)
		}
		seen[s.ID] = true

		t := s.Target
		isWebhook := t.Kind == "ValidatingWebhookConfiguration" || t.Kind == "MutatingWebhookConfiguration"
		switch s.Action {
		case api.ActionDelete, api.ActionHelmUninstall:
			if _, ok := protected[t.UID]; ok && t.UID != "" {
				fail(i, "deletes protected %s", t)
			}
			if t.Kind == "Namespace" && t.Group() == "" && kubernetesNamespaces[t.Name] {
				fail(i, "deletes Kubernetes namespace %s", t.Name)
			}
			if j, ok := detachOf[t.UID]; ok && j > i {
				fail(i, "deletes %s, which owns a protected object, before that object is detached at step %d", t, j)
			}
			if t.Kind == "Namespace" && lastDetach > i {
				fail(i, "deletes namespace %s before every detach is done", t.Name)
			}
		}
		if (s.Action == api.ActionPatch || s.Action == api.ActionRetain || s.Action == api.ActionDelete || s.Action == api.ActionHelmUninstall) && !isWebhook && t.Kind != "APIService" && firstOtherWrite < 0 {
			firstOtherWrite = i
		}
		if (s.Action == api.ActionDelete || s.Action == api.ActionHelmUninstall) && !isWebhook && t.Kind != "APIService" && firstDataDelete < 0 {
			firstDataDelete = i
		}
		if s.Action == api.ActionRetain {
			if t.Kind != "PersistentVolume" || protected[t.UID].UID == "" {
				fail(i, "retains %s, which is not a protected PersistentVolume", t)
			}
			if firstDataDelete >= 0 {
				fail(i, "retains %s after step %d may already have deleted its claim", t, firstDataDelete)
			}
		}
		if isWebhook && s.Action == api.ActionDelete && firstOtherWrite >= 0 && firstOtherWrite < i {
			fail(i, "deletes webhook %s after step %d already wrote", t.Name, firstOtherWrite)
		}
	}
	// CRDs: a step on an object of the group after the CRD is deleted.
	crdAt := map[string]int{}
	for i, s := range p.Steps {
		if s.Action == api.ActionDelete && s.Target.Kind == "CustomResourceDefinition" {
			if _, g, ok := strings.Cut(s.Target.Name, "."); ok {
				if _, dup := crdAt[g]; !dup {
					crdAt[g] = i
				}
			}
		}
	}
	for i, s := range p.Steps {
		if j, ok := crdAt[s.Target.Group()]; ok && s.Target.Kind != "CustomResourceDefinition" && s.Action != api.ActionVerify && s.Action != api.ActionWait && i > j {
			fail(i, "acts on %s after its CRD is deleted at step %d", s.Target, j)
		}
	}
	errs = append(errs, cascadeProblems(p)...)
	if len(errs) > 0 {
		return fmt.Errorf("plan breaks its safety rules:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

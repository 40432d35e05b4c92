package plan

import (
	"fmt"
	"strings"

	"github.com/ks-clean/ks-clean/api"
)

// Validate enforces the safety rules (Rules) that keep users' data alive. It
// reads only the plan, so `apply` checks a plan file with it before any
// write. A plan's stages must come in order (api.Plan.CheckStages) and each
// stage must keep every rule.
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

// Rule is one safety rule every stage of a plan keeps. Rules are data: the
// list below is what Validate runs, what docs/safety-model.md shows
// (RulesMarkdown) and what plan/validate_test.go breaks, one case per rule.
type Rule struct {
	// Name is stable: a refusal names the rule it breaks.
	Name string
	// What the rule requires, and Why, for the docs.
	What, Why string
	// check returns one problem per offending step.
	check func(v *view) []string
}

// Rules are checked in this order; every broken one is reported.
var Rules = []Rule{
	{
		Name: "phases-in-order", What: "steps come in the order of the phase table; each phase is one the table knows",
		Why:   "the order is what makes the other rules hold: detach before delete, data kept before anything can delete it",
		check: phasesInOrder,
	},
	{
		Name: "known-steps", What: "step ids are unique and every action is one this ks-clean knows",
		Why:   "the journal resumes by step id, and an unknown action (a plan of a newer ks-clean) cannot be run as planned",
		check: knownSteps,
	},
	{
		Name: "protected-never-deleted", What: "no protected object is a delete or Helm-uninstall target",
		Why:   "users' namespaces, the objects the plan detaches and retained volumes are what the teardown exists to keep",
		check: protectedNeverDeleted,
	},
	{
		Name: "kubernetes-namespaces-never-deleted", What: "default, kube-system, kube-public and kube-node-lease are never delete targets",
		Why:   "they are Kubernetes', whatever KubeSphere's labels on them say",
		check: kubernetesNamespacesNeverDeleted,
	},
	{
		Name: "detach-before-owner-delete", What: "an object named as owner in a detach step is deleted only after that detach",
		Why:   "the garbage collector deletes what an owner leaves behind the moment the owner goes: the incident",
		check: detachBeforeOwnerDelete,
	},
	{
		Name: "namespaces-after-detaches", What: "no namespace is deleted before every detach is done",
		Why:   "a namespace takes everything in it; a detach still to come may be of something the deleted one holds a tie to",
		check: namespacesAfterDetaches,
	},
	{
		Name: "retain-protected-volumes-first", What: "only protected PersistentVolumes are retained, and before the first delete",
		Why:   "a claim deleted first lets its volume follow the reclaim policy: Delete destroys the data",
		check: retainFirst,
	},
	{
		Name: "webhooks-before-writes", What: "every webhook configuration is deleted before the first patch or delete of anything else",
		Why:   "a fail-closed webhook whose backend the teardown removes would refuse every later write it matches",
		check: webhooksFirst,
	},
	{
		Name: "crd-after-its-objects", What: "no step acts on objects of a group after that group's CRD is deleted",
		Why:   "deleting a CRD deletes every instance cluster-wide; instances with finalizers would hang without their controller",
		check: crdAfterObjects,
	},
	{
		Name: "roles-before-bindings", What: "in each phase, every role delete comes in an earlier wave than every binding delete",
		Why:   "a role is KubeSphere's because KubeSphere's bindings use it: an apply killed between the two must find that evidence again when it resumes",
		check: rolesBeforeBindings,
	},
	{
		Name: "cascade-within-plan", What: "a delete's cascade reaches no protected object and no namespace the plan does not delete itself",
		Why:   "what Kubernetes deletes with a target is deleted as surely as the target: the plan must show it, and it must be the footprint's",
		check: cascadeWithinPlan,
	},
}

// RulesMarkdown is the rules as the table of docs/safety-model.md.
func RulesMarkdown() string {
	var b strings.Builder
	b.WriteString("| rule | requires | why |\n|---|---|---|\n")
	for _, r := range Rules {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r.Name, r.What, r.Why)
	}
	return b.String()
}

func validateStage(st *api.Stage) error {
	v := newView(st)
	var errs []string
	for _, r := range Rules {
		for _, p := range r.check(v) {
			errs = append(errs, "["+r.Name+"] "+p)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("plan breaks its safety rules:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// view is what the rules read of a stage, worked out once.
type view struct {
	st        *api.Stage
	protected map[string]api.ObjectRef
	// detachOf: owner UID -> index of the last detach naming it;
	// lastDetach the index of the last detach.
	detachOf   map[string]int
	lastDetach int
}

func newView(st *api.Stage) *view {
	v := &view{st: st, protected: map[string]api.ObjectRef{}, detachOf: map[string]int{}, lastDetach: -1}
	for _, r := range st.Protected {
		v.protected[r.UID] = r
	}
	for i, s := range st.Steps {
		if s.Action == api.ActionPatch && s.Remove != nil && (len(s.Remove.OwnerReferences) > 0 || v.protected[s.Target.UID].UID != "") {
			v.lastDetach = i
			for _, uid := range s.Remove.OwnerReferences {
				v.detachOf[uid] = i
			}
		}
	}
	return v
}

func (v *view) problem(i int, format string, args ...any) string {
	return fmt.Sprintf("step %d (%s): %s", i, v.st.Steps[i].ID, fmt.Sprintf(format, args...))
}

func deletes(s api.Step) bool {
	return s.Action == api.ActionDelete || s.Action == api.ActionHelmUninstall
}

func isWebhook(t api.ObjectRef) bool {
	return t.Kind == "ValidatingWebhookConfiguration" || t.Kind == "MutatingWebhookConfiguration"
}

// disarms: webhooks and APIServices go before anything else is written.
func disarms(t api.ObjectRef) bool { return isWebhook(t) || t.Kind == "APIService" }

// first returns the index of the first step that matches, or -1.
func (v *view) first(match func(api.Step) bool) int {
	for i, s := range v.st.Steps {
		if match(s) {
			return i
		}
	}
	return -1
}

func phasesInOrder(v *view) []string {
	rank := map[api.Phase]int{}
	for i, r := range Table {
		rank[r.Phase] = i
	}
	var out []string
	prev := -1
	for i, s := range v.st.Steps {
		r, ok := rank[s.Phase]
		switch {
		case !ok:
			out = append(out, v.problem(i, "unknown phase %q", s.Phase))
			continue
		case r < prev:
			out = append(out, v.problem(i, "phase %s after a later phase", s.Phase))
		}
		prev = r
	}
	return out
}

var knownActions = map[api.Action]bool{
	api.ActionScale: true, api.ActionPatch: true, api.ActionRetain: true, api.ActionFinalize: true, api.ActionDelete: true,
	api.ActionHelmUninstall: true, api.ActionWait: true, api.ActionVerify: true,
}

func knownSteps(v *view) []string {
	var out []string
	seen := map[string]bool{}
	for i, s := range v.st.Steps {
		if seen[s.ID] {
			out = append(out, v.problem(i, "duplicate step id"))
		}
		seen[s.ID] = true
		if !knownActions[s.Action] {
			out = append(out, v.problem(i, "unknown action %q (a plan made by a newer ks-clean?)", s.Action))
		}
	}
	return out
}

func protectedNeverDeleted(v *view) []string {
	var out []string
	for i, s := range v.st.Steps {
		if _, ok := v.protected[s.Target.UID]; ok && s.Target.UID != "" && deletes(s) {
			out = append(out, v.problem(i, "deletes protected %s", s.Target))
		}
	}
	return out
}

func kubernetesNamespacesNeverDeleted(v *view) []string {
	var out []string
	for i, s := range v.st.Steps {
		if t := s.Target; deletes(s) && t.Kind == "Namespace" && t.Group() == "" && api.KubernetesNamespaces[t.Name] {
			out = append(out, v.problem(i, "deletes Kubernetes namespace %s", t.Name))
		}
	}
	return out
}

func detachBeforeOwnerDelete(v *view) []string {
	var out []string
	for i, s := range v.st.Steps {
		if j, ok := v.detachOf[s.Target.UID]; ok && deletes(s) && j > i {
			out = append(out, v.problem(i, "deletes %s, which owns a protected object, before that object is detached at step %d", s.Target, j))
		}
	}
	return out
}

func namespacesAfterDetaches(v *view) []string {
	var out []string
	for i, s := range v.st.Steps {
		if deletes(s) && s.Target.Kind == "Namespace" && v.lastDetach > i {
			out = append(out, v.problem(i, "deletes namespace %s before every detach is done", s.Target.Name))
		}
	}
	return out
}

func rolesBeforeBindings(v *view) []string {
	var out []string
	lastRole := map[api.Phase]int{} // the highest wave of a role delete
	for _, s := range v.st.Steps {
		if deletes(s) && (s.Target.Kind == "Role" || s.Target.Kind == "ClusterRole") {
			if w, ok := lastRole[s.Phase]; !ok || s.Wave > w {
				lastRole[s.Phase] = s.Wave
			}
		}
	}
	for i, s := range v.st.Steps {
		if !deletes(s) || (s.Target.Kind != "RoleBinding" && s.Target.Kind != "ClusterRoleBinding") {
			continue
		}
		if w, ok := lastRole[s.Phase]; ok && s.Wave <= w {
			out = append(out, v.problem(i, "deletes %s in wave %d, not after the roles of phase %s (wave %d)", s.Target, s.Wave, s.Phase, w))
		}
	}
	return out
}

func retainFirst(v *view) []string {
	var out []string
	firstDelete := v.first(func(s api.Step) bool { return deletes(s) && !disarms(s.Target) })
	for i, s := range v.st.Steps {
		if s.Action != api.ActionRetain {
			continue
		}
		if t := s.Target; t.Kind != "PersistentVolume" || v.protected[t.UID].UID == "" {
			out = append(out, v.problem(i, "retains %s, which is not a protected PersistentVolume", t))
		}
		if firstDelete >= 0 && firstDelete < i {
			out = append(out, v.problem(i, "retains %s after step %d may already have deleted its claim", s.Target, firstDelete))
		}
	}
	return out
}

func webhooksFirst(v *view) []string {
	var out []string
	firstWrite := v.first(func(s api.Step) bool {
		return (s.Action == api.ActionPatch || s.Action == api.ActionRetain || deletes(s)) && !disarms(s.Target)
	})
	for i, s := range v.st.Steps {
		if isWebhook(s.Target) && s.Action == api.ActionDelete && firstWrite >= 0 && firstWrite < i {
			out = append(out, v.problem(i, "deletes webhook %s after step %d already wrote", s.Target.Name, firstWrite))
		}
	}
	return out
}

func crdAfterObjects(v *view) []string {
	crdAt := map[string]int{}
	for i, s := range v.st.Steps {
		if s.Action == api.ActionDelete && s.Target.Kind == "CustomResourceDefinition" {
			if _, g, ok := strings.Cut(s.Target.Name, "."); ok {
				if _, dup := crdAt[g]; !dup {
					crdAt[g] = i
				}
			}
		}
	}
	var out []string
	for i, s := range v.st.Steps {
		if j, ok := crdAt[s.Target.Group()]; ok && s.Target.Kind != "CustomResourceDefinition" && s.Action != api.ActionVerify && s.Action != api.ActionWait && i > j {
			out = append(out, v.problem(i, "acts on %s after its CRD is deleted at step %d", s.Target, j))
		}
	}
	return out
}

func cascadeWithinPlan(v *view) []string {
	var out []string
	for i, s := range v.st.Steps {
		if s.Cascade == nil {
			continue
		}
		for _, r := range s.Cascade.To {
			switch {
			case v.protected[r.UID].UID != "":
				out = append(out, v.problem(i, "deleting %s takes protected %s with it", s.Target, r))
			case r.Kind == "Namespace" && r.Group() == "":
				out = append(out, v.problem(i, "deleting %s takes namespace %s with it, which the plan does not delete", s.Target, r.Name))
			}
		}
	}
	return out
}

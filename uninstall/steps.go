package uninstall

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/go-openapi/jsonpointer"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/pager"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
	"github.com/ks-clean/ks-clean/internal/kube"
)

// errStale marks a patch whose test operations failed: the object changed
// since it was read. The step is tried again from a fresh read.
var errStale = errors.New("changed since it was read")

// retriable: transient API trouble, or a patch to redo from a fresh read.
func retriable(err error) bool { return kube.Retriable(err) || errors.Is(err, errStale) }

func (x *executor) ri(s *api.Step) dynamic.ResourceInterface {
	r := x.targets[s.ID]
	if r.namespaced {
		return x.Clients.Dynamic.Resource(r.gvr).Namespace(s.Target.Namespace)
	}
	return x.Clients.Dynamic.Resource(r.gvr)
}

func (x *executor) dryRun() []string {
	if x.DryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

// runStep executes one step and records its outcome.
func (x *executor) runStep(s *api.Step) (string, string) {
	if x.journal != nil && x.journal.Done(s.ID) {
		return StatusSkipped, "done in an earlier run"
	}
	status, detail := x.exec(s)
	x.record(s, status, detail)
	return status, detail
}

func (x *executor) exec(s *api.Step) (string, string) {
	if r := x.targets[s.ID]; r != nil && r.gone {
		return StatusSkipped, "its type no longer exists, so neither does it"
	}
	var o outcome
	err := kube.RetryIf(x.writeCtx, retriable, func() error {
		var err error
		switch s.Action {
		case api.ActionScale:
			o, err = x.scale(s)
		case api.ActionPatch:
			o, err = x.patch(s)
		case api.ActionRetain:
			o, err = x.retain(s)
		case api.ActionFinalize:
			o, err = x.finalize(s)
		case api.ActionDelete:
			o, err = x.delete(s)
		case api.ActionHelmUninstall:
			o, err = x.helmUninstall(s)
		case api.ActionVerify:
			o = done("checked before the first write")
		default:
			err = fmt.Errorf("unknown action %q", s.Action)
		}
		return err
	})
	switch {
	case err == nil:
		return o.status, o.detail
	case errors.Is(err, journal.ErrRecreated):
		return StatusSkipped, err.Error()
	case apierrors.IsNotFound(err):
		return StatusSkipped, "already gone"
	case x.DryRun && x.blockedInDryRun(err) != "":
		return StatusSkipped, x.blockedInDryRun(err)
	default:
		return StatusFailed, fmt.Sprintf("%s %s: %v", s.Action, s.Target, err)
	}
}

// outcome is how a step that did not fail ended: done, or skipped (nothing
// to do), and what happened.
type outcome struct{ status, detail string }

func done(detail string) outcome    { return outcome{StatusDone, detail} }
func skipped(detail string) outcome { return outcome{StatusSkipped, detail} }

// scale sets replicas to 0, guarded by the UID the plan recorded.
func (x *executor) scale(s *api.Step) (outcome, error) {
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": s.Target.UID},
		{"op": "replace", "path": "/spec/replicas", "value": 0},
	}
	if err := x.jsonPatch(s, ops); err != nil {
		return outcome{}, err
	}
	return done("replicas 0"), nil
}

// retain switches a PersistentVolume's reclaim policy to Retain, guarded by
// the UID the plan recorded, so its data outlives the claim.
func (x *executor) retain(s *api.Step) (outcome, error) {
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": s.Target.UID},
		{"op": "add", "path": "/spec/persistentVolumeReclaimPolicy", "value": "Retain"},
	}
	if err := x.jsonPatch(s, ops); err != nil {
		return outcome{}, err
	}
	claim := ""
	if s.Claim != nil {
		claim = fmt.Sprintf(", for claim %s/%s", s.Claim.Namespace, s.Claim.Name)
	}
	return done(fmt.Sprintf("reclaim policy %s -> Retain%s", s.ReclaimPolicy, claim)), nil
}

// patch removes exactly what the step lists. It starts from the object as
// the backup read it (or reads it, on a retry or a resumed run) and sends a
// JSON patch whose test operations pin what it read, so a change made
// meanwhile fails the patch (and the retry re-reads) instead of being
// overwritten.
func (x *executor) patch(s *api.Step) (outcome, error) {
	cur := x.takeKnown(s.Target.UID)
	if cur == nil {
		var err error
		if cur, err = x.ri(s).Get(x.writeCtx, s.Target.Name, metav1.GetOptions{}); err != nil {
			return outcome{}, err
		}
	}
	if string(cur.GetUID()) != s.Target.UID {
		return outcome{}, journal.ErrRecreated
	}
	rm := s.Remove
	if rm == nil {
		rm = &api.Removal{}
	}
	if isNamespace(s) && terminatingUnfinalized(cur) {
		// Without the kubernetes finalizer, an update that leaves no
		// metadata finalizer removes a Terminating namespace at once, its
		// content left in etcd. KubeSphere's own gets the finalizer back
		// (the namespace controller empties it again); a users' namespace
		// is not written to where the patch would remove it.
		if !x.protects(s.Target.UID) {
			if _, _, err := x.ensureFinalizer(s); err != nil {
				return outcome{}, err
			}
			var err error
			if cur, err = x.ri(s).Get(x.writeCtx, s.Target.Name, metav1.GetOptions{}); err != nil {
				return outcome{}, err
			}
		} else if keeps := slices.DeleteFunc(slices.Clone(cur.GetFinalizers()), func(f string) bool { return slices.Contains(rm.Finalizers, f) }); len(keeps) == 0 {
			return outcome{}, &UnfinalizedError{Namespace: s.Target.Name}
		}
	}
	ops := []map[string]any{{"op": "test", "path": "/metadata/uid", "value": s.Target.UID}}
	var did, added []string
	if len(s.Annotate) > 0 {
		ann := cur.GetAnnotations()
		if ann == nil {
			ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{}})
		}
		for _, k := range slices.Sorted(maps.Keys(s.Annotate)) {
			if v, ok := ann[k]; ok && v == s.Annotate[k] {
				continue
			}
			ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations/" + jsonpointer.Escape(k), "value": s.Annotate[k]})
			added = append(added, "annotation "+k+"="+s.Annotate[k])
		}
	}
	if len(rm.OwnerReferences) > 0 {
		drop := sets.New(rm.OwnerReferences...)
		refs := cur.GetOwnerReferences()
		var keep []metav1.OwnerReference
		for _, r := range refs {
			if !drop.Has(string(r.UID)) {
				keep = append(keep, r)
			}
		}
		if len(keep) < len(refs) {
			ops = append(ops, map[string]any{"op": "test", "path": "/metadata/ownerReferences", "value": refs})
			if len(keep) == 0 {
				ops = append(ops, map[string]any{"op": "remove", "path": "/metadata/ownerReferences"})
			} else {
				ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/ownerReferences", "value": keep})
			}
			did = append(did, fmt.Sprintf("%d ownerReferences", len(refs)-len(keep)))
		}
	}
	if len(rm.Finalizers) > 0 {
		drop := sets.New(rm.Finalizers...)
		fins := cur.GetFinalizers()
		keep := []string{}
		for _, f := range fins {
			if !drop.Has(f) {
				keep = append(keep, f)
			}
		}
		if len(keep) < len(fins) {
			ops = append(ops,
				map[string]any{"op": "test", "path": "/metadata/finalizers", "value": fins},
				map[string]any{"op": "replace", "path": "/metadata/finalizers", "value": keep})
			did = append(did, "finalizers "+strings.Join(rm.Finalizers, ","))
		}
	}
	labels := cur.GetLabels()
	for _, k := range rm.Labels {
		if v, ok := labels[k]; ok {
			p := "/metadata/labels/" + jsonpointer.Escape(k)
			ops = append(ops, map[string]any{"op": "test", "path": p, "value": v}, map[string]any{"op": "remove", "path": p})
			did = append(did, "label "+k)
		}
	}
	if len(did)+len(added) == 0 {
		return skipped("nothing left to change"), nil
	}
	if err := x.jsonPatch(s, ops); err != nil {
		return outcome{}, err
	}
	var msg []string
	if len(did) > 0 {
		msg = append(msg, "removed "+strings.Join(did, ", "))
	}
	if len(added) > 0 {
		msg = append(msg, "set "+strings.Join(added, ", "))
	}
	return done(strings.Join(msg, "; ")), nil
}

func (x *executor) jsonPatch(s *api.Step, ops []map[string]any) error {
	body, _ := json.Marshal(ops)
	_, err := x.ri(s).Patch(x.writeCtx, s.Target.Name, types.JSONPatchType, body, metav1.PatchOptions{DryRun: x.dryRun()})
	if err == nil {
		x.written()
		return nil
	}
	// A failed test operation: the object changed since it was read (or was
	// re-created). Re-read and decide again.
	if apierrors.IsInvalid(err) || apierrors.IsConflict(err) || strings.Contains(err.Error(), "testing value") || strings.Contains(err.Error(), "test operation") {
		cur, gerr := x.ri(s).Get(x.writeCtx, s.Target.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if string(cur.GetUID()) != s.Target.UID {
			return journal.ErrRecreated
		}
		return fmt.Errorf("%w: %v", errStale, err) // exec tries again from a fresh read
	}
	return err
}

// delete deletes with the UID precondition: an object re-created since
// planning is another object and is left alone.
func (x *executor) delete(s *api.Step) (outcome, error) {
	if isNamespace(s) {
		if _, _, err := x.ensureFinalizer(s); err != nil {
			return outcome{}, err
		}
	}
	uid := types.UID(s.Target.UID)
	bg := metav1.DeletePropagationBackground
	err := x.ri(s).Delete(x.writeCtx, s.Target.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg, DryRun: x.dryRun(),
	})
	if apierrors.IsConflict(err) {
		// Either the UID precondition failed (another object now has the
		// name) or the object is already being deleted (a Terminating
		// namespace answers a delete with a conflict).
		cur, gerr := x.ri(s).Get(x.writeCtx, s.Target.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr):
			return skipped("already gone"), nil
		case gerr != nil:
			return outcome{}, gerr
		case string(cur.GetUID()) != s.Target.UID:
			return outcome{}, journal.ErrRecreated
		case cur.GetDeletionTimestamp() != nil:
			return done("already being deleted"), nil
		}
		return outcome{}, err
	}
	if err != nil {
		return outcome{}, err
	}
	x.written()
	return done("deleted"), nil
}

func (x *executor) stripFinalizers(s *api.Step) {
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": s.Target.UID},
		{"op": "replace", "path": "/metadata/finalizers", "value": []string{}},
	}
	if isNamespace(s) {
		// Only with the kubernetes finalizer in place, and the patch
		// testing that it still is: without it the patch would remove
		// the namespace and leave its content in etcd.
		ns, _, err := x.ensureFinalizer(s)
		if err != nil {
			return
		}
		ops = append(ops, map[string]any{"op": "test", "path": "/spec/finalizers", "value": ns.Spec.Finalizers})
	}
	_ = x.jsonPatch(s, ops)
	if !isNamespace(s) {
		return
	}
	gvrs, err := x.namespacedResources(x.writeCtx)
	if err != nil {
		return
	}
	for _, gvr := range gvrs {
		ri := x.Clients.Dynamic.Resource(gvr).Namespace(s.Target.Name)
		p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return ri.List(ctx, o) })
		_ = p.EachListItem(x.writeCtx, metav1.ListOptions{}, func(obj runtime.Object) error {
			item := obj.(*unstructured.Unstructured)
			if len(item.GetFinalizers()) == 0 {
				return nil
			}
			body, _ := json.Marshal([]map[string]any{
				{"op": "test", "path": "/metadata/uid", "value": string(item.GetUID())},
				{"op": "replace", "path": "/metadata/finalizers", "value": []string{}},
			})
			if _, err := ri.Patch(x.writeCtx, item.GetName(), types.JSONPatchType, body, metav1.PatchOptions{}); err == nil {
				x.written()
			}
			return nil
		})
	}
}

// blockedInDryRun explains a dry-run refusal by a webhook that the plan
// deletes earlier: a dry run cannot delete it, so the refusal says nothing
// about the real run.
func (x *executor) blockedInDryRun(err error) string {
	msg := err.Error()
	i := strings.Index(msg, `failed calling webhook "`)
	if i < 0 {
		return ""
	}
	name := msg[i+len(`failed calling webhook "`):]
	name = name[:strings.IndexByte(name, '"')]
	if cfg := x.plannedHooks[name]; cfg != "" {
		return fmt.Sprintf("would run once webhook %s (%s) is deleted, which the plan does earlier; a dry run cannot delete it", name, cfg)
	}
	return ""
}

// hooksDeletedByPlan maps the webhooks inside configurations the plan
// deletes to their configuration's name.
func (a *stage) hooksDeletedByPlan(ctx context.Context) map[string]string {
	deleted := map[string]bool{}
	for _, s := range a.Plan.Steps {
		if s.Action == api.ActionDelete && strings.HasSuffix(s.Target.Kind, "WebhookConfiguration") {
			deleted[s.Target.UID] = true
		}
	}
	out := map[string]string{}
	adm := a.Clients.Kube.AdmissionregistrationV1()
	if l, err := adm.ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{}); err == nil {
		for _, c := range l.Items {
			for _, h := range c.Webhooks {
				if deleted[string(c.UID)] {
					out[h.Name] = c.Name
				}
			}
		}
	}
	if l, err := adm.MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{}); err == nil {
		for _, c := range l.Items {
			for _, h := range c.Webhooks {
				if deleted[string(c.UID)] {
					out[h.Name] = c.Name
				}
			}
		}
	}
	return out
}

// podsOf counts the pods a workload's selector matches, terminating ones
// included: a pod in its grace period still runs its controller.
func (x *executor) podsOf(ctx context.Context, w *unstructured.Unstructured) (int, error) {
	raw, found, _ := unstructured.NestedMap(w.Object, "spec", "selector")
	if !found {
		return 0, nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return 0, err
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return 0, err
	}
	pods, err := x.Clients.Kube.CoreV1().Pods(w.GetNamespace()).List(ctx, metav1.ListOptions{LabelSelector: sel.String(), Limit: 1})
	if err != nil {
		return 0, err
	}
	return len(pods.Items), nil
}

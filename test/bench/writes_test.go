package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/pager"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/scan/inventory"
	"github.com/ks-clean/ks-clean/uninstall"
)

// write is one write of a plan, resolved and with its body ready: the floor
// and the baseline issue exactly these, in the plan's phase order.
type write struct {
	step       *api.Step
	gvr        schema.GroupVersionResource
	namespaced bool
	selector   string // scale: the workload's pod selector
	patch      []byte // JSON patch (scale and patch steps); nil for delete
}

// phaseWrites are one phase's writes grouped by object: an object's writes
// (strip finalizers, then delete) run in order, objects concurrently.
type phaseWrites struct {
	phase  api.Phase
	groups [][]write
	wait   bool // the plan waits for this phase's deletions / scale-downs
}

// compile turns a plan into its writes, using the plan-time inventory for
// what a patch must send. Knowing the objects' state for free is generous to
// the floor and the baseline: ks-clean re-reads each object it patches.
func compile(p *api.Stage, inv *inventory.Inventory) ([]phaseWrites, int, error) {
	var out []phaseWrites
	n := 0
	for _, ph := range api.Phases {
		pw := phaseWrites{phase: ph}
		byObj := map[string]int{}
		for i := range p.Steps {
			s := &p.Steps[i]
			if s.Phase != ph {
				continue
			}
			switch s.Action {
			case api.ActionVerify:
				continue
			case api.ActionWait:
				pw.wait = true
				continue
			case api.ActionHelmUninstall:
				return nil, 0, fmt.Errorf("step %s: the floor has no Helm uninstall; the ks33-host fixture has no release", s.ID)
			}
			o := inv.ByUID(types.UID(s.Target.UID))
			if o == nil {
				return nil, 0, fmt.Errorf("step %s: %s not in the plan-time inventory", s.ID, s.Target)
			}
			w := write{step: s, gvr: o.Resource.GVR, namespaced: o.Resource.Namespaced}
			var err error
			switch s.Action {
			case api.ActionScale:
				w.patch, _ = json.Marshal([]map[string]any{
					{"op": "test", "path": "/metadata/uid", "value": s.Target.UID},
					{"op": "replace", "path": "/spec/replicas", "value": 0},
				})
				if o.Content != nil {
					if sel, err := podSelector(o.Content.Object); err == nil {
						w.selector = sel
					}
				}
			case api.ActionPatch:
				if w.patch, err = removalPatch(o, s); err != nil {
					return nil, 0, err
				}
				if w.patch == nil {
					continue // nothing to remove: ks-clean skips it too
				}
			case api.ActionDelete:
			default:
				return nil, 0, fmt.Errorf("step %s: unknown action %q", s.ID, s.Action)
			}
			key := s.Target.String() + "/" + s.Target.UID
			if i, ok := byObj[key]; ok {
				pw.groups[i] = append(pw.groups[i], w)
			} else {
				byObj[key] = len(pw.groups)
				pw.groups = append(pw.groups, []write{w})
			}
			n++
		}
		if len(pw.groups) > 0 {
			out = append(out, pw)
		}
	}
	return out, n, nil
}

// removalPatch is the JSON patch ks-clean sends for a patch step (the same
// operations, computed from the plan-time object instead of a fresh read).
func removalPatch(o *inventory.Object, s *api.Step) ([]byte, error) {
	rm := s.Remove
	if rm == nil {
		return nil, nil
	}
	ops := []map[string]any{{"op": "test", "path": "/metadata/uid", "value": s.Target.UID}}
	did := false
	if len(rm.OwnerReferences) > 0 {
		drop := setOf(rm.OwnerReferences)
		var keep []metav1.OwnerReference
		refs := o.GetOwnerReferences()
		for _, r := range refs {
			if !drop[string(r.UID)] {
				keep = append(keep, r)
			}
		}
		if len(keep) < len(refs) {
			if len(keep) == 0 {
				ops = append(ops, map[string]any{"op": "remove", "path": "/metadata/ownerReferences"})
			} else {
				ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/ownerReferences", "value": keep})
			}
			did = true
		}
	}
	if len(rm.Finalizers) > 0 {
		drop := setOf(rm.Finalizers)
		keep := []string{}
		fins := o.GetFinalizers()
		for _, f := range fins {
			if !drop[f] {
				keep = append(keep, f)
			}
		}
		if len(keep) < len(fins) {
			ops = append(ops, map[string]any{"op": "replace", "path": "/metadata/finalizers", "value": keep})
			did = true
		}
	}
	labels := o.GetLabels()
	for _, k := range rm.Labels {
		if _, ok := labels[k]; ok {
			k = strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
			ops = append(ops, map[string]any{"op": "remove", "path": "/metadata/labels/" + k})
			did = true
		}
	}
	if !did {
		return nil, nil
	}
	return json.Marshal(ops)
}

func setOf(ss []string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func podSelector(obj map[string]any) (string, error) {
	spec, _ := obj["spec"].(map[string]any)
	raw, _ := spec["selector"].(map[string]any)
	if raw == nil {
		return "", fmt.Errorf("no selector")
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return "", err
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return "", err
	}
	return sel.String(), nil
}

// runFloor issues the writes directly with client-go: the same clients as
// ks-clean (kube.New, no client-side rate limit), the given concurrency, phases in order,
// and a wait after each phase the plan waits on. Nothing else: no preflight,
// backup, per-object read, journal, lease or verification. The wait lists
// each type once per poll instead of reading each object.
func runFloor(ctx context.Context, c *kube.Clients, phases []phaseWrites, concurrency int) error {
	for _, pw := range phases {
		g := errgroup.Group{}
		g.SetLimit(concurrency)
		for _, grp := range pw.groups {
			g.Go(func() error {
				for _, w := range grp {
					if err := kube.Retry(ctx, func() error { return floorWrite(ctx, c, w) }); err != nil {
						return fmt.Errorf("%s %s: %w", w.step.Action, w.step.Target, err)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("phase %s: %w", pw.phase, err)
		}
		if pw.wait {
			if err := waitGone(ctx, c, pw, 10*time.Minute); err != nil {
				return fmt.Errorf("phase %s: %w", pw.phase, err)
			}
		}
	}
	return nil
}

func floorWrite(ctx context.Context, c *kube.Clients, w write) error {
	ri := c.Dynamic.Resource(w.gvr)
	var err error
	if w.patch != nil {
		if w.namespaced {
			_, err = ri.Namespace(w.step.Target.Namespace).Patch(ctx, w.step.Target.Name, types.JSONPatchType, w.patch, metav1.PatchOptions{})
		} else {
			_, err = ri.Patch(ctx, w.step.Target.Name, types.JSONPatchType, w.patch, metav1.PatchOptions{})
		}
	} else {
		uid := types.UID(w.step.Target.UID)
		bg := metav1.DeletePropagationBackground
		opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg}
		if w.namespaced {
			err = ri.Namespace(w.step.Target.Namespace).Delete(ctx, w.step.Target.Name, opts)
		} else {
			err = ri.Delete(ctx, w.step.Target.Name, opts)
		}
	}
	if apierrors.IsNotFound(err) {
		return nil // gone already (its namespace or owner took it)
	}
	return err
}

// waitGone polls until the phase's delete targets are gone (one paginated
// metadata list per type per poll) and its scaled workloads have no pods.
func waitGone(ctx context.Context, c *kube.Clients, pw phaseWrites, timeout time.Duration) error {
	pending := map[schema.GroupVersionResource]map[types.UID]bool{}
	var scaled []write
	for _, grp := range pw.groups {
		for _, w := range grp {
			switch w.step.Action {
			case api.ActionDelete:
				if pending[w.gvr] == nil {
					pending[w.gvr] = map[types.UID]bool{}
				}
				pending[w.gvr][types.UID(w.step.Target.UID)] = true
			case api.ActionScale:
				scaled = append(scaled, w)
			}
		}
	}
	deadline := time.Now().Add(timeout)
	// Polled as apply's waits are: soon, then less often, up to 500 ms.
	next := uninstall.PhaseBackoff().DelayFunc()
	for {
		left := 0
		for gvr, uids := range pending {
			present := map[types.UID]bool{}
			p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return c.Metadata.Resource(gvr).List(ctx, o)
			})
			err := p.EachListItem(ctx, metav1.ListOptions{Limit: 500}, func(obj runtime.Object) error {
				if m, ok := obj.(metav1.Object); ok && uids[m.GetUID()] {
					present[m.GetUID()] = true
				}
				return nil
			})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("wait: list %s: %w", gvr.GroupResource(), err)
			}
			pending[gvr] = present
			left += len(present)
		}
		var stillScaled []write
		for _, w := range scaled {
			pods, err := c.Kube.CoreV1().Pods(w.step.Target.Namespace).List(ctx, metav1.ListOptions{LabelSelector: w.selector, Limit: 1})
			if err != nil || len(pods.Items) > 0 {
				stillScaled = append(stillScaled, w)
			}
		}
		scaled = stillScaled
		if left == 0 && len(scaled) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d objects still present after %s", left+len(scaled), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(next()):
		}
	}
}

// baselineResult is what the kubectl loop did.
type baselineResult struct {
	Processes, Failed int
	NotFound          int // the object was already gone
	MaxRSSKiB         int64
	FirstError        string
}

// runBaseline issues the same writes the way ks-installer's
// kubesphere-delete.sh does: one kubectl process per object write, one
// after another, `kubectl delete` waiting for each object to be gone (its
// default), a failing command noted and passed over (the script sends
// errors to /dev/null). kubectl's discovery cache is kept between processes,
// as on an operator's machine.
func runBaseline(ctx context.Context, kubectl, kubeconfig, cacheDir string, phases []phaseWrites) baselineResult {
	var r baselineResult
	for _, pw := range phases {
		for _, grp := range pw.groups {
			for _, w := range grp {
				res := w.gvr.Resource
				if w.gvr.Group != "" {
					res = w.gvr.Resource + "." + w.gvr.Version + "." + w.gvr.Group
				}
				args := []string{"--kubeconfig", kubeconfig, "--cache-dir", cacheDir}
				if w.patch != nil {
					args = append(args, "patch", res, w.step.Target.Name, "--type=json", "-p", string(w.patch))
				} else {
					args = append(args, "delete", res, w.step.Target.Name)
				}
				if w.namespaced {
					args = append(args, "-n", w.step.Target.Namespace)
				}
				cmd := exec.CommandContext(ctx, kubectl, args...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				r.Processes++
				if cmd.ProcessState != nil {
					if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > r.MaxRSSKiB {
						r.MaxRSSKiB = ru.Maxrss
					}
				}
				if err != nil && strings.Contains(stderr.String(), "NotFound") {
					r.NotFound++
				} else if err != nil {
					r.Failed++
					if r.FirstError == "" {
						r.FirstError = strings.TrimSpace("kubectl " + strings.Join(args[4:], " ") + ": " + stderr.String())
					}
				}
			}
		}
	}
	return r
}

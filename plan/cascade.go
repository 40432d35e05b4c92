package plan

import (
	"sort"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// Cascades works out, for every delete step of a stage, what Kubernetes
// takes with it once the plan's detaches are done: everything inside a
// deleted namespace (the namespace controller), and every object whose
// owners are all deleted or absent (the garbage collector, transitively).
// It reads only the scanned inventory, so apply's drift check can run it
// again on a fresh scan before the first write.
func Cascades(fp *footprint.Footprint, st *api.Stage) map[string]*api.Cascade {
	inv := fp.Inv
	// Edges the plan's detach steps cut.
	cut := map[types.UID]map[types.UID]bool{}
	deleted := map[types.UID]string{} // UID -> id of the step that deletes it
	deletedNS := map[string]string{}
	for _, s := range st.Steps {
		switch {
		case s.Action == api.ActionPatch && s.Remove != nil && len(s.Remove.OwnerReferences) > 0:
			m := map[types.UID]bool{}
			for _, o := range s.Remove.OwnerReferences {
				m[types.UID(o)] = true
			}
			cut[types.UID(s.Target.UID)] = m
		case s.Action == api.ActionDelete:
			deleted[types.UID(s.Target.UID)] = s.ID
			if s.Target.Kind == "Namespace" && s.Target.Group() == "" {
				deletedNS[s.Target.Name] = s.ID
			}
		}
	}
	out := map[string]*api.Cascade{}
	for id := range deleted {
		out[deleted[id]] = &api.Cascade{}
	}
	// The namespace controller: what a deleted namespace holds.
	by := map[types.UID]string{} // UID -> step that takes it
	for _, o := range inv.Objects {
		if id, ok := deletedNS[o.GetNamespace()]; ok {
			if _, own := deleted[o.GetUID()]; !own {
				by[o.GetUID()] = id
				out[id].Objects++
			}
		}
	}
	// The garbage collector: an object goes once every owner it still
	// names after the detaches is gone (deleted, taken, or absent).
	gone := func(uid types.UID) bool {
		_, d := deleted[uid]
		_, t := by[uid]
		return d || t || inv.ByUID(uid) == nil
	}
	for changed := true; changed; {
		changed = false
		for _, o := range inv.Objects {
			uid := o.GetUID()
			if _, d := deleted[uid]; d {
				continue
			}
			if _, t := by[uid]; t {
				continue
			}
			var taker string
			all := true
			for _, ref := range o.GetOwnerReferences() {
				if cut[uid][ref.UID] {
					continue
				}
				if !gone(ref.UID) {
					all = false
					break
				}
				if id, ok := deleted[ref.UID]; ok && taker == "" {
					taker = id
				} else if id, ok := by[ref.UID]; ok && taker == "" {
					taker = id
				}
			}
			if !all || taker == "" {
				continue // no owner, or one that stays, or only absent ones (not this plan's doing)
			}
			by[uid] = taker
			out[taker].Objects++
			out[taker].To = append(out[taker].To, idRef(o))
			changed = true
		}
	}
	for _, c := range out {
		sort.Slice(c.To, func(i, j int) bool { return c.To[i].String() < c.To[j].String() })
	}
	return out
}

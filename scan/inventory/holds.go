package inventory

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Tally counts what a namespace holds, by the kinds users care about.
type Tally struct{ PVCs, Secrets, ConfigMaps, Workloads, Other int }

func (t Tally) String() string {
	return fmt.Sprintf("%d PVCs, %d Secrets, %d ConfigMaps, %d workloads, %d other objects", t.PVCs, t.Secrets, t.ConfigMaps, t.Workloads, t.Other)
}

// Holds tallies every namespace's content, as listed (counted once, when
// the inventory is indexed). The map is shared: read it, never write it.
func (inv *Inventory) Holds() map[string]Tally { return inv.holds }

func tally(objs []*Object) map[string]Tally {
	out := map[string]Tally{}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" {
			continue
		}
		t := out[ns]
		switch o.Resource.Kind {
		case "PersistentVolumeClaim":
			t.PVCs++
		case "Secret":
			t.Secrets++
		case "ConfigMap":
			t.ConfigMaps++
		case "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob":
			t.Workloads++
		default:
			t.Other++
		}
		out[ns] = t
	}
	return out
}

// Unfinalized reports whether a namespace lacks the `kubernetes` finalizer
// (spec.finalizers) of the namespace controller, which empties a deleted
// namespace before it goes. Such
// a namespace, once deleted, is removed without its content: the objects
// stay in etcd and come back with the next namespace of that name. (Only a
// PUT to /finalize removes it; the namespace controller does so once the
// namespace is empty, KubeSphere 4.1's post-delete hook on live ones.)
func Unfinalized(ns *Object) bool {
	if ns.Content == nil {
		return false // not read whole: nothing to tell
	}
	fins, _, _ := unstructured.NestedStringSlice(ns.Content.Object, "spec", "finalizers")
	return !slices.Contains(fins, string(corev1.FinalizerKubernetes))
}

// Count is how many objects a namespace holds.
func (t Tally) Count() int { return t.PVCs + t.Secrets + t.ConfigMaps + t.Workloads + t.Other }

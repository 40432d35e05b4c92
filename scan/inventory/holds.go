package inventory

import "fmt"

// Tally counts what a namespace holds, by the kinds users care about.
type Tally struct{ PVCs, Secrets, ConfigMaps, Workloads, Other int }

func (t Tally) String() string {
	return fmt.Sprintf("%d PVCs, %d Secrets, %d ConfigMaps, %d workloads, %d other objects", t.PVCs, t.Secrets, t.ConfigMaps, t.Workloads, t.Other)
}

// Holds tallies every namespace's content.
func (inv *Inventory) Holds() map[string]Tally {
	out := map[string]Tally{}
	for _, o := range inv.Objects {
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

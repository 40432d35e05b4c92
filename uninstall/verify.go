package uninstall

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// Verification is the check at the end.
type Verification struct {
	OK bool `json:"ok"`
	// Remaining counts KubeSphere/KubeFed objects, releases and ties left.
	Remaining        int      `json:"remaining"`
	ProtectedChecked int      `json:"protectedChecked"`
	Problems         []string `json:"problems,omitempty"`
	// AtRisk are protected objects still owned by something the plan
	// deleted: the garbage collector deletes them once nothing refuses it,
	// so the deletion guard stays in place (StageResult.GuardKept).
	AtRisk []string `json:"atRisk,omitempty"`
}

// verify rescans: success only when nothing of KubeSphere/KubeFed remains
// and every protected object is present with the UID the plan recorded, not
// being deleted, and with no owner reference into what was deleted.
func (a *stage) verify(ctx context.Context) (*Verification, error) {
	// Workspace labels left on purpose (--keep-workspace-labels) are not a
	// remnant: they tie nothing once KubeSphere is gone.
	fp, err := scan.Footprint(ctx, a.Clients, scan.Options{Footprint: footprint.Options{KeepWorkspaceLabels: true}})
	if err != nil {
		return nil, fmt.Errorf("verify (rescan): %w", err)
	}
	v := &Verification{}
	add := func(format string, args ...any) { v.Problems = append(v.Problems, fmt.Sprintf(format, args...)) }
	v.Problems = fp.Remnants(10)
	v.Remaining = len(fp.Members) + len(fp.Releases) + len(fp.Detach)

	deleted := map[types.UID]bool{}
	for _, s := range a.Plan.Steps {
		if s.Action == "delete" {
			deleted[types.UID(s.Target.UID)] = true
		}
	}
	for _, p := range a.Plan.Protected {
		v.ProtectedChecked++
		o := fp.Inv.ByUID(types.UID(p.UID))
		if o == nil {
			add("protected %s is missing or was replaced (UID %s not found)", p, p.UID)
			continue
		}
		if t := o.GetDeletionTimestamp(); t != nil {
			// Present, but Kubernetes is deleting it: as good as lost.
			add("protected %s is being deleted (since %s): count it lost unless its data is saved", p, t.UTC().Format(time.RFC3339))
			continue
		}
		for _, ref := range o.GetOwnerReferences() {
			if deleted[ref.UID] {
				add("protected %s still has an owner reference to deleted %s %s", p, ref.Kind, ref.Name)
				v.AtRisk = append(v.AtRisk, p.String())
			}
		}
	}
	v.OK = len(v.Problems) == 0
	return v, nil
}

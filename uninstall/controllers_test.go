package uninstall_test

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// With models of KubeFed's sync controller and KubeSphere's namespace
// controller running (fixture.Controllers), the plan's order keeps every
// user object: the quiesce stops both before anything else. The negative
// control drops the quiesce: with the workspace labels kept (as reinstall
// --keep-workspace-labels does), the namespace controller makes each
// namespace a dependent of its Workspace again after the detach, and
// deleting the Workspaces then takes the namespaces: the models can fail a
// wrong order, so the first case proves something. Federated objects are
// marked kubefed.io/orphan in the write that strips their finalizers; without
// the mark, the running KubeFed model deletes the Workspaces itself.
func TestModelledControllers(t *testing.T) {
	for _, tc := range []struct {
		name            string
		quiesce, orphan bool
	}{{"plan order", true, true}, {"negative control: no quiesce", false, true}, {"negative control: no quiesce, no orphan mark", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, "ks33-host")
			ctx := context.Background()
			ctrl := fixture.RunControllers(e.s)
			defer ctrl.Stop()
			so := scan.Options{Footprint: footprint.Options{KeepWorkspaceLabels: true}}
			rep, err := scan.Run(ctx, []scan.Target{{Clients: e.clients}}, so)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Build(rep, plan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.quiesce {
				st := &p.Stages[0]
				var steps []api.Step
				for _, s := range st.Steps {
					if !tc.orphan {
						s.Annotate = nil
					}
					if s.Phase != api.PhaseQuiesce {
						steps = append(steps, s)
					}
				}
				st.Steps = steps
				if err := p.Seal(); err != nil {
					t.Fatal(err)
				}
			}
			res, err := e.apply(t, p, uninstall.Options{FinalizerTimeout: 5 * time.Second, PhaseTimeout: 30 * time.Second})
			// Federated objects are marked orphan in the write that strips
			// their finalizers: a running KubeFed leaves the Workspaces.
			// Without the mark it deletes them (the model can fail).
			if n := ctrl.Count("workspace deleted"); tc.orphan != (n == 0) {
				t.Errorf("the KubeFed model deleted %d Workspaces (orphan mark: %v)", n, tc.orphan)
			}
			if tc.quiesce {
				if err != nil || !res.Verification.OK {
					t.Fatalf("apply with the controllers modelled: %v %+v", err, res)
				}
				e.assertNothingLost(t)
				return
			}
			// Without the quiesce the namespaces are owned again and go
			// with their Workspaces (the garbage collector may need a moment).
			var lost []fixture.Ref
			werr := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				lost, err = e.s.Missing(ctx, e.s.Seeded.Protected)
				return len(lost) > 0, err
			})
			if werr != nil || ctrl.Count("namespace owned again") == 0 {
				t.Fatalf("negative control: nothing lost (%v), the namespace model acted %d times: the models cannot fail a wrong order", werr, ctrl.Count("namespace owned again"))
			}
			t.Logf("without the quiesce: %d user objects lost, e.g. %v (namespace model re-owned %d times)", len(lost), lost[0], ctrl.Count("namespace owned again"))
		})
	}
}

package uninstall_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// user object: the quiesce stops both before anything else.
//
// The negative controls prove the models can fail a wrong order:
//   - No quiesce: with the workspace labels kept (as reinstall
//     --keep-workspace-labels does), the namespace controller makes each
//     namespace a dependent of its Workspace again after the detach. When
//     the Workspaces go, the garbage collector tries to delete the
//     namespaces; the deletion guard refuses it, the final check names them
//     at risk and the guard stays; a new plan detaches them and its apply
//     takes the guard over and removes it. Nothing is lost.
//   - No quiesce, no orphan mark, no guard: the federated objects are
//     deleted as they are while KubeFed runs; the KubeFed model deletes the
//     Workspaces itself and the garbage collector takes the namespaces.
func TestModelledControllers(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		quiesce, orphan, guard bool
	}{
		{"plan order", true, true, true},
		{"negative control: no quiesce", false, true, true},
		{"negative control: no quiesce, no orphan mark, no guard", false, false, false},
	} {
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
					// Without the orphan mark: the hurried teardown deletes
					// the federated objects as they are, finalizers and
					// all, while KubeFed runs. (Only stripping the mark
					// would race the model: a finalizer stripped before the
					// delete is re-added by it, or not, by timing.)
					if !tc.orphan && s.Annotate != nil {
						continue
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
			var tweak []func(*uninstall.Apply)
			if !tc.guard {
				tweak = append(tweak, uninstall.DisableGuard)
			}
			o := uninstall.Options{FinalizerTimeout: 5 * time.Second, PhaseTimeout: 30 * time.Second}
			if !tc.quiesce {
				// A real controller re-owns the detached namespaces within
				// moments; the model polls, and on a loaded machine a fast
				// apply could reach the Workspaces first. Apply waits at
				// the kubefed phase until the model has re-owned the eight
				// workspace namespaces (or 30 s), so the control is not a
				// race.
				var once sync.Once
				o.Progress = func(ev uninstall.Event) {
					if ev.Phase != api.PhaseKubeFed {
						return
					}
					once.Do(func() {
						_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
							return ctrl.Count("namespace owned again") >= 8, nil
						})
					})
				}
			}
			mark := e.cp.AuditMark()
			res, err := e.apply(t, p, o, tweak...)
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
			if ctrl.Count("namespace owned again") == 0 {
				t.Fatalf("negative control: the namespace model never acted: the models cannot fail a wrong order")
			}
			if tc.guard {
				guardHeld(t, e, mark, res, err)
				return
			}
			// The namespaces go with their Workspaces. The garbage
			// collector may need a while on a loaded machine (CI runs
			// other packages' control planes beside this one); the wait
			// ends at the first loss.
			var lost []fixture.Ref
			werr := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
				lost, err = e.s.Missing(ctx, e.s.Seeded.Protected)
				return len(lost) > 0, err
			})
			if werr != nil {
				t.Fatalf("negative control: nothing lost (%v): the models cannot fail a wrong order", werr)
			}
			t.Logf("without the quiesce, the orphan mark and the guard: %d user objects lost, e.g. %v (namespace model re-owned %d times)", len(lost), lost[0], ctrl.Count("namespace owned again"))
		})
	}
}

// guardHeld checks a run whose namespaces were owned again behind apply's
// back: the garbage collector's deletes were refused, the final check names
// them at risk and keeps the guard, and a new plan's apply detaches them,
// takes the guard over and removes it, with nothing lost.
func guardHeld(t *testing.T, e *env, mark int, res *uninstall.Result, err error) {
	t.Helper()
	ctx := context.Background()
	if err == nil || res == nil || res.Verification == nil || len(res.Verification.AtRisk) == 0 || !res.Stages[0].GuardKept || !strings.Contains(err.Error(), "stays in place") {
		t.Fatalf("apply: %v; want a failed final check naming the namespaces at risk and the guard kept", err)
	}
	policy, gerr := e.s.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, uninstall.GuardName, metav1.GetOptions{})
	if gerr != nil {
		t.Fatalf("the guard was not kept: %v", gerr)
	}
	refused := 0
	evs, _ := e.cp.EventsSince(mark, "system:kube-controller-manager")
	for _, a := range evs {
		if a.Verb == "delete" && a.ObjectRef != nil && a.ObjectRef.Resource == "namespaces" && a.ResponseStatus != nil && a.ResponseStatus.Code >= 400 {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("the garbage collector never tried to delete a protected namespace: the run proves nothing")
	}
	e.assertNothingLost(t)

	// The way out the error names: plan again, apply that plan.
	rep, err := scan.Run(ctx, []scan.Target{{Clients: e.clients}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.dir = t.TempDir() // a new plan, a new backup
	res, err = e.apply(t, p, uninstall.Options{})
	if err != nil || !res.Verification.OK || res.Stages[0].GuardKept {
		t.Fatalf("apply of the new plan: %v", err)
	}
	if got := res.Stages[0].Guard; got != uninstall.GuardPolicy {
		t.Fatalf("the new apply's guard: %q", got)
	}
	if _, err := e.s.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, uninstall.GuardName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the guard the first apply kept (UID %s) is still there after the second: %v", policy.UID, err)
	}
	e.assertNothingLost(t)
}

package uninstall_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// The PersistentVolume of a claim in a namespace the teardown deletes is
// switched to Retain first: after apply it is Released, with its UID and
// its data. Without that step (--delete-volumes, the negative control) the
// volume binder deletes the volume and its directory: the model can fail.
func TestVolumesRetained(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		deleteVolumes bool
	}{{"retained", false}, {"negative control: --delete-volumes", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, "ks33-host")
			ctx := context.Background()
			dir := fixture.StaticVolume(t, e.s.Kube, fixture.KubeSphereNamespace, "redis-pvc", "pv-ks-redis")
			rep, err := scan.Run(ctx, []scan.Target{{Clients: e.clients}}, scan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Build(rep, plan.Options{DeleteVolumes: tc.deleteVolumes})
			if err != nil {
				t.Fatal(err)
			}
			var retain *api.Step
			for i, s := range p.Single().Steps {
				if s.Action == api.ActionRetain {
					retain = &p.Single().Steps[i]
				}
			}
			if tc.deleteVolumes != (retain == nil) {
				t.Fatalf("retain step: %+v, with --delete-volumes %v", retain, tc.deleteVolumes)
			}
			if retain != nil && (retain.Target.Name != "pv-ks-redis" || retain.Claim == nil || retain.Claim.Name != "redis-pvc" || retain.ReclaimPolicy != "Delete") {
				t.Fatalf("retain step %+v", retain)
			}
			pv, err := e.s.Kube.CoreV1().PersistentVolumes().Get(ctx, "pv-ks-redis", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.apply(t, p, uninstall.Options{})
			if err != nil || !res.Verification.OK {
				t.Fatalf("apply: %v %+v", err, res)
			}
			for _, s := range res.AllSteps() {
				if s.Action == api.ActionWait || s.Action == api.ActionRetain {
					t.Logf("%s %s: %s", s.Phase, s.Action, s.Detail)
				}
			}
			if tc.deleteVolumes {
				// The binder deletes the directory, then the volume (which
				// pv-protection may hold, with no controller to lift it).
				err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
					got, err := e.s.Kube.CoreV1().PersistentVolumes().Get(ctx, "pv-ks-redis", metav1.GetOptions{})
					_, serr := os.Stat(filepath.Join(dir, "data"))
					return os.IsNotExist(serr) && (apierrors.IsNotFound(err) || (err == nil && got.DeletionTimestamp != nil)), nil
				})
				if err != nil {
					t.Fatalf("negative control: the volume binder did not delete the Delete-policy volume and its data: %v", err)
				}
				return
			}
			// The claim is gone; the binder had time to act on the volume.
			err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				got, err := e.s.Kube.CoreV1().PersistentVolumes().Get(ctx, "pv-ks-redis", metav1.GetOptions{})
				return err == nil && got.Status.Phase == corev1.VolumeReleased, err
			})
			got, gerr := e.s.Kube.CoreV1().PersistentVolumes().Get(ctx, "pv-ks-redis", metav1.GetOptions{})
			if err != nil || gerr != nil || got.UID != pv.UID || got.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
				t.Fatalf("retained volume: %v %v %+v", err, gerr, got)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "data")); err != nil || string(b) != "years of metrics" {
				t.Fatalf("the volume's data: %q %v", b, err)
			}
			e.assertNothingLost(t)
		})
	}
}

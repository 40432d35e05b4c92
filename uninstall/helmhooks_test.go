package uninstall_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// A ks-core release left pending-install, whose chart has pre- and
// post-delete hooks (as KubeSphere 4's does): apply uninstalls it either way,
// runs the hooks only with HelmHooks, and never without.
func TestHelmUninstallHooksAndPendingInstall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := fixture.Start(t, "clean", controlplane.Options{}, true)
	k := st.Kube
	const proof = "hook-proof" // a user namespace where the hooks leave a mark
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: proof}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hook := func(name string, ev release.HookEvent) *release.Hook {
		return &release.Hook{Name: name, Kind: "ConfigMap", Path: "ks-core/templates/" + name + ".yaml", Events: []release.HookEvent{ev},
			Manifest: fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n  annotations:\n    helm.sh/hook: %s\ndata:\n  ran: \"yes\"\n", name, proof, ev)}
	}

	for _, hooks := range []bool{false, true} {
		t.Run(fmt.Sprintf("hooks=%v", hooks), func(t *testing.T) {
			if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubesphere-system"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			store := storage.Init(driver.NewSecrets(k.CoreV1().Secrets("kubesphere-system")))
			now := helmtime.Now()
			if err := store.Create(&release.Release{
				Name: "ks-core", Namespace: "kubesphere-system", Version: 1,
				Info:  &release.Info{Status: release.StatusPendingInstall, FirstDeployed: now, LastDeployed: now},
				Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "ks-core", Version: "1.1.5", APIVersion: "v2"}},
				Hooks: []*release.Hook{hook("pre-delete-ran", release.HookPreDelete), hook("post-delete-ran", release.HookPostDelete)},
			}); err != nil {
				t.Fatal(err)
			}

			c, err := kube.New(st.CP.Config)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := scan.Run(ctx, []scan.Target{{Clients: c}}, scan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Build(rep, plan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			a := &uninstall.Apply{Clients: clientsFor(p, c), Plan: p, PlanPath: filepath.Join(t.TempDir(), "plan.json"),
				Options: uninstall.Options{HelmHooks: hooks, FinalizerTimeout: 20 * time.Second, PhaseTimeout: 2 * time.Minute}}
			r, err := a.Run(ctx)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			uninstalled := false
			for _, s := range r.AllSteps() {
				if s.Action == "helm-uninstall" && s.Status == uninstall.StatusDone {
					uninstalled = true
					t.Logf("%s: %s", s.Target.Name, s.Detail)
				}
			}
			if !uninstalled || r.Verification == nil || !r.Verification.OK {
				t.Fatalf("pending-install release not uninstalled: %+v", r)
			}
			if _, err := store.History("ks-core"); err == nil {
				t.Fatal("release records remain")
			}
			for _, name := range []string{"pre-delete-ran", "post-delete-ran"} {
				_, err := k.CoreV1().ConfigMaps(proof).Get(ctx, name, metav1.GetOptions{})
				if ran := err == nil; ran != hooks {
					t.Errorf("hook %s ran: %v (get: %v), want %v", name, ran, err, hooks)
				} else if err != nil && !apierrors.IsNotFound(err) {
					t.Fatal(err)
				}
			}
		})
	}
}

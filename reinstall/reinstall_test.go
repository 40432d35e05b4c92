package reinstall_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/reinstall"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

const chart = "../test/charts/ks-core-mini"

func incident(t *testing.T) (*controlplane.ControlPlane, *fixture.Seeder, *kube.Clients) {
	t.Helper()
	st := fixture.Start(t, "incident", controlplane.Options{}, true)
	c, err := kube.New(st.CP.Config)
	if err != nil {
		t.Fatal(err)
	}
	return st.CP, st.Seeder, c
}

// Reinstall over the incident: the old footprint goes (KubeFed with it), the
// chart is installed and deployed, every user object keeps its UID, and the
// scan after is free of critical findings.
func TestReinstallOverIncident(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, s, c := incident(t)
	start := time.Now()
	r := &reinstall.Reinstall{Clients: c, Options: reinstall.Options{
		Chart: chart, WorkDir: t.TempDir(),
		Set:   []string{"replicas=2"},
		Apply: uninstall.Options{FinalizerTimeout: 20 * time.Second},
	}}
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("reinstall: %v (%+v)", err, res)
	}
	t.Logf("reinstall over the incident: %s (phases %v)", time.Since(start).Round(time.Millisecond), res.DurationsSeconds)
	if !res.Clean || !res.Healthy || res.Release == nil || res.Release.Status != "deployed" {
		t.Fatalf("result %+v", res)
	}
	if missing, _ := s.Missing(ctx, s.Seeded.Protected); len(missing) > 0 {
		t.Fatalf("user objects lost: %v", missing)
	}
	if _, err := s.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "kubefedclusters.core.kubefed.io", metav1.GetOptions{}); err == nil {
		t.Fatalf("KubeFed survived the reinstall")
	}
	d, err := s.Kube.AppsV1().Deployments("kubesphere-system").Get(ctx, "ks-controller-manager", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 2 {
		t.Fatalf("installed Deployment: %v (--set replicas=2 not applied?)", err)
	}
	after, err := scan.Cluster(ctx, scan.Target{Clients: c}, scan.Options{})
	if err != nil || after.Critical() || after.KubeSphere.Version != "v4.1.3" {
		t.Fatalf("scan after reinstall: %v %+v %+v", err, after.KubeSphere, after.Findings)
	}
}

// An object re-created after planning survives the uninstall (the UID
// precondition leaves it alone), so the cluster cannot be proven clean and
// nothing is installed.
func TestReinstallRefusesUncleanCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, s, c := incident(t)
	crs := s.Kube.RbacV1().ClusterRoles()
	r := &reinstall.Reinstall{Clients: c, Options: reinstall.Options{
		Chart: chart, WorkDir: t.TempDir(),
		Apply: uninstall.Options{FinalizerTimeout: 20 * time.Second},
	}}
	// Re-create kubefed-admin between planning and applying: plan first
	// with a dry run, then swap the object, then reinstall with that plan's
	// UIDs being stale for it.
	old, err := crs.Get(ctx, "kubefed-admin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Apply.Progress = func(e uninstall.Event) {
		if e.Phase == "quiesce" && e.Done == 0 {
			crs.Delete(ctx, old.Name, metav1.DeleteOptions{})
			fresh := old.DeepCopy()
			fresh.ResourceVersion, fresh.UID = "", ""
			crs.Create(ctx, fresh, metav1.CreateOptions{})
		}
	}
	res, err := r.Run(ctx)
	if !errors.Is(err, reinstall.ErrNotClean) {
		t.Fatalf("reinstall on a cluster left unclean: err = %v", err)
	}
	if res.Release != nil {
		t.Fatalf("installed anyway: %+v", res.Release)
	}
	if secrets, _ := s.Kube.CoreV1().Secrets("kubesphere-system").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"}); secrets != nil && len(secrets.Items) > 0 {
		t.Fatalf("a Helm release record exists after the refusal")
	}
	if missing, _ := s.Missing(ctx, s.Seeded.Protected); len(missing) > 0 {
		t.Fatalf("user objects lost: %v", missing)
	}
}

func TestReinstallBadChartChangesNothing(t *testing.T) {
	t.Parallel()
	_, s, c := incident(t)
	r := &reinstall.Reinstall{Clients: c, Options: reinstall.Options{Chart: "./no-such-chart", WorkDir: t.TempDir()}}
	if _, err := r.Run(context.Background()); err == nil {
		t.Fatal("reinstall with a missing chart succeeded")
	}
	if missing, _ := s.Missing(context.Background(), s.Seeded.Footprint); len(missing) > 0 {
		t.Fatalf("a bad --chart changed the cluster: %v", missing)
	}
}

// A host that manages a member on a second control plane (GC on in both):
// one reinstall unjoins and tears down the member, tears down the host,
// proves both clean and installs on the host only; nothing of the users' is
// lost on either.
func TestReinstallHostWithMember(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, m := fixture.StartHostMember(t)
	clients := map[string]*kube.Clients{}
	for name, st := range map[string]fixture.Started{"host": h, "member1": m} {
		if err := st.CP.StartControllerManager(ctx); err != nil {
			t.Fatal(err)
		}
		c, err := kube.New(st.CP.Config)
		if err != nil {
			t.Fatal(err)
		}
		clients[name] = c
	}
	start := time.Now()
	r := &reinstall.Reinstall{Clients: clients["host"], Options: reinstall.Options{
		Chart: chart, WorkDir: t.TempDir(), Context: "host",
		Members: []scan.Target{{Context: "member1", Clients: clients["member1"]}},
		Apply:   uninstall.Options{FinalizerTimeout: 20 * time.Second},
	}}
	res, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("reinstall: %v (%+v)", err, res)
	}
	t.Logf("reinstall of a host with a member: %s (phases %v)", time.Since(start).Round(time.Millisecond), res.DurationsSeconds)
	if !res.Clean || !res.Healthy || res.Release == nil || res.Release.Status != "deployed" || res.Uninstall == nil || len(res.Uninstall.Stages) != 3 {
		t.Fatalf("result %+v", res)
	}
	for _, side := range []fixture.Started{h, m} {
		if missing, _ := side.Missing(ctx, side.Seeded.Protected); len(missing) > 0 {
			t.Errorf("%s: user objects lost: %v", side.Server, missing)
		}
	}
	if present, _ := m.Present(ctx, m.Seeded.Footprint); len(present) > 0 {
		t.Errorf("member footprint left: %v", present)
	}
	if _, err := m.Kube.AppsV1().Deployments("kubesphere-system").Get(ctx, "ks-controller-manager", metav1.GetOptions{}); err == nil {
		t.Errorf("the chart was installed on the member")
	}
	if _, err := h.Kube.AppsV1().Deployments("kubesphere-system").Get(ctx, "ks-controller-manager", metav1.GetOptions{}); err != nil {
		t.Errorf("the chart is not on the host: %v", err)
	}
}

// --wait waits for the release's resources: on a control plane without a
// kubelet the chart's Deployment never becomes ready, so the install fails
// at the timeout, says so, and leaves the users' data alone; the next
// reinstall without --wait removes that failed release with the rest of
// KubeSphere and installs it anew.
func TestReinstallWaitTimesOutThenReinstalls(t *testing.T) {
	ctx := context.Background()
	st := fixture.Start(t, "clean", controlplane.Options{}, true)
	c, err := kube.New(st.CP.Config)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := &reinstall.Reinstall{Clients: c, Options: reinstall.Options{
		Chart: chart, WorkDir: filepath.Join(dir, "1"), Wait: true, Timeout: 5 * time.Second,
	}}
	start := time.Now()
	res, err := r.Run(ctx)
	if err == nil || res.Release != nil || !strings.Contains(err.Error(), "not ready within --timeout 5s") {
		t.Fatalf("install with --wait on a cluster with no kubelet: %v %+v", err, res)
	}
	t.Logf("--wait gave up after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if missing, _ := st.Missing(ctx, st.Seeded.Protected); len(missing) > 0 {
		t.Fatalf("user objects lost: %v", missing)
	}

	r.Wait, r.WorkDir = false, filepath.Join(dir, "2")
	res, err = r.Run(ctx)
	if err != nil || res.Release == nil || res.Release.Status != "deployed" || res.Release.Revision != 1 || !res.Healthy || res.Uninstall == nil || res.Uninstall.Done == 0 {
		t.Fatalf("reinstall over the failed release: %v %+v", err, res)
	}
}

package conformance

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// TestKS413HostAndMember is a 4.1.3 host with four real extensions (host
// parts and agents, with Helm's marks and records) and a member (ks-core as
// ks-agent, the extension agents, loaded as the files are: without Helm's
// marks, so evidence comes from the objects), joined as KubeSphere joins
// them: Cluster records on the host, the member's with a kubeconfig, the
// host's own too (ks-controller-manager writes one on every resync). Users
// on both run their own monitoring and hold instances of the shared CRDs.
// One plan tears down the member, then the host, with the garbage
// collector and namespace controller running; both are proven clean.
func TestKS413HostAndMember(t *testing.T) {
	ctx := context.Background()
	hcp, hs := emptyCluster(t)
	mcp, ms := emptyCluster(t)
	loadExtensions(ctx, t, ms, KS413MemberFiles, true, nil)
	memberToken, err := ms.Token(ctx, "kubesphere-system", "kubesphere")
	if err != nil {
		t.Fatal(err)
	}
	records := func(ctx context.Context) error {
		hostToken, err := hs.Token(ctx, "kubesphere-system", "kubesphere")
		if err != nil {
			return err
		}
		gone := &fixture.Seeder{Server: "https://127.0.0.1:1", CA: hs.CA} // a member no longer there
		// The host's record holds the in-cluster address its
		// ks-controller-manager sees, which cannot be reached from here.
		inCluster := &fixture.Seeder{Server: "https://kubernetes.default.svc:443", CA: hs.CA}
		return hs.CreateAll(ctx, fixture.Footprint, []*unstructured.Unstructured{
			clusterRecord(t, "host", true, inCluster, hostToken),
			clusterRecord(t, "member", false, ms, memberToken),
			clusterRecord(t, "gone", false, gone, "stale"),
		})
	}
	loadExtensions(ctx, t, hs, KS413HostFiles, false, records)
	for _, cp := range []*controlplane.ControlPlane{hcp, mcp} {
		if err := cp.StartControllerManager(ctx); err != nil {
			t.Fatal(err)
		}
	}
	hc, err := kube.New(hcp.Config)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := kube.New(mcp.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The host alone: its records of the member and of the cluster that is
	// gone are reported with what the host knows runs there; its own
	// record, which holds a kubeconfig too, is not a member.
	alone, err := scan.Run(ctx, []scan.Target{{Context: "host", Clients: hc}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	about := map[string]api.Finding{}
	for _, f := range alone.Findings {
		if len(f.Objects) > 0 && f.Objects[0].Kind == "Cluster" {
			about[f.Objects[0].Name] = f
		}
	}
	if f := about["member"]; f.ID != scan.MemberNotGiven || !strings.Contains(f.Message, "Helm release kubesphere-monitoring-system/whizard-monitoring-agent") {
		t.Errorf("host alone, its record of the member: %s %q; want %s naming the agents the InstallPlans put there", f.ID, f.Message, scan.MemberNotGiven)
	}
	if f := about["gone"]; f.ID != scan.MemberUnreachable {
		t.Errorf("host alone, its record of a cluster that is gone: %s %q; want %s", f.ID, f.Message, scan.MemberUnreachable)
	}
	if f, ok := about["host"]; ok {
		t.Errorf("the host's own record is reported as another cluster: %s %s", f.ID, f.Message)
	}

	rep, err := scan.Run(ctx, []scan.Target{{Context: "host", Clients: hc}, {Context: "member", Clients: mc}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Logf("finding %s %s: %s", f.Severity, f.ID, f.Message)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	var stages []string
	for _, st := range p.Stages {
		stages = append(stages, string(st.Kind)+"@"+st.Cluster.Context)
	}
	if got := strings.Join(stages, " "); got != "unjoin@host member@member host@host" {
		t.Fatalf("stages: %s", got)
	}
	var unjoined []string
	for _, s := range p.Stages[0].Steps {
		if s.Action == api.ActionDelete && s.Target.Kind == "Cluster" {
			unjoined = append(unjoined, s.Target.Name)
		}
	}
	sort.Strings(unjoined)
	if got := strings.Join(unjoined, " "); got != "member" {
		t.Errorf("unjoin deletes Cluster records %q, want the member's only (the host's own, and the record of a cluster that cannot be reached, go with the host)", got)
	}
	a := &uninstall.Apply{Plan: p, PlanPath: filepath.Join(t.TempDir(), "plan.json"),
		Clients: map[string]*kube.Clients{"host": hc, "member": mc},
		Options: uninstall.Options{FinalizerTimeout: 20 * time.Second, PhaseTimeout: 2 * time.Minute}}
	res, err := a.Run(ctx)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, st := range res.Stages {
		t.Logf("stage %s: %d done, %d skipped, %d failed", st.Name, st.Done, st.Skipped, st.Failed)
		if st.Name != "unjoin-members" && (st.Verification == nil || !st.Verification.OK) {
			t.Errorf("stage %s not proven clean: %+v", st.Name, st.Verification)
		}
	}
	for _, st := range p.Stages {
		if st.Kind == api.StageUnjoin {
			continue
		}
		s, member := hs, st.Kind == api.StageMember
		if member {
			s = ms
		}
		kept := keptBy(&st)
		checkLeft(ctx, t, s, kept)
		checkExtensionsGone(ctx, t, s, kept, member)
	}
}

// clusterRecord is a KubeSphere Cluster record whose kubeconfig reaches s
// with token; the host's carries the host label.
func clusterRecord(t *testing.T, name string, host bool, s *fixture.Seeder, token string) *unstructured.Unstructured {
	t.Helper()
	kc, err := clientcmd.Write(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{name: {Server: s.Server, CertificateAuthorityData: s.CA}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{name: {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{name: {Cluster: name, AuthInfo: name}},
		CurrentContext: name,
	})
	if err != nil {
		t.Fatal(err)
	}
	md := map[string]any{"name": name, "finalizers": []any{"finalizer.cluster.kubesphere.io"}}
	if host {
		md["labels"] = map[string]any{"cluster-role.kubesphere.io/host": ""}
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cluster.kubesphere.io/v1alpha1", "kind": "Cluster", "metadata": md,
		"spec": map[string]any{"provider": "kubesphere", "enable": true, "joinFederation": false,
			"connection": map[string]any{"type": "direct", "kubernetesAPIEndpoint": s.Server, "kubeconfig": base64.StdEncoding.EncodeToString(kc)}}}}
}

package uninstall_test

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/lease"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

var kubeFedClusters = schema.GroupVersionResource{Group: "core.kubefed.io", Version: "v1beta1", Resource: "kubefedclusters"}

func target(t *testing.T, name string, cfg *rest.Config) scan.Target {
	t.Helper()
	c, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return scan.Target{Context: name, Clients: c}
}

func findingIDs(fs []api.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

// A 3.3 host managing member1 on a second control plane, plus a stale
// second record of member1 on the host: one plan unjoins the member (both
// records), tears the member down, then the host, with the garbage
// collector on in both clusters; nothing of the users' is lost on either.
func TestHostAndMemberInOnePlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, m := fixture.StartHostMember(t)
	if err := fixture.StaleMemberRecord(ctx, h.Seeder, m.Seeder, "member1-old"); err != nil {
		t.Fatal(err)
	}
	for _, st := range []fixture.Started{h, m} {
		if err := st.CP.StartControllerManager(ctx); err != nil {
			t.Fatal(err)
		}
	}
	host, member := target(t, "host", h.CP.Config), target(t, "member1", m.CP.Config)

	// Without the member, the host's verified records of it are reported (its
	// Cluster record carries no credentials: it reaches nothing).
	alone, err := scan.Run(ctx, []scan.Target{host}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var notGiven []string
	aloneFindings := alone.Findings
	for _, f := range aloneFindings {
		if f.ID == scan.MemberNotGiven && f.Severity == api.Warning {
			notGiven = append(notGiven, f.Objects[0].Kind+"/"+f.Objects[0].Name)
		}
	}
	sort.Strings(notGiven)
	if got := strings.Join(notGiven, " "); got != "KubeFedCluster/member1 KubeFedCluster/member1-old" {
		t.Fatalf("%s findings without --member-context: %q (%v)", scan.MemberNotGiven, got, findingIDs(aloneFindings))
	}

	rep, err := scan.Run(ctx, []scan.Target{host, member}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Members()) != 1 || len(rep.Members()[0].HostRecords) != 3 {
		t.Fatalf("records of member1 on the host: %+v", rep.Members())
	}
	var alias *api.Finding
	for i, f := range rep.Findings {
		if f.ID == scan.MemberAlias {
			alias = &rep.Findings[i]
		}
	}
	if alias == nil || alias.Severity != api.Critical || !strings.Contains(alias.Message, "2 KubeFedCluster records") || !strings.Contains(alias.Message, "member1, member1-old") || !rep.Critical() {
		t.Fatalf("want a critical %s naming both KubeFedClusters, got %v: %+v", scan.MemberAlias, findingIDs(rep.Findings), rep.Findings)
	}

	mp, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, st := range mp.Stages {
		kinds = append(kinds, string(st.Kind)+"@"+st.Cluster.Context)
		for _, s := range st.Steps {
			if s.Cluster != st.Cluster.Context {
				t.Errorf("stage %s: step %s names cluster %q", st.Name, s.ID, s.Cluster)
			}
		}
	}
	if got := strings.Join(kinds, " "); got != "unjoin@host member@member1 host@host" {
		t.Fatalf("stages: %s", got)
	}
	var unjoined []string
	for _, s := range mp.Stages[0].Steps {
		if s.Action == api.ActionDelete && s.Phase == api.PhaseKubeFed {
			unjoined = append(unjoined, s.Target.Kind+"/"+s.Target.Name)
		}
	}
	sort.Strings(unjoined)
	if got := strings.Join(unjoined, " "); got != "Cluster/member1 KubeFedCluster/member1 KubeFedCluster/member1-old Secret/member1-old-token-x7k2p Secret/member1-token-x7k2p" {
		t.Fatalf("unjoin deletes: %s", got)
	}

	// The saved form reads back, and its digest guards it.
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := api.Write(path, mp); err != nil {
		t.Fatal(err)
	}
	f, err := api.Read(path)
	if err != nil || f.Digest != mp.Digest || len(f.Stages) != 3 {
		t.Fatalf("read back: %v %+v", err, f)
	}

	// When the member's teardown starts, the host holds no record of it,
	// and its Lease is still this apply's: no other run can write to the
	// host between its unjoin and its teardown.
	var once sync.Once
	var atMemberStart []string
	var hostLeaseAtMember string
	hostDyn := h.Seeder.Dyn
	progress := func(e uninstall.Event) {
		if e.Stage != "member-member1" {
			return
		}
		once.Do(func() {
			if l, err := h.Seeder.Kube.CoordinationV1().Leases(lease.Namespace).Get(ctx, lease.Name, metav1.GetOptions{}); err != nil {
				hostLeaseAtMember = err.Error()
			} else if l.Spec.HolderIdentity != nil {
				hostLeaseAtMember = *l.Spec.HolderIdentity
			}
			l, err := hostDyn.Resource(kubeFedClusters).Namespace(fixture.KubeFedNamespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				atMemberStart = []string{"list failed: " + err.Error()}
				return
			}
			atMemberStart = []string{}
			for _, o := range l.Items {
				atMemberStart = append(atMemberStart, o.GetName())
			}
		})
	}
	apply := func(stopAfter int) (*uninstall.Result, error) {
		a := &uninstall.Apply{Plan: f, PlanPath: path,
			Clients: map[string]*kube.Clients{"host": target(t, "host", h.CP.Config).Clients, "member1": target(t, "member1", m.CP.Config).Clients},
			Options: uninstall.Options{FinalizerTimeout: 20 * time.Second, PhaseTimeout: 2 * time.Minute, Progress: progress, StopAfter: stopAfter}}
		return a.Run(ctx)
	}
	// Interrupted after 40 writes of a stage: the unjoin stage (about 20)
	// finishes, the member's stops, the host's does not start.
	start := time.Now()
	res, err := apply(40)
	if !errors.Is(err, api.ErrInterrupted) || len(res.Stages) != 2 || !strings.Contains(err.Error(), "member-member1") {
		t.Fatalf("interrupted apply: %v, %d stages run", err, len(res.Stages))
	}
	for _, side := range []fixture.Started{h, m} {
		if missing, err := side.Missing(ctx, side.Seeded.Protected); err != nil || len(missing) > 0 {
			t.Fatalf("%s: user objects lost after the interruption: %v %v", side.Server, err, missing)
		}
	}
	// The same command again resumes: the unjoin stage is all done.
	res, err = apply(0)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("multi-cluster apply, interrupted once and resumed: %s", time.Since(start).Round(time.Millisecond))
	if len(res.Stages) != 3 || res.Stages[0].Done != 0 {
		t.Fatalf("resumed stages: %+v", res.Stages)
	}
	for _, st := range res.Stages {
		r := st
		t.Logf("stage %s: %d done, %d skipped, %d failed", st.Name, r.Done, r.Skipped, r.Failed)
		if st.Name != "unjoin-members" && (r.Verification == nil || !r.Verification.OK) {
			t.Errorf("stage %s not verified: %+v", st.Name, r.Verification)
		}
	}
	if hostLeaseAtMember != lease.Holder {
		t.Errorf("host's Lease when the member's teardown began: %q, want this apply's %q", hostLeaseAtMember, lease.Holder)
	}
	if atMemberStart == nil || strings.Join(atMemberStart, ",") != "host" {
		t.Errorf("KubeFedClusters on the host when the member's teardown began: %v (want only host's own)", atMemberStart)
	}
	for _, side := range []fixture.Started{h, m} {
		missing, err := side.Missing(ctx, side.Seeded.Protected)
		if err != nil || len(missing) > 0 {
			t.Errorf("%s: user objects lost: %v %v", side.Server, err, missing)
		}
		present, err := side.Present(ctx, side.Seeded.Footprint)
		if err != nil || len(present) > 0 {
			t.Errorf("%s: footprint left: %v %v", side.Server, err, present)
		}
	}
	after, err := scan.Run(ctx, []scan.Target{target(t, "host", h.CP.Config), target(t, "member1", m.CP.Config)}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !after.Host().Footprint.Empty() || !after.Members()[0].Footprint.Empty() {
		t.Errorf("rescan: host empty %v, member empty %v", after.Host().Footprint.Empty(), after.Members()[0].Footprint.Empty())
	}
}

// A member that the given host has no record of is registered elsewhere:
// the scan says so (critical, naming the join it shows) and no plan is made.
func TestMemberRegisteredElsewhereIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := fixture.Start(t, "ks33-host", controlplane.Options{}, false)
	mcp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	ms, err := fixture.NewSeeder(mcp.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.KS33Member(ctx, ms, fixture.Options{}); err != nil {
		t.Fatal(err)
	}
	rep, err := scan.Run(ctx, []scan.Target{target(t, "host", h.CP.Config), target(t, "member1", mcp.Config)}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].ID != scan.MemberElsewhere || rep.Findings[0].Severity != api.Critical ||
		!strings.Contains(rep.Findings[0].Message, "joined to a host as member1-"+fixture.KubeFedHostName) {
		t.Fatalf("findings: %+v", rep.Findings)
	}
	_, err = plan.Build(rep, plan.Options{})
	if _, refused := api.AsRefusal(err); !refused || !strings.Contains(err.Error(), "ks-clean plan --context member1") {
		t.Fatalf("build: %v", err)
	}

	// One cluster given twice is refused before anything else.
	_, err = scan.Run(ctx, []scan.Target{target(t, "host", h.CP.Config), target(t, "again", h.CP.Config)}, scan.Options{})
	if _, refused := api.AsRefusal(err); !refused || !strings.Contains(err.Error(), "same cluster") {
		t.Fatalf("host twice: %v", err)
	}
}

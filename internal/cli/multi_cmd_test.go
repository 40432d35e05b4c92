package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// The multi-cluster workflow through the CLI, on a host and a member (two
// control planes with the garbage collector on), from one kubeconfig with a
// context for each: scan, plan, refusals, apply, rescan.
func TestMultiClusterCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h, m := fixture.StartHostMember(t)
	for _, st := range []fixture.Started{h, m} {
		if err := st.CP.StartControllerManager(ctx); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := controlplane.WriteKubeconfig(kc, map[string]*controlplane.ControlPlane{"prod-host": h.CP, "prod-member": m.CP}); err != nil {
		t.Fatal(err)
	}
	g := []string{"--kubeconfig", kc, "--context", "prod-host"}

	out, errOut, code := runCLI(t, append(g, "scan", "--member-context", "prod-member", "-o", "json")...)
	var rep scan.ReportJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || (code != 0 && code != 3) {
		t.Fatalf("scan: exit %d %v\n%s\n%s", code, err, out, errOut)
	}
	if len(rep.Clusters) != 2 || rep.Clusters[0].KubeSphere.Role != "host" || rep.Clusters[1].KubeSphere.Role != "member" || rep.Clusters[1].Cluster.Context != "prod-member" {
		t.Fatalf("scan report: %+v", rep.Clusters)
	}
	for _, f := range rep.Findings {
		if f.ID == scan.MemberElsewhere || f.ID == scan.MemberAlias {
			t.Errorf("one record of the member on its host, yet: %s", f.Message)
		}
	}

	if _, errOut, code := runCLI(t, append(g, "plan", "--member-context", "nope")...); code != 2 || !strings.Contains(errOut, `"nope"`) {
		t.Fatalf("absent member context: exit %d %q", code, errOut)
	}
	planFile := filepath.Join(dir, "plan.json")
	out, errOut, code = runCLI(t, append(g, "plan", "--member-context", "prod-member", "--out", planFile)...)
	if code != 0 {
		t.Fatalf("plan: exit %d %s", code, errOut)
	}
	for _, want := range []string{"Stage 1/3: unjoin-members (context prod-host)", "Stage 2/3: member-prod-member (context prod-member)", "Stage 3/3: host-prod-host", "KubeFedCluster/kube-federation-system/member1"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q", want)
		}
	}

	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "apply", planFile, "--context", "prod-member", "--confirm"); code != 2 || !strings.Contains(errOut, `host context "prod-host"`) {
		t.Fatalf("apply with the member as --context: exit %d %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "apply", planFile); code != 2 || !strings.Contains(errOut, "--confirm") {
		t.Fatalf("apply without --confirm: exit %d %q", code, errOut)
	}
	for _, side := range []fixture.Started{h, m} {
		if missing, _ := side.Missing(ctx, side.Seeded.Footprint); len(missing) > 0 {
			t.Fatalf("a refused apply changed %s: %v", side.Server, missing)
		}
	}

	out, errOut, code = runCLI(t, "--kubeconfig", kc, "apply", planFile, "--confirm", "-o", "json", "--finalizer-timeout", "20s")
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, errOut, out)
	}
	var res struct {
		Verification *struct{ OK bool }
		Stages       []struct {
			Name, Context string
			Failed        int
			BackupDir     string
			Verification  *struct{ OK bool }
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Stages) != 3 || res.Verification == nil || !res.Verification.OK {
		t.Fatalf("apply -o json: %v\n%s", err, out)
	}
	for _, st := range res.Stages {
		if st.Failed != 0 || (st.Name != "unjoin-members" && (st.Verification == nil || !st.Verification.OK)) {
			t.Errorf("stage %s: %+v", st.Name, st)
		}
		if !strings.HasPrefix(st.BackupDir, planFile+".apply/") {
			t.Errorf("stage %s backup in %s", st.Name, st.BackupDir)
		}
	}
	for _, want := range []string{"stage unjoin-members", "stage member-prod-member", "stage host-prod-host"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress lacks %q:\n%s", want, errOut)
		}
	}
	for _, side := range []fixture.Started{h, m} {
		if missing, _ := side.Missing(ctx, side.Seeded.Protected); len(missing) > 0 {
			t.Errorf("%s: user objects lost: %v", side.Server, missing)
		}
		for _, v := range side.Seeded.SecretValues {
			if strings.Contains(out+errOut, v) {
				t.Errorf("apply output shows a Secret's value")
			}
		}
	}
	out, _, code = runCLI(t, append(g, "scan", "--member-context", "prod-member")...)
	if code != 0 || strings.Count(out, "Nothing of KubeSphere or KubeFed found.") != 2 {
		t.Fatalf("rescan: exit %d\n%s", code, out)
	}
}

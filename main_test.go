package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"ks-clean"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func TestVersionHelpUnknown(t *testing.T) {
	out, _, code := runCLI(t, "version", "-o", "json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" {
		t.Fatalf("version -o json: code %d out %q", code, out)
	}
	out, _, code = runCLI(t, "--help")
	if code != 0 || !strings.Contains(out, "ks-clean scan") || !strings.Contains(out, "Exit codes") {
		t.Fatalf("--help: code %d\n%s", code, out)
	}
	_, errOut, code := runCLI(t, "frobnicate")
	if code != 1 || !strings.Contains(errOut, `unknown command "frobnicate"`) || !strings.Contains(errOut, "--help") {
		t.Fatalf("unknown command: code %d stderr %q", code, errOut)
	}
}

func TestNoKubeconfig(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	_, errOut, code := runCLI(t, "scan")
	if code != 1 || !strings.Contains(errOut, "absent") {
		t.Fatalf("missing kubeconfig: code %d stderr %q", code, errOut)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"scan", "-o", "yaml"},
		{"scan", "--concurrency", "0"},
		{"plan", "--concurrency", "1000"},
	} {
		_, errOut, code := runCLI(t, args...)
		if code != 2 || errOut == "" {
			t.Errorf("%v: code %d stderr %q, want 2 and a message", args, code, errOut)
		}
	}
}

// The CLI contract on real control planes: exit 3 and the JSON shape on the
// incident, exit 0 on a clean cluster, and a plan file with mode 0600 that
// reads back with a valid digest.
func TestScanAndPlanContract(t *testing.T) {
	seeded := func(name string) string {
		cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
		s, err := fixture.NewSeeder(cp.Config)
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := fixture.ScenarioByName(name)
		if err := sc.Seed(context.Background(), s, fixture.Options{}); err != nil {
			t.Fatal(err)
		}
		return cp.AdminKubeconfig
	}

	incident := seeded("incident")
	out, errOut, code := runCLI(t, "--kubeconfig", incident, "scan", "-o", "json")
	if code != 3 {
		t.Fatalf("scan of the incident: exit %d, want 3 (critical)\n%s", code, errOut)
	}
	var rep struct {
		Cluster    map[string]string `json:"cluster"`
		KubeSphere map[string]string `json:"kubesphere"`
		Findings   []plan.Finding    `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("scan -o json is not JSON: %v\n%s", err, out)
	}
	if rep.Cluster["uid"] == "" || rep.Cluster["server"] == "" || rep.KubeSphere["version"] != "v3.3.1" || rep.KubeSphere["role"] != "host" {
		t.Fatalf("scan report header: %+v %+v", rep.Cluster, rep.KubeSphere)
	}
	alias := false
	for _, f := range rep.Findings {
		alias = alias || (f.ID == "kubefed-cluster-alias" && f.Severity == plan.Critical && len(f.Objects) == 2)
	}
	if !alias {
		t.Fatalf("no critical kubefed-cluster-alias in %s", out)
	}

	planFile := filepath.Join(t.TempDir(), "plan.json")
	text, errOut, code := runCLI(t, "--kubeconfig", incident, "plan", "--out", planFile)
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"kubefed-cluster-alias", "detach", "protected namespaces", "prod-ws1-1", "Plan: "} {
		if !strings.Contains(text, want) {
			t.Errorf("plan text lacks %q", want)
		}
	}
	if strings.Contains(text, "\x1b[") {
		t.Errorf("colour codes in output that is not a terminal")
	}
	st, err := os.Stat(planFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("plan file: %v mode %v", err, st.Mode().Perm())
	}
	p, err := plan.Read(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if p.Cluster.UID != rep.Cluster["uid"] {
		t.Fatalf("plan for cluster %s, scan saw %s", p.Cluster.UID, rep.Cluster["uid"])
	}

	clean := seeded("clean")
	out, _, code = runCLI(t, "--kubeconfig", clean, "scan")
	if code != 0 || !strings.Contains(out, "Nothing of KubeSphere or KubeFed found") {
		t.Fatalf("clean scan: exit %d\n%s", code, out)
	}
}

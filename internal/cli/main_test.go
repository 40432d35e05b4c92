package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kubeconfig"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"ks-clean"}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

func TestVersion(t *testing.T) {
	out, errOut, code := runCLI(t, "version")
	want := regexp.MustCompile(`^ks-clean dev \(unknown\) go\d+\.\d+\S*\n$`)
	if code != 0 || !want.MatchString(out) || errOut != "" {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{{"version", "-o", "json"}, {"version", "-ojson"}, {"version", "-o=json"}, {"version", "--output=json"}} {
		out, _, code = runCLI(t, args...)
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil ||
			v["apiVersion"] != api.APIVersion || v["kind"] != "Version" || v["version"] != "dev" || v["commit"] != "unknown" || v["go"] != runtime.Version() {
			t.Errorf("%v: exit %d, %v, %q", args, code, err, out)
		}
	}
	for _, args := range [][]string{{"version", "-o", "yaml"}, {"version", "-oyaml"}} {
		out, _, code = runCLI(t, args...)
		var v map[string]any
		if err := yaml.Unmarshal([]byte(out), &v); code != 0 || err != nil || v["kind"] != "Version" || strings.HasPrefix(out, "{") {
			t.Errorf("%v: exit %d, %v, %q", args, code, err, out)
		}
	}
}

// A binary built with plain 'go build' in a checkout (no -ldflags) reports
// the module's version and the commit from its build info.
func TestVersionFromBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git: the build carries no VCS information")
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ks-clean")
	// -buildvcs=true: the Go default in a checkout, which this
	// environment's GOFLAGS turns off.
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	build.Dir = strings.TrimSpace(string(root))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	var v map[string]any
	if err != nil || json.Unmarshal(out, &v) != nil {
		t.Fatalf("version: %v %s", err, out)
	}
	if v["version"] == "dev" || v["version"] == "" || !strings.HasPrefix(strings.TrimSpace(string(head)), fmt.Sprint(v["commit"])) {
		t.Errorf("a plain go build reports version %v, commit %v; want the module version and HEAD %s", v["version"], v["commit"], head)
	}
}

func TestHelpTeachesTheWorkflow(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {}} {
		out, _, code := runCLI(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, want := range []string{"KubeFed", "without losing", "Workflow:", "ks-clean scan", "ks-clean plan", "ks-clean apply", "--kubeconfig", "--context", "--request-timeout", "--verbose", "Exit codes"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: help lacks %q", args, want)
			}
		}
	}
}

// Every command's help ends with examples, on stdout, exit 0.
func TestHelpHasExamples(t *testing.T) {
	for _, c := range commands() {
		out, errOut, code := runCLI(t, c.Name, "--help")
		if code != 0 || !strings.Contains(out, "Examples:\n   ") || !strings.Contains(out, "ks-clean "+c.Name) || errOut != "" {
			t.Errorf("%s --help: exit %d, no examples in:\n%s%s", c.Name, code, out, errOut)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"-v", "frobnicate"}} {
		out, errOut, code := runCLI(t, args...)
		if code != 2 || errOut != "ks-clean: unknown command \"frobnicate\": run 'ks-clean --help' for the commands\n" || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	out, errOut, code := runCLI(t, "scna")
	if code != 2 || !strings.Contains(errOut, `did you mean "scan"?`) || out != "" {
		t.Errorf("scna: exit %d, stdout %q, stderr %q; want exit 2 and a suggestion", code, out, errOut)
	}
}

// Flag errors exit 2 with one line that says where help is, not a page of it.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "run 'ks-clean --help'"},
		{[]string{"scan", "--bogus"}, "run 'ks-clean scan --help'"},
		{[]string{"--request-timeout", "soon", "version"}, "request-timeout"},
		{[]string{"--request-timeout", "-1s", "scan"}, "use 0 (no timeout), a positive duration"},
		{[]string{"reinstall"}, "reinstall needs --chart"},
		{[]string{"apply", "plan.json", "--dry-run=client"}, "dry run is always the server's"},
		{[]string{"completion"}, "completion bash|zsh|fish"},
		{[]string{"apply", "plan.json", "--burst", "10"}, "--qps 0: give a positive number"},
		{[]string{"completion", "powershell"}, "use bash, zsh or fish"},
		{[]string{"version", "extra"}, `takes no arguments, got "extra"`},
		{[]string{"scan", "stray", "--context", "x"}, `takes no arguments, got "stray"`},
	} {
		out, errOut, code := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// isolate hides the real environment: an empty HOME, no KUBECONFIG, not in a Pod.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} {
		t.Setenv(v, "") // restores the value after the test
		os.Unsetenv(v)
	}
	return home
}

// probe runs the real app with one more command that only loads the cluster.
func probe(t *testing.T, args ...string) (*kubeconfig.Cluster, string, error) {
	t.Helper()
	var cl *kubeconfig.Cluster
	var loadErr error
	var out, errb bytes.Buffer
	a := app(&out, &errb)
	a.Commands = append(a.Commands, withGlobals([]*cli.Command{{
		Name:   "probe",
		Action: func(c *cli.Context) error { cl, loadErr = load(c, readGlobals(c).context, "--context"); return nil },
	}})...)
	full, err := normalize(append([]string{"ks-clean"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(full); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return cl, errb.String(), loadErr
}

func TestLoadCluster(t *testing.T) {
	home := isolate(t)
	_, _, err := probe(t, "probe")
	if err == nil || !strings.Contains(err.Error(), "no kubeconfig: set --kubeconfig, KUBECONFIG, or create ~/.kube/config") ||
		!strings.Contains(err.Error(), filepath.Join(home, ".kube", "config")) {
		t.Fatalf("no kubeconfig: %v", err)
	}

	cfg := clientcmdapi.NewConfig()
	for _, n := range []string{"a", "b"} {
		cfg.Clusters[n] = &clientcmdapi.Cluster{Server: "https://" + n + ":6443"}
		cfg.AuthInfos[n] = &clientcmdapi.AuthInfo{Token: n}
		cfg.Contexts[n] = &clientcmdapi.Context{Cluster: n, AuthInfo: n}
	}
	cfg.CurrentContext = "a"
	kc := filepath.Join(home, "kc")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		ctx  string
	}{
		{[]string{"--kubeconfig", kc, "probe"}, "a"},
		{[]string{"--kubeconfig", kc, "--context", "b", "probe"}, "b"},
		{[]string{"probe", "--kubeconfig", kc, "--context", "b"}, "b"},                   // after the command, as kubectl allows
		{[]string{"--context", "a", "probe", "--kubeconfig", kc, "--context", "b"}, "b"}, // after wins
	} {
		cl, _, err := probe(t, tc.args...)
		if err != nil || cl.Context != tc.ctx || cl.Server != "https://"+tc.ctx+":6443" {
			t.Errorf("%v: %+v %v, want context %s", tc.args, cl, err, tc.ctx)
		}
	}
	cl, log, err := probe(t, "--kubeconfig", kc, "--request-timeout", "5s", "probe", "-v")
	if err != nil || cl.Config.Timeout != 5*time.Second || !strings.HasPrefix(cl.Config.UserAgent, "ks-clean/") ||
		!strings.Contains(log, `using context "a" from `+kc) {
		t.Errorf("timeout, user agent, -v: %+v %v %q", cl, err, log)
	}
	if _, _, err := probe(t, "--kubeconfig", kc, "probe", "--context", "c"); err == nil || !strings.Contains(err.Error(), "available: a, b") {
		t.Errorf("absent context: %v", err)
	}
}

func TestNoKubeconfig(t *testing.T) {
	isolate(t)
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	_, errOut, code := runCLI(t, "scan")
	if code != 2 || !strings.Contains(errOut, "absent") {
		t.Fatalf("missing kubeconfig: code %d stderr %q", code, errOut)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"scan", "-o", "xml"},
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
	t.Parallel()
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
	var doc struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Critical   bool   `json:"critical"`
		Clusters   []struct {
			Cluster    map[string]string `json:"cluster"`
			KubeSphere map[string]string `json:"kubesphere"`
			Footprint  map[string]int    `json:"footprint"`
			Findings   []api.Finding     `json:"findings"`
		} `json:"clusters"`
		Findings []api.Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Clusters) != 1 {
		t.Fatalf("scan -o json is not a one-cluster report: %v\n%s", err, out)
	}
	if doc.APIVersion != api.APIVersion || doc.Kind != "ScanReport" || !doc.Critical || doc.Findings == nil || doc.Clusters[0].Footprint["objects"] == 0 {
		t.Fatalf("scan -o json: apiVersion %q kind %q critical %v findings %v footprint %v", doc.APIVersion, doc.Kind, doc.Critical, doc.Findings, doc.Clusters[0].Footprint)
	}
	if strings.Contains(errOut, "critical hazards found") {
		t.Errorf("scan -o json: the human verdict on stderr (a Job's log merges it into the document): %q", errOut)
	}
	// kubectl's habits: -ojson, and -v=6 logs each request on stderr while
	// stdout stays one document; -o yaml is the same document.
	out6, err6, code := runCLI(t, "--kubeconfig", incident, "scan", "-ojson", "-v=6")
	var doc6 map[string]any
	if err := json.Unmarshal([]byte(out6), &doc6); code != 3 || err != nil || doc6["kind"] != "ScanReport" {
		t.Errorf("scan -ojson -v=6: exit %d, stdout is not the report: %v", code, err)
	}
	if !regexp.MustCompile(`verb="GET" url="https://\S+/api\S*" status="200 OK" milliseconds=\d+`).MatchString(err6) {
		t.Errorf("scan -v=6 logs no API request on stderr: %.500q", err6)
	}
	outY, _, code := runCLI(t, "--kubeconfig", incident, "scan", "-o", "yaml")
	var docY map[string]any
	if err := yaml.Unmarshal([]byte(outY), &docY); code != 3 || err != nil || docY["kind"] != "ScanReport" || strings.HasPrefix(outY, "{") {
		t.Errorf("scan -o yaml: exit %d, %v: %.200q", code, err, outY)
	}
	rep := doc.Clusters[0]
	if rep.Cluster["uid"] == "" || rep.Cluster["server"] == "" || rep.KubeSphere["version"] != "v3.3.1" || rep.KubeSphere["role"] != "host" {
		t.Fatalf("scan report header: %+v %+v", rep.Cluster, rep.KubeSphere)
	}
	alias := false
	for _, f := range rep.Findings {
		alias = alias || (f.ID == "kubefed-cluster-alias" && f.Severity == api.Critical && len(f.Objects) == 2)
	}
	if !alias {
		t.Fatalf("no critical kubefed-cluster-alias in %s", out)
	}
	if rep.Footprint["kept"] == 0 {
		t.Errorf("scan -o json counts no kept look-alike: %v", rep.Footprint)
	}
	// The text names every object kept although it looks like KubeSphere's.
	text, _, _ := runCLI(t, "--kubeconfig", incident, "scan")
	if !strings.Contains(text, "kept-namespace") || !strings.Contains(text, "Namespace/"+fixture.LookalikeNamespace) || !strings.Contains(text, "kept although they look like KubeSphere's") {
		t.Errorf("scan text does not name the kept look-alike namespace %s:\n%s", fixture.LookalikeNamespace, text)
	}

	planFile := filepath.Join(t.TempDir(), "plan.json")
	text, errOut, code = runCLI(t, "--kubeconfig", incident, "plan", "--out", planFile)
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
	p, err := api.Read(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Single(); st == nil || st.Cluster.UID != rep.Cluster["uid"] {
		t.Fatalf("plan for cluster %+v, scan saw %s", p.Stages, rep.Cluster["uid"])
	}

	clean := seeded("clean")
	out, _, code = runCLI(t, "--kubeconfig", clean, "scan")
	if code != 0 || !strings.Contains(out, "Nothing of KubeSphere or KubeFed found") {
		t.Fatalf("clean scan: exit %d\n%s", code, out)
	}
}

// apply refuses without --confirm when not on a terminal, then applies with
// it; JSON output carries the verification.
func TestApplyCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cp, s := incidentCluster(t)
	kc := cp.AdminKubeconfig
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "plan", "--out", planFile); code != 0 {
		t.Fatalf("plan: %d %s", code, errOut)
	}
	_, errOut, code := runCLI(t, "--kubeconfig", kc, "apply", planFile)
	if code != 2 || !strings.Contains(errOut, "--confirm") {
		t.Fatalf("apply without --confirm off a terminal: exit %d %q", code, errOut)
	}
	if missing, _ := s.Missing(ctx, s.Seeded.Footprint); len(missing) > 0 {
		t.Fatalf("refused apply changed the cluster: %v", missing)
	}
	_, errOut, code = runCLI(t, "--kubeconfig", kc, "apply", "--confirm")
	if code != 2 || !strings.Contains(errOut, "plan file") {
		t.Fatalf("apply without a plan: exit %d %q", code, errOut)
	}
	out, errOut, code := runCLI(t, "--kubeconfig", kc, "apply", planFile, "--confirm", "-o", "json", "--finalizer-timeout", "20s")
	if code != 0 {
		t.Fatalf("apply --confirm: exit %d\n%s\n%s", code, errOut, out)
	}
	var res struct {
		APIVersion   string
		Kind         string
		Failed       int
		BackupDir    string
		Verification struct{ OK bool }
		Stages       []struct{ Steps []struct{ Status string } }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.Verification.OK || res.Failed != 0 || res.Kind != "ApplyResult" || res.APIVersion != api.APIVersion || len(res.Stages) != 1 || len(res.Stages[0].Steps) == 0 {
		t.Fatalf("apply -o json: %v %+v\n%s", err, res, out)
	}
	if st, err := os.Stat(res.BackupDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("backup dir %s: %v", res.BackupDir, err)
	}
	if missing, _ := s.Missing(ctx, s.Seeded.Protected); len(missing) > 0 {
		t.Fatalf("user objects lost: %v", missing)
	}
	for _, v := range s.Seeded.SecretValues {
		if strings.Contains(out+errOut, v) {
			t.Fatalf("output shows a Secret's value")
		}
	}
}

// incidentCluster seeds the incident, then starts the garbage collector.
func incidentCluster(t *testing.T) (*controlplane.ControlPlane, *fixture.Seeder) {
	t.Helper()
	st := fixture.Start(t, "incident", controlplane.Options{}, true)
	return st.CP, st.Seeder
}

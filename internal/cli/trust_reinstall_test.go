package cli

import (
	"os"
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// Issue 22 item 8 and the work directory of item 7: charts and releases an
// attacker may have replaced. Each is refused with exit 2, a message naming
// the problem and the way out, nothing on stdout, and no persisted write.
func TestTrustReinstall(t *testing.T) {
	t.Parallel()
	st := fixture.Start(t, "ks41", controlplane.Options{Audit: true}, false)
	kc := st.CP.AdminKubeconfig
	dir := t.TempDir()
	chartDir, err := filepath.Abs("../../test/charts/ks-core-mini")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := chartutil.Save(ch, dir) // ks-core-1.1.5.tgz, no .prov beside it
	if err != nil {
		t.Fatal(err)
	}
	realDir := filepath.Join(dir, "real")
	if err := os.Mkdir(realDir, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "work-link")
	if err := os.Symlink(realDir, link); err != nil {
		t.Fatal(err)
	}
	work := func(name string) string { return filepath.Join(dir, "work-"+name) }

	// The plan sees ks-core at revision 1 (chart ks-core-1.1.5).
	planPath := filepath.Join(dir, "plan.json")
	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "plan", "--out", planPath); code != 0 {
		t.Fatalf("plan: %s", errOut)
	}
	helm := func() *action.Configuration {
		cfg, err := kube.HelmConfig(st.CP.Config, fixture.KubeSphereNamespace)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// A new ks-core, as an operator (or an attacker) installs it with Helm:
	// no templates, so that only the release record changes.
	newCore := func(version string) *chart.Chart {
		return &chart.Chart{Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "ks-core", Version: version, AppVersion: "v4.1.3"}}
	}
	reinstalledSamePlan := func() {
		un := action.NewUninstall(helm())
		un.DisableHooks = true
		if _, err := un.Run("ks-core"); err != nil {
			t.Fatalf("helm uninstall ks-core: %v", err)
		}
		in := action.NewInstall(helm())
		in.ReleaseName, in.Namespace = "ks-core", fixture.KubeSphereNamespace
		if _, err := in.Run(newCore("1.1.5"), nil); err != nil {
			t.Fatalf("helm install ks-core: %v", err)
		}
	}
	upgraded := func() {
		up := action.NewUpgrade(helm())
		up.Namespace = fixture.KubeSphereNamespace
		if _, err := up.Run("ks-core", newCore("1.1.6"), nil); err != nil {
			t.Fatalf("helm upgrade ks-core: %v", err)
		}
	}

	cases := []struct {
		name  string
		args  []string
		setup func()
		want  string
	}{
		{"reinstall: http chart", []string{"reinstall", "--chart", "http://127.0.0.1:1/ks-core-1.1.5.tgz", "--version", "1.1.5", "--confirm", "--work-dir", work("http")}, nil, "plain http://"},
		{"reinstall: oci chart without --version", []string{"reinstall", "--chart", "oci://127.0.0.1:1/kubesphere/ks-core", "--confirm", "--work-dir", work("oci")}, nil, "--version is required"},
		{"reinstall: https chart without --version", []string{"reinstall", "--chart", "https://127.0.0.1:1/ks-core-1.1.5.tgz", "--confirm", "--work-dir", work("https")}, nil, "--version is required"},
		{"reinstall: a version range", []string{"reinstall", "--chart", "oci://127.0.0.1:1/kubesphere/ks-core", "--version", ">=1.0", "--confirm", "--work-dir", work("range")}, nil, "not an exact version"},
		{"reinstall: a name from Helm's repository list", []string{"reinstall", "--chart", "kubesphere/ks-core", "--version", "1.1.5", "--confirm", "--work-dir", work("repo")}, nil, "not looked up"},
		{"reinstall: --verify, chart without provenance", []string{"reinstall", "--chart", tgz, "--verify", "--keyring", filepath.Join(dir, "pubring.gpg"), "--confirm", "--work-dir", work("verify")}, nil, "could not load provenance file"},
		{"reinstall: --verify, chart directory", []string{"reinstall", "--chart", chartDir, "--verify", "--keyring", filepath.Join(dir, "pubring.gpg"), "--confirm", "--work-dir", work("verify-dir")}, nil, "a directory has none"},
		{"reinstall: chart of another version", []string{"reinstall", "--chart", tgz, "--version", "1.1.4", "--confirm", "--work-dir", work("version")}, nil, "not --version 1.1.4"},
		{"reinstall: work-dir a symlink", []string{"reinstall", "--chart", chartDir, "--confirm", "--work-dir", link}, nil, "work directory " + link + " is a symbolic link"},
		{"apply: ks-core uninstalled and installed again since planning", []string{"apply", planPath, "--confirm"}, reinstalledSamePlan, "installed again since"},
		{"apply: ks-core upgraded since planning", []string{"apply", planPath, "--confirm"}, upgraded, "release kubesphere-system/ks-core was revision 1 when planned, now 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			runRefused(t, st.CP, 2, []string{c.want}, append([]string{"--kubeconfig", kc}, c.args...)...)
		})
	}
	// The symlink's target was left as it was: nothing written through it.
	if left, _ := os.ReadDir(realDir); len(left) > 0 {
		t.Fatalf("reinstall wrote %s through the symlinked --work-dir", left[0].Name())
	}
	// The release the plan did not see is still there.
	if rel, err := helm().Releases.Last("ks-core"); err != nil || rel.Version != 2 || rel.Chart.Metadata.Version != "1.1.6" {
		t.Fatalf("ks-core after the refusals: %v %+v", err, rel)
	}
}

package uninstall

import (
	"errors"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	helmtime "helm.sh/helm/v3/pkg/time"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
)

// Helm's uninstall reports a record already gone as text; both forms seen
// (1.22 and 1.24 runs of the 3.4.1 teardown) are recognised, and nothing
// else: a failed resource delete is still a failure.
func TestPurgeRaced(t *testing.T) {
	for msg, want := range map[string]bool{
		"uninstallation completed with 1 error(s): uninstall: Failed to purge the release: release: not found":                                true,
		`uninstallation completed with 1 error(s): uninstall: Failed to purge the release: secrets "sh.helm.release.v1.ks-core.v1" not found`: true,
		"uninstallation completed with 2 error(s): failed to delete release: x; uninstall: Failed to purge the release: release: not found":   false,
		`uninstallation completed with 1 error(s): failed to delete deployments "ks-apiserver": not found`:                                    false,
		"context deadline exceeded": false,
	} {
		if got := purgeRaced(errors.New(msg)); got != want {
			t.Errorf("%q: %v, want %v", msg, got, want)
		}
	}
}

// A helm-uninstall step uninstalls only the release the plan saw: a newer
// revision, another chart, or the same revision number deployed at another
// time (uninstalled and installed again) is refused; the release as planned
// passes.
func TestReleaseChanged(t *testing.T) {
	planned := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	rel := func(rev int, chartVersion string, deployed time.Time) *release.Release {
		return &release.Release{Name: "ks-core", Namespace: "kubesphere-system", Version: rev,
			Info:  &release.Info{LastDeployed: helmtime.Time{Time: deployed}},
			Chart: &chart.Chart{Metadata: &chart.Metadata{Name: "ks-core", Version: chartVersion}}}
	}
	step := func(ref *api.ReleaseRef, rv string) *api.Step {
		return &api.Step{ID: "helm-1", Action: api.ActionHelmUninstall, Release: ref,
			Target: api.ObjectRef{APIVersion: "helm.sh/v3", Kind: "Release", Namespace: "kubesphere-system", Name: "ks-core", ResourceVersion: rv}}
	}
	ref := plan.ReleaseRef(rel(2, "1.1.5", planned))
	// As a plan file stores it: deployed is read back from JSON, in another
	// location; the same instant is the same deployment.
	local := planned.In(time.FixedZone("X", 3600))
	for _, c := range []struct {
		name string
		step *api.Step
		now  *release.Release
		want string // "" = unchanged
	}{
		{"as planned", step(ref, "2"), rel(2, "1.1.5", local), ""},
		{"upgraded since", step(ref, "2"), rel(3, "1.1.6", planned.Add(time.Hour)), "was revision 2 when planned, now 3"},
		{"installed again since", step(ref, "2"), rel(2, "1.1.5", planned.Add(time.Hour)), "installed again since"},
		{"another chart, same revision", step(ref, "2"), rel(2, "1.2.0", planned), "was chart ks-core-1.1.5 when planned, now ks-core-1.2.0"},
		{"older plan: revision from resourceVersion", step(nil, "2"), rel(3, "1.1.5", planned), "was revision 2 when planned, now 3"},
		{"older plan: same revision", step(nil, "2"), rel(2, "1.1.5", planned), ""},
		{"no revision recorded", step(nil, ""), rel(1, "1.1.5", planned), "no planned revision"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := releaseChanged(c.step, c.now)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused the release as planned: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

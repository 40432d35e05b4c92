package uninstall

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
)

// helmUninstall removes a release through the Helm SDK, hooks off unless
// asked for. It refuses when the release's manifest includes a protected
// object: uninstalling would delete it.
func (x *executor) helmUninstall(s *api.Step) (string, error) {
	ac, err := kube.HelmConfig(x.Clients.Config, s.Target.Namespace)
	if err != nil {
		return "", err
	}
	last, err := ac.Releases.Last(s.Target.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return "skip: release already gone", nil
	}
	if err != nil {
		return "", err
	}
	if hit := x.protectedIn(last.Manifest); hit != "" {
		return "", fmt.Errorf("release %s/%s installs protected %s; uninstalling it would delete that: take it out of the release first (helm upgrade), then run apply again", s.Target.Namespace, s.Target.Name, hit)
	}
	u := action.NewUninstall(ac)
	u.DisableHooks = !x.HelmHooks
	u.DryRun = x.DryRun
	u.Timeout = 5 * time.Minute
	resp, err := u.Run(s.Target.Name)
	if err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) {
			return "skip: release already gone", nil
		}
		if purgeRaced(err) {
			// Its records went meanwhile with their namespace (a system
			// namespace a deleted Workspace owned, taken by the garbage
			// collector), after Helm had deleted the release's resources.
			if _, lerr := ac.Releases.Last(s.Target.Name); errors.Is(lerr, driver.ErrReleaseNotFound) {
				return fmt.Sprintf("uninstalled revision %d; its release records were deleted meanwhile with namespace %s", last.Version, s.Target.Namespace), nil
			}
		}
		return "", err
	}
	if !x.DryRun {
		x.written()
	}
	info := ""
	if resp != nil && resp.Info != "" {
		info = ": " + resp.Info
	}
	return fmt.Sprintf("uninstalled revision %d (hooks %s)%s", last.Version, map[bool]string{true: "run", false: "skipped"}[x.HelmHooks], info), nil
}

// purgeRaced: Helm deleted the release's resources, and its one error was
// in deleting its records ("release: not found", or the Secret's own "not
// found"; Helm reports it as text, without an error to match). The caller
// then checks the records are gone.
func purgeRaced(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "completed with 1 error(s)") && strings.Contains(msg, "Failed to purge the release") && strings.Contains(msg, "not found")
}

// protectedIn returns the first protected object a manifest names.
func (x *executor) protectedIn(manifest string) string {
	protected := map[string]bool{}
	for _, r := range x.Plan.Protected {
		protected[r.Kind+"/"+r.Namespace+"/"+r.Name] = true
	}
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var m struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if yaml.Unmarshal([]byte(doc), &m) != nil || m.Kind == "" {
			continue
		}
		if protected[m.Kind+"/"+m.Metadata.Namespace+"/"+m.Metadata.Name] {
			return m.Kind + " " + strings.Trim(m.Metadata.Namespace+"/"+m.Metadata.Name, "/")
		}
	}
	return ""
}

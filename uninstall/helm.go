package uninstall

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// helmUninstall removes a release through the Helm SDK, hooks off unless
// asked for. It refuses when the release's manifest includes a protected
// object: uninstalling would delete it.
func (x *executor) helmUninstall(s *api.Step) (outcome, error) {
	ac, err := kube.HelmConfig(x.Clients.Config, s.Target.Namespace)
	if err != nil {
		return outcome{}, err
	}
	last, err := ac.Releases.Last(s.Target.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return skipped("release already gone"), nil
	}
	if err != nil {
		return outcome{}, err
	}
	// The preflight compared every release with the plan; this catches
	// one upgraded while the apply ran.
	if err := releaseChanged(s, last); err != nil {
		return outcome{}, err
	}
	if hit := x.protectedIn(last.Manifest, s.Target.Namespace); hit != "" {
		return outcome{}, fmt.Errorf("release %s/%s installs protected %s; uninstalling it would delete that: take it out of the release first (helm upgrade), then run apply again", s.Target.Namespace, s.Target.Name, hit)
	}
	spared, unserved, err := x.spareForeign(last)
	if err != nil {
		return outcome{}, err
	}
	if len(spared)+len(unserved) > 0 && !x.DryRun {
		// Helm uninstalls what the stored manifest lists.
		if err := ac.Releases.Update(last); err != nil {
			return outcome{}, fmt.Errorf("release %s/%s: take %s out of its record before the uninstall: %w", s.Target.Namespace, s.Target.Name, strings.Join(append(spared, unserved...), ", "), err)
		}
	}
	u := action.NewUninstall(ac)
	u.DisableHooks = !x.HelmHooks
	u.DryRun = x.DryRun
	u.Timeout = 5 * time.Minute
	resp, err := u.Run(s.Target.Name)
	if err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) {
			return skipped("release already gone"), nil
		}
		if purgeRaced(err) {
			// Its records went meanwhile with their namespace (a system
			// namespace a deleted Workspace owned, taken by the garbage
			// collector), after Helm had deleted the release's resources.
			if _, lerr := ac.Releases.Last(s.Target.Name); errors.Is(lerr, driver.ErrReleaseNotFound) {
				return done(fmt.Sprintf("uninstalled revision %d; its release records were deleted meanwhile with namespace %s", last.Version, s.Target.Namespace)), nil
			}
		}
		return outcome{}, err
	}
	if !x.DryRun {
		x.written()
	}
	info := ""
	if resp != nil && resp.Info != "" {
		info = ": " + resp.Info
	}
	verb := "uninstalled"
	if x.DryRun {
		verb = "would uninstall" // Helm's dry run changes nothing
	}
	if len(spared) > 0 {
		info += "; left in place, as their annotations name another release: " + strings.Join(spared, ", ")
	}
	if len(unserved) > 0 {
		info += fmt.Sprintf("; %d objects of types no longer served (their CRDs are gone) were not asked for", len(unserved))
	}
	return done(fmt.Sprintf("%s revision %d (hooks %s)%s", verb, last.Version, map[bool]string{true: "run", false: "skipped"}[x.HelmHooks], info)), nil
}

// spareForeign takes out of rel's manifest the objects whose own Helm
// annotations name another release, and those of types no longer served,
// and says which. Helm's uninstall deletes what the manifest lists by kind
// and name, whoever owns the object now: two charts render ClusterRole
// kube-state-metrics, a user's and KubeSphere's monitoring extension. Read
// live, not from the plan: the object can change hands after the plan was
// made.
func (x *executor) spareForeign(rel *release.Release) (spared, unserved []string, err error) {
	docs := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var kept []string
	for _, k := range keys {
		refs := footprint.ManifestObjects(docs[k], rel.Namespace)
		if len(refs) != 1 {
			kept = append(kept, docs[k])
			continue
		}
		o := refs[0]
		ri, err := x.resolver.Client(o.APIVersion, o.Kind, o.Namespace)
		if err != nil {
			// Not served: no such object exists to delete (the official
			// uninstall deletes KubeSphere's CRDs before the extensions
			// go), and Helm refuses a whole manifest it cannot map.
			unserved = append(unserved, o.Kind+" "+strings.TrimPrefix(o.Namespace+"/"+o.Name, "/"))
			continue
		}
		var live *unstructured.Unstructured
		err = kube.Retry(x.writeCtx, func() (err error) {
			live, err = ri.Get(x.writeCtx, o.Name, metav1.GetOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			kept = append(kept, docs[k])
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("release %s/%s: read %s %s before the uninstall: %w", rel.Namespace, rel.Name, o.Kind, o.Name, err)
		}
		a := live.GetAnnotations()
		if owner := a[footprint.AnnotationHelmName]; owner != "" && (owner != rel.Name || a[footprint.AnnotationHelmNS] != rel.Namespace) {
			spared = append(spared, fmt.Sprintf("%s %s (release %s/%s)", o.Kind, strings.TrimPrefix(live.GetNamespace()+"/"+o.Name, "/"), a[footprint.AnnotationHelmNS], owner))
			continue
		}
		kept = append(kept, docs[k])
	}
	if len(spared)+len(unserved) > 0 {
		rel.Manifest = strings.Join(kept, "\n---\n")
	}
	return spared, unserved, nil
}

// checkReleases refuses, before any write, a plan whose helm-uninstall
// steps would uninstall a release other than the one planned: upgraded,
// rolled back, or uninstalled and installed again since (a new ks-core
// installed after the plan was made). A release already gone is fine: its
// step skips.
func (a *stage) checkReleases(ctx context.Context) error {
	configs := map[string]*action.Configuration{}
	var changed []string
	for i := range a.Plan.Steps {
		s := &a.Plan.Steps[i]
		if s.Action != api.ActionHelmUninstall {
			continue
		}
		ns := s.Target.Namespace
		ac := configs[ns]
		if ac == nil {
			var err error
			if ac, err = kube.HelmConfig(a.Clients.Config, ns); err != nil {
				return err
			}
			configs[ns] = ac
		}
		var last *release.Release
		err := kube.Retry(ctx, func() (err error) {
			last, err = ac.Releases.Last(s.Target.Name)
			return err
		})
		if errors.Is(err, driver.ErrReleaseNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("step %s: read Helm release %s/%s: %w", s.ID, ns, s.Target.Name, err)
		}
		if err := releaseChanged(s, last); err != nil {
			changed = append(changed, err.Error())
		}
	}
	if len(changed) > 0 {
		return api.Refuse(api.FixNewPlan, "%s", strings.Join(changed, "; "))
	}
	return nil
}

// releaseChanged says how a release's latest revision differs from what its
// step recorded at planning time, or nil when it is the one planned. A step
// without a record (a plan from before records were kept) is compared by
// its target's resourceVersion, the revision then too.
func releaseChanged(s *api.Step, last *release.Release) error {
	name := s.Target.Namespace + "/" + s.Target.Name
	planned := s.Release
	if planned == nil {
		rev, err := strconv.Atoi(s.Target.ResourceVersion)
		if err != nil || rev < 1 {
			return fmt.Errorf("step %s: release %s has no planned revision to compare with (now revision %d): plan again", s.ID, name, last.Version)
		}
		planned = &api.ReleaseRef{Revision: rev}
	}
	now := plan.ReleaseRef(last)
	switch {
	case now.Revision != planned.Revision:
		return fmt.Errorf("release %s was revision %d when planned, now %d (chart %s): plan again", name, planned.Revision, now.Revision, orNone(now.Chart))
	case planned.Chart != "" && now.Chart != planned.Chart:
		return fmt.Errorf("release %s was chart %s when planned, now %s (revision %d): plan again", name, planned.Chart, orNone(now.Chart), now.Revision)
	case planned.Deployed != nil && (now.Deployed == nil || !now.Deployed.Equal(*planned.Deployed)):
		return fmt.Errorf("release %s revision %d was deployed at %s when planned, now at %s: it was installed again since: plan again", name, now.Revision, planned.Deployed.Format(time.RFC3339Nano), deployedAt(now))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func deployedAt(r *api.ReleaseRef) string {
	if r.Deployed == nil {
		return "(unknown)"
	}
	return r.Deployed.Format(time.RFC3339Nano)
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
func (x *executor) protectedIn(manifest, releaseNS string) string {
	protected := map[string]bool{}
	for _, r := range x.Plan.Protected {
		protected[r.Kind+"/"+r.Namespace+"/"+r.Name] = true
	}
	for _, o := range footprint.ManifestObjects(manifest, releaseNS) {
		switch {
		case protected[o.Kind+"/"+o.Namespace+"/"+o.Name]:
			return o.Kind + " " + o.Namespace + "/" + o.Name
		case protected[o.Kind+"//"+o.Name]: // cluster-scoped: no namespace, whatever Helm's default
			return o.Kind + " " + o.Name
		}
	}
	return ""
}

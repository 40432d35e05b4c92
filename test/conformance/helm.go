package conformance

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"

	"github.com/ks-clean/ks-clean/test/fixture"
)

// chartReleases names the Helm release each file's chart was installed as
// (the README's table: "file chart" -> release). A chart installed twice
// in one file (opensearch: master and data) is told apart by the release
// name Helm rendered into app.kubernetes.io/instance.
var chartReleases = map[string]string{
	"ks-core.yaml ks-core": "ks-core", "kubefed.yaml kubefed": "kubefed",
	"argocd.yaml argo-cd": "devops", "devops.yaml ks-devops": "devops",
	"auditing.yaml kube-auditing": "kube-auditing", "events.yaml kube-events": "ks-events",
	"edgeruntime.yaml cloudcore": "cloudcore", "gatekeeper.yaml gatekeeper": "gatekeeper",
	"elasticsearch-curator.yaml elasticsearch-curator": "elasticsearch-logging-curator",
	"gpu-monitoring.yaml dcgm-exporter":                "gpu-dcgm-exporter", "logging.yaml logsidecar-injector": "logsidecar-injector",
	"minio.yaml minio": "ks-minio", "openldap.yaml openldap-ha": "ks-openldap",
	"notification-manager.yaml notification-manager": "notification-manager",
	"opensearch.yaml opensearch":                     "", // by instance label
	"opensearch.yaml opensearch-curator":             "opensearch-logging-curator",
	"opensearch.yaml opensearch-dashboards":          "opensearch-dashboard",
	"servicemesh.yaml jaeger-operator":               "jaeger-operator", "servicemesh.yaml kiali-operator": "kiali-operator",
	"snapshot-controller.yaml snapshot-controller": "snapshot-controller",
	// 4.1.3 extensions: the host part is release <name>, the agent part
	// <name>-agent, on the host and on members alike
	"whizard-telemetry.yaml whizard-telemetry":              "whizard-telemetry",
	"whizard-monitoring.yaml whizard-monitoring":            "whizard-monitoring",
	"whizard-monitoring-agent.yaml whizard-monitoring":      "whizard-monitoring-agent",
	"whizard-monitoring-agent.host.yaml whizard-monitoring": "whizard-monitoring-agent",
	"network.yaml network":                                  "network",
	"network-agent.yaml network":                            "network-agent",
	"network-agent.host.yaml network":                       "network-agent",
	"storage-utils.yaml storage-utils":                      "storage-utils",
	"storage-utils-agent.yaml storage-utils":                "storage-utils-agent",
	"storage-utils-agent.host.yaml storage-utils":           "storage-utils-agent",
}

// releases collects, while documents are created, what each Helm release
// installed.
type releases struct {
	byKey map[string]*release.Release
}

func newReleases() *releases { return &releases{byKey: map[string]*release.Release{}} }

// releaseOf says which release installed a document: only a chart's
// templates (not its crds/, which Helm applies unmanaged).
func releaseOf(d Doc) (name, ns string, ok bool) {
	chartName, path, _ := strings.Cut(d.Source, "/")
	if !strings.Contains("/"+path, "/templates/") {
		return "", "", false
	}
	name, ok = chartReleases[filepath.Base(d.File)+" "+chartName]
	if ok && name == "" {
		name = d.Obj.GetLabels()["app.kubernetes.io/instance"]
	}
	return name, ReleaseNamespace(d.File), ok && name != ""
}

// adopt marks a document as installed by its release, as Helm 3 does (the
// release annotations and the managed-by label), and adds it to the
// release's manifest.
func (r *releases) adopt(d Doc) {
	name, ns, ok := releaseOf(d)
	if !ok {
		return
	}
	chartName, _, _ := strings.Cut(d.Source, "/")
	key := ns + "/" + name
	rel := r.byKey[key]
	if rel == nil {
		rel = &release.Release{Name: name, Namespace: ns, Version: 1,
			Chart: &chart.Chart{Metadata: &chart.Metadata{Name: chartName, Version: "0.0.0", APIVersion: "v2"}}}
		r.byKey[key] = rel
	}
	labels := d.Obj.GetLabels()
	y, err := yaml.Marshal(d.Obj.Object)
	if err != nil {
		panic(err) // it was just read from YAML
	}
	if events := d.Obj.GetAnnotations()["helm.sh/hook"]; events != "" {
		// Hooks are kept apart from the manifest, unannotated.
		h := &release.Hook{Name: d.Obj.GetName(), Kind: d.Obj.GetKind(), Path: d.Source, Manifest: string(y)}
		for _, e := range strings.Split(events, ",") {
			h.Events = append(h.Events, release.HookEvent(strings.TrimSpace(e)))
		}
		rel.Hooks = append(rel.Hooks, h)
		return
	}
	if v, found := strings.CutPrefix(labels["helm.sh/chart"], chartName+"-"); found {
		rel.Chart.Metadata.Version = v
		if av := labels["app.kubernetes.io/version"]; av != "" {
			rel.Chart.Metadata.AppVersion = av
		}
	}
	ann := d.Obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann["meta.helm.sh/release-name"], ann["meta.helm.sh/release-namespace"] = name, ns
	d.Obj.SetAnnotations(ann)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app.kubernetes.io/managed-by"] = "Helm"
	d.Obj.SetLabels(labels)
	if y, err = yaml.Marshal(d.Obj.Object); err != nil {
		panic(err)
	}
	rel.Manifest += fmt.Sprintf("---\n# Source: %s\n%s", d.Source, y)
}

// write stores each release's record through Helm's storage, deployed.
func (r *releases) write(ctx context.Context, s *fixture.Seeder, l *Loaded) error {
	keys := make([]string, 0, len(r.byKey))
	for k := range r.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	now := helmtime.Now()
	for _, k := range keys {
		rel := r.byKey[k]
		rel.Info = &release.Info{Status: release.StatusDeployed, FirstDeployed: now, LastDeployed: now, Description: "Install complete"}
		if err := storage.Init(driver.NewSecrets(s.Kube.CoreV1().Secrets(rel.Namespace))).Create(rel); err != nil {
			return fmt.Errorf("helm release %s: %w", k, err)
		}
		s.RecordExisting(ctx, fixture.Footprint, "Secret", rel.Namespace, fmt.Sprintf("sh.helm.release.v1.%s.v1", rel.Name))
		l.Releases = append(l.Releases, k)
	}
	return nil
}

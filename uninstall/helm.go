package uninstall

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/ks-clean/ks-clean/plan"
)

// restGetter hands Helm the same connection ks-clean uses.
type restGetter struct {
	cfg *rest.Config
	ns  string
}

func (g restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }
func (g restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(g.cfg)
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}
func (g restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(dc), nil
}
func (g restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.ns}})
}

// HelmConfig is a Helm action configuration for a namespace on a cluster.
func HelmConfig(cfg *rest.Config, namespace string) (*action.Configuration, error) {
	ac := &action.Configuration{}
	if err := ac.Init(restGetter{cfg: cfg, ns: namespace}, namespace, "secret", func(string, ...any) {}); err != nil {
		return nil, err
	}
	return ac, nil
}

// helmUninstall removes a release through the Helm SDK, hooks off unless
// asked for. It refuses when the release's manifest includes a protected
// object: uninstalling would delete it.
func (x *executor) helmUninstall(s *plan.Step) (string, error) {
	ac, err := HelmConfig(x.Clients.Config, s.Target.Namespace)
	if err != nil {
		return "", err
	}
	last, err := ac.Releases.Last(s.Target.Name)
	if err == driver.ErrReleaseNotFound {
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
		if strings.Contains(err.Error(), "not found") {
			return "skip: release already gone", nil
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

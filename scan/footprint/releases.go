package footprint

import (
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// helmReason: the object belongs to a footprint Helm release, by its
// release annotations or, when it has none, by the release's manifest; or
// its annotations name a release in a namespace KubeSphere/KubeFed create
// for themselves (the record can be gone with its namespace, the object
// not).
func (f *Footprint) helmReason(obj *inventory.Object) string {
	if owner := helmOwner(obj); owner != "" {
		if f.releases[owner] {
			return "of Helm release " + owner
		}
		if ns, _, _ := strings.Cut(owner, "/"); IsSystemNamespaceName(ns) {
			return "of Helm release " + owner + " (its namespace is KubeSphere's/KubeFed's)"
		}
		// The object says another release owns it: a footprint manifest
		// listing the same name (two charts render kube-state-metrics) is
		// not evidence against that.
		return ""
	}
	if rel := f.inRelease[objectKey(obj)]; rel != "" {
		return "listed in the manifest of Helm release " + rel
	}
	if rel := f.inHooks[objectKey(obj)]; rel != "" {
		return "listed among the hooks of Helm release " + rel
	}
	return ""
}

func objectKey(o *inventory.Object) string {
	return manifestKey(o.Resource.GVR.Group, o.Resource.Kind, o.GetNamespace(), o.GetName())
}

// helmOwner is "namespace/name" of the release that installed an object.
func helmOwner(obj *inventory.Object) string {
	a := obj.GetAnnotations()
	if a[AnnotationHelmName] == "" {
		return ""
	}
	return a[AnnotationHelmNS] + "/" + a[AnnotationHelmName]
}

func extReleaseNames(inv *inventory.Inventory) map[string]bool {
	out := map[string]bool{}
	for _, ip := range inv.OfKind("kubesphere.io", "InstallPlan") {
		if n, _, _ := unstructured.NestedString(ip.Content.Object, "status", "releaseName"); n != "" {
			out[n] = true
		} else {
			out[ip.GetName()] = true
		}
	}
	return out
}

// classifyReleases keeps the latest revision of each footprint release: in
// a namespace KubeSphere/KubeFed create for themselves, an extension's, or
// one the installer's ClusterConfiguration says it installed (components).
// It indexes what their manifests hold.
func (f *Footprint) classifyReleases(inv *inventory.Inventory, extNames map[string]bool, components map[string]string) {
	latest := map[string]*release.Release{}
	for _, r := range inv.Releases {
		k := r.Namespace + "/" + r.Name
		if !(f.SystemNamespaces[r.Namespace] || IsSystemNamespaceName(r.Namespace) || extNames[r.Name] || components[k] != "") {
			continue
		}
		if cur := latest[k]; cur == nil || r.Version > cur.Version {
			latest[k] = r
		}
	}
	keys := make([]string, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f.releases, f.inRelease, f.inHooks = map[string]bool{}, map[string]string{}, map[string]string{}
	for _, k := range keys {
		r := latest[k]
		f.Releases = append(f.Releases, r)
		f.releases[k] = true
		index(f.inRelease, k, r.Namespace, r.Manifest)
		for _, h := range r.Hooks {
			index(f.inHooks, k, r.Namespace, h.Manifest)
		}
	}
}

// dropComponentReleases takes back the releases a component's evidence
// alone made footprint in namespace ns, and says which.
func (f *Footprint) dropComponentReleases(ns string, components map[string]string) []string {
	var dropped []string
	keep := f.Releases[:0]
	for _, r := range f.Releases {
		k := r.Namespace + "/" + r.Name
		if r.Namespace == ns && components[k] != "" && !IsSystemNamespaceName(ns) {
			dropped = append(dropped, "Helm release "+k)
			delete(f.releases, k)
			continue
		}
		keep = append(keep, r)
	}
	f.Releases = keep
	for _, idx := range []map[string]string{f.inRelease, f.inHooks} {
		for key, rel := range idx {
			if !f.releases[rel] {
				delete(idx, key)
			}
		}
	}
	return dropped
}

func orNone(ss []string, none string) string {
	if len(ss) == 0 {
		return none
	}
	return strings.Join(ss, ", ")
}

// ManifestObjects are the objects a Helm manifest names; a namespaced one
// without a namespace is in defaultNS (the release's), as Helm installs it.
func ManifestObjects(manifest, defaultNS string) []api.ObjectRef {
	var out []api.ObjectRef
	for _, m := range releaseutil.SplitManifests(manifest) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(m), &head); err != nil || head.Kind == "" || head.Metadata.Name == "" {
			continue
		}
		ns := head.Metadata.Namespace
		if ns == "" {
			ns = defaultNS
		}
		out = append(out, api.ObjectRef{APIVersion: head.APIVersion, Kind: head.Kind, Namespace: ns, Name: head.Metadata.Name})
	}
	return out
}

// index records, under manifestKey, the objects of a release's manifest.
func index(into map[string]string, rel, relNS, manifest string) {
	for _, o := range ManifestObjects(manifest, relNS) {
		into[manifestKey(o.Group(), o.Kind, o.Namespace, o.Name)] = rel
		into[manifestKey(o.Group(), o.Kind, "", o.Name)] = rel
	}
}

// manifestKey names an object across versions. A manifest does not say
// whether a kind is namespaced: both keys are indexed, and an object is
// looked up under its real namespace ("" when cluster-scoped).
func manifestKey(group, kind, ns, name string) string {
	return group + "/" + kind + " " + ns + "/" + name
}

// installedComponents reads the installer's ClusterConfiguration: the
// releases ("namespace/name") and namespaces of the components it says
// are on, each mapped to the component's switch.
func installedComponents(inv *inventory.Inventory) (releases, namespaces map[string]string) {
	releases, namespaces = map[string]string{}, map[string]string{}
	for _, cc := range inv.OfKind("installer.kubesphere.io", "ClusterConfiguration") {
		if cc.GetName() != "ks-installer" || cc.Content == nil {
			continue
		}
		for _, c := range installerComponents {
			v, found, _ := unstructured.NestedFieldNoCopy(cc.Content.Object, append([]string{"spec"}, c.Switch...)...)
			if !found || fmt.Sprint(v) != c.On {
				continue
			}
			what := "the ClusterConfiguration's " + strings.Join(c.Switch, ".")
			for _, r := range c.Releases {
				releases[r] = what
			}
			for _, n := range c.Namespaces {
				namespaces[n] = what
			}
		}
	}
	return releases, namespaces
}

// installedExtensions finds KubeSphere 4.x extensions where the host's
// records (InstallPlans, Extensions) do not say where they are: on a
// member, or after the official uninstall deleted the records' CRDs. The
// InstallPlan controller labels an extension's target namespace
// kubesphere.io/extension-ref, and its post-renderer labels every object
// of the release's manifest so; Helm stores the post-rendered manifest. It
// returns the releases ("namespace/name") and namespaces, each mapped to
// its evidence.
func installedExtensions(inv *inventory.Inventory) (releases, namespaces map[string]string) {
	releases, namespaces = map[string]string{}, map[string]string{}
	for _, ns := range inv.OfKind("", "Namespace") {
		if x := ns.GetLabels()[LabelExtensionRef]; x != "" && !api.KubernetesNamespaces[ns.GetName()] {
			why := "its label " + LabelExtensionRef + "=" + x
			namespaces[ns.GetName()] = why
			releases[ns.GetName()+"/"+x], releases[ns.GetName()+"/"+x+"-agent"] = why, why
		}
	}
	for _, r := range inv.Releases {
		if x := extensionOfManifest(r.Manifest); x != "" && !api.KubernetesNamespaces[r.Namespace] {
			why := "Helm release " + r.Name + ", whose manifest labels every object " + LabelExtensionRef + "=" + x
			releases[r.Namespace+"/"+r.Name] = why
			if namespaces[r.Namespace] == "" {
				namespaces[r.Namespace] = why
			}
		}
	}
	return releases, namespaces
}

// extensionOfManifest is the extension every object of a manifest is
// labelled with, or "" when one is not (or the manifest is empty).
func extensionOfManifest(manifest string) string {
	x := ""
	for _, m := range releaseutil.SplitManifests(manifest) {
		var head struct {
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(m), &head); err != nil {
			return ""
		}
		v := head.Metadata.Labels[LabelExtensionRef]
		if v == "" || (x != "" && v != x) {
			return ""
		}
		x = v
	}
	return x
}

// releaseRecord: a Helm release record (Secret) of a footprint release.
func (f *Footprint) releaseRecord(o *inventory.Object) bool {
	l := o.GetLabels()
	return o.Resource.Kind == "Secret" && l["owner"] == "helm" && f.releases[o.GetNamespace()+"/"+l["name"]]
}

package rbac

import (
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// ScanFor is the scan role for the cluster res was scanned from (by an
// account that could read it all): every type it serves, and Secrets in
// the namespaces of KubeSphere's and KubeFed's Helm releases, of KubeFed's
// cluster records, and the namespaces the teardown deletes whole.
func ScanFor(res *scan.Result, subject Subject) *Roles {
	fp := res.Footprint
	var served []GroupResource
	for _, r := range fp.Inv.Resources {
		served = append(served, GroupResource{Group: r.GVR.Group, Resource: r.GVR.Resource})
	}
	var namespaces []string
	for _, rel := range fp.Releases {
		namespaces = append(namespaces, rel.Namespace)
	}
	for _, kfc := range fp.Inv.OfKind("core.kubefed.io", "KubeFedCluster") {
		namespaces = append(namespaces, kfc.GetNamespace())
	}
	for ns := range fp.SystemNamespaces {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	return Scan(served, namespaces, subject)
}

// ApplyName names the apply role of a plan: one per plan, so that roles of
// plans reviewed at different times never merge.
func ApplyName(p *api.Plan) string {
	d := strings.TrimPrefix(p.Digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return "ks-clean-apply-" + d
}

// ApplyFor is the apply role of the stages of p that run on the cluster
// res was scanned from (context names it in a plan of several stages):
// ForStage, with types resolved and release manifests read from the scan.
// A plan file is a claim: each stage is first derived again from the scan
// (plan.Rederive), so a plan edited and sealed again cannot have a role
// grant what apply would refuse to do.
func ApplyFor(p *api.Plan, context string, res *scan.Result, subject Subject) (*Roles, error) {
	inv := res.Footprint.Inv
	kinds := map[schema.GroupKind]schema.GroupVersionResource{}
	namespaced := map[schema.GroupKind]bool{}
	for _, r := range inv.Resources {
		gk := schema.GroupKind{Group: r.GVR.Group, Kind: r.Kind}
		kinds[gk], namespaced[gk] = r.GVR, r.Namespaced
	}
	resolve := func(apiVersion, kind string) (string, bool, bool) {
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil {
			return "", false, false
		}
		gk := schema.GroupKind{Group: gv.Group, Kind: kind}
		gvr, ok := kinds[gk]
		return gvr.Resource, namespaced[gk], ok
	}
	manifests := map[string][]api.ObjectRef{}
	for _, rel := range inv.Releases {
		manifests[rel.Namespace+"/"+rel.Name] = append(manifests[rel.Namespace+"/"+rel.Name], footprint.ManifestObjects(rel.Manifest, rel.Namespace)...)
	}
	var perms []Permission
	for i := range p.Stages {
		st := &p.Stages[i]
		if len(p.Stages) > 1 && st.Cluster.Context != context {
			continue
		}
		if _, err := plan.Rederive(res.Footprint, st); err != nil {
			return nil, err
		}
		perms = append(perms, ForStage(st, resolve, manifests)...)
	}
	return Build(ApplyName(p), perms, subject), nil
}

package plan

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// unjoin plans what a host does before its members are torn down: its
// controllers stop (so nothing on the host acts on a member any more), the
// webhooks that would refuse the deletes go, and the members' records on the
// host (KubeSphere Clusters, KubeFedClusters and the token Secrets they use)
// are deleted. The host's own teardown is a later stage, so this one ends
// with no verify step. Each record's Reason says which member it is.
func unjoin(host *scan.Result, records []*footprint.Member, findings []api.Finding) api.Stage {
	b := start(host)
	b.removeAll(api.PhaseKubeFed, records)
	seen := map[string]bool{}
	for _, m := range records {
		if m.Obj.Resource.Kind != "KubeFedCluster" || m.Obj.Content == nil {
			continue
		}
		name, _, _ := unstructured.NestedString(m.Obj.Content.Object, "spec", "secretRef", "name")
		sec := host.Footprint.Inv.Secrets[m.Obj.GetNamespace()+"/"+name]
		if sec == nil || seen[string(sec.UID)] {
			continue
		}
		seen[string(sec.UID)] = true
		t := api.ObjectRef{APIVersion: "v1", Kind: "Secret", Namespace: sec.Namespace, Name: sec.Name, UID: string(sec.UID), ResourceVersion: sec.ResourceVersion}
		b.add(api.PhaseKubeFed, api.ActionDelete, t, "join token of KubeFedCluster "+m.Obj.GetName()+": "+m.Reason, nil)
	}
	b.wait(api.PhaseKubeFed)
	return b.stage(host, api.StageUnjoin, "unjoin-members", findings, []api.ObjectRef{})
}

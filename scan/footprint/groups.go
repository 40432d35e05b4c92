// Package footprint decides, from an inventory, what belongs to KubeSphere
// and KubeFed (to be removed) and what belongs to the users but is tied to
// them (to be detached and kept). It works from what the cluster says: API
// groups, labels, annotations, owner references and finalizers, never from a
// fixed list of objects.
package footprint

import "github.com/ks-clean/ks-clean/api"

import "strings"

// IsKubeSphereGroup: kubesphere.io and every *.kubesphere.io group.
func IsKubeSphereGroup(g string) bool {
	return g == "kubesphere.io" || strings.HasSuffix(g, ".kubesphere.io")
}

// IsKubeFedGroup: kubefed.io and every *.kubefed.io group.
func IsKubeFedGroup(g string) bool {
	return g == "kubefed.io" || strings.HasSuffix(g, ".kubefed.io")
}

// IsFootprintGroup: an API group whose every object is KubeSphere's or
// KubeFed's. Groups KubeSphere installs but shares with other software
// (app.k8s.io, monitoring.coreos.com, snapshot.storage.k8s.io…) are not:
// their objects and types are judged one by one.
func IsFootprintGroup(g string) bool { return IsKubeSphereGroup(g) || IsKubeFedGroup(g) }

// FullGroup reports whether an inventory should list a group's objects whole.
func FullGroup(g string) bool { return IsFootprintGroup(g) }

// LooksLikeKubeSphere reports a name that mentions KubeSphere or KubeFed.
// It is never evidence: what looks so and is kept is reported, for a
// reviewer to see the edges of the plan.
func LooksLikeKubeSphere(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "kubesphere") || strings.Contains(n, "kubefed")
}

// Labels, annotations and finalizers KubeSphere and KubeFed set.
const (
	// GroupFederatedTypes holds KubeFed's federated objects.
	GroupFederatedTypes = "types.kubefed.io"
	// AnnotationOrphan on a federated object makes KubeFed leave the
	// copies it manages when the federated object is deleted.
	AnnotationOrphan     = "kubefed.io/orphan"
	LabelWorkspace       = "kubesphere.io/workspace"
	LabelKubeFedManaged  = "kubefed.io/managed"
	LabelManaged         = "kubesphere.io/managed"
	LabelExtensionRef    = "kubesphere.io/extension-ref"
	LabelUserRef         = "iam.kubesphere.io/user-ref"
	LabelClusterRoleHost = "cluster-role.kubesphere.io/host"
	AnnotationCreator    = "kubesphere.io/creator"
	AnnotationAggregate  = "iam.kubesphere.io/aggregation-roles"
	AnnotationHelmName   = "meta.helm.sh/release-name"
	AnnotationHelmNS     = "meta.helm.sh/release-namespace"
)

// IsFootprintFinalizer: finalizers KubeSphere or KubeFed controllers remove;
// once those controllers are gone nothing ever will.
func IsFootprintFinalizer(f string) bool {
	return strings.Contains(f, "kubesphere.io") || strings.Contains(f, "kubefed.io")
}

// systemNamespaces are created by KubeSphere 3.x/4.x and KubeFed for
// themselves (KUBESPHERE.md). Namespaces of optional components that users
// may share (istio-system, kubeedge) are not in it.
var systemNamespaces = map[string]bool{
	"kubesphere-system":               true,
	"kubesphere-controls-system":      true,
	"kubesphere-monitoring-system":    true,
	"kubesphere-monitoring-federated": true,
	"kubesphere-logging-system":       true,
	"kubesphere-devops-system":        true,
	"kubesphere-devops-worker":        true,
	"kubesphere-alerting-system":      true,
	"kubesphere-events-system":        true,
	"openpitrix-system":               true,
	"kube-federation-system":          true,
}

// IsSystemNamespaceName: a namespace KubeSphere/KubeFed create for
// themselves, whether or not it still exists (a webhook or APIService can
// outlive its namespace). Only the names they are known to use count: a
// user's namespace may well be called kubesphere-something, and a name that
// merely looks like KubeSphere's is no evidence.
func IsSystemNamespaceName(ns string) bool {
	return !api.KubernetesNamespaces[ns] && systemNamespaces[ns]
}

// LabelSystemWorkspace is the value ks-installer labels the namespaces it
// installs into with (kubesphere.io/workspace).
const LabelSystemWorkspace = "system-workspace"

// LabelBootstrapping marks Kubernetes' own RBAC (cluster-admin, view…),
// which KubeSphere's installer annotates but never owns.
const LabelBootstrapping = "kubernetes.io/bootstrapping"

// installerComponents: what ks-installer 3.x installs outside KubeSphere's
// own namespaces when its ClusterConfiguration switches a component on: the
// Helm releases ("namespace/name") and the namespaces it creates for them
// (and labels as system-workspace). The ClusterConfiguration is the
// installer's own record; a release or namespace counts as KubeSphere's
// only when the switch is on and the cluster holds exactly that one.
var installerComponents = []struct {
	Switch     []string // path in spec
	On         string   // value that means on ("true" for booleans)
	Releases   []string
	Namespaces []string
}{
	{[]string{"devops", "enabled"}, "true", []string{"argocd/devops"}, []string{"argocd"}},
	{[]string{"servicemesh", "enabled"}, "true", []string{"istio-system/jaeger-operator", "istio-system/kiali-operator"}, []string{"istio-system"}},
	{[]string{"edgeruntime", "enabled"}, "true", []string{"kubeedge/cloudcore"}, []string{"kubeedge"}},
	{[]string{"kubeedge", "enabled"}, "true", []string{"kubeedge/cloudcore"}, []string{"kubeedge"}},
	{[]string{"gatekeeper", "enabled"}, "true", []string{"gatekeeper-system/gatekeeper"}, []string{"gatekeeper-system"}},
	{[]string{"network", "topology", "type"}, "weave-scope", nil, []string{"weave"}},
}

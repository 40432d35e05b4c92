// Package footprint decides, from an inventory, what belongs to KubeSphere
// and KubeFed (to be removed) and what belongs to the users but is tied to
// them (to be detached and kept). It works from what the cluster says: API
// groups, labels, annotations, owner references and finalizers, never from a
// fixed list of objects.
package footprint

import "strings"

// IsKubeSphereGroup: kubesphere.io and every *.kubesphere.io group.
func IsKubeSphereGroup(g string) bool {
	return g == "kubesphere.io" || strings.HasSuffix(g, ".kubesphere.io")
}

// IsKubeFedGroup: kubefed.io and every *.kubefed.io group.
func IsKubeFedGroup(g string) bool {
	return g == "kubefed.io" || strings.HasSuffix(g, ".kubefed.io")
}

// AppGroup is the application CRD group KubeSphere installs; other software
// uses it too, so it counts only where KubeSphere is present.
const AppGroup = "app.k8s.io"

// FullGroup reports whether an inventory should list a group's objects whole.
func FullGroup(g string) bool { return IsKubeSphereGroup(g) || IsKubeFedGroup(g) || g == AppGroup }

// Labels, annotations and finalizers KubeSphere and KubeFed set.
const (
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
	return !kubernetesNamespaces[ns] && systemNamespaces[ns]
}

// releaseNames are Helm releases KubeSphere and KubeFed install outside
// their own namespaces, or whose name alone identifies them.
var releaseNames = map[string]bool{
	"ks-core": true, "ks-crds": true, "kubefed": true, "ks-redis": true, "ks-openldap": true, "ks-minio": true,
}

// Never deleted, whatever labels or owners say: Kubernetes' own namespaces.
var kubernetesNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}

// IsKubeSphereClusterRBACName: cluster-scoped RBAC that KubeSphere or KubeFed
// name after themselves.
func IsKubeSphereClusterRBACName(name string) bool {
	return strings.Contains(name, "kubesphere") || strings.HasPrefix(name, "kubefed") ||
		strings.HasPrefix(name, "system:kubefed") || name == "ks-installer"
}

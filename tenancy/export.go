// Package tenancy is `ks-clean tenancy export|import`: KubeSphere's users,
// workspaces, roles, role bindings and the namespace → workspace map, carried
// over a reinstall (`reinstall --keep-tenancy`) in a file people can read and
// edit.
//
// An uninstall removes all of it, and an install starts from nothing but the
// built-in roles and the admin user: without a carry-over, every user and
// workspace is re-created by hand.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// Annotations of tenancy objects; KubeSphere's labels are scan/footprint's.
const (
	// AnnotationPasswordEncrypted says spec.password is a hash; it goes with
	// the password.
	AnnotationPasswordEncrypted = "iam.kubesphere.io/password-encrypted"
	helmRelease                 = "meta.helm.sh/release-name"
)

// ErrNoTenancy: the cluster serves no KubeSphere users.
var ErrNoTenancy = errors.New("no KubeSphere tenancy API on this cluster")

// ExportOptions tune an export.
type ExportOptions struct {
	// KeepPasswords keeps users' password hashes; without it users have no
	// password after the import (an administrator sets one, or they log in
	// through an identity provider).
	KeepPasswords bool
}

// Export reads a cluster's tenancy. It writes nothing.
type Export struct {
	Clients *kube.Clients
	Options ExportOptions
}

// Run exports.
func (e *Export) Run(ctx context.Context) (*api.Tenancy, error) {
	t := &api.Tenancy{APIVersion: api.APIVersion, Kind: api.KindTenancy, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Server: e.Clients.Config.Host, Passwords: e.Options.KeepPasswords, Namespaces: map[string]string{}, Objects: []*unstructured.Unstructured{}}
	ks, err := e.Clients.Kube.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read kube-system (the cluster's identity): %w", err)
	}
	t.KubeSystemUID = string(ks.UID)

	res := kube.NewResolver(e.Clients)
	users, _ := res.Mapper().RESTMapping(schema.GroupKind{Group: "iam.kubesphere.io", Kind: "User"})
	if users == nil {
		return nil, api.Refuse(api.FixNone, "%w: the server serves no iam.kubesphere.io User; export before the uninstall, while KubeSphere is installed", ErrNoTenancy)
	}
	t.KubeSphere = Major(users.Resource.Version)

	if err := e.namespaces(ctx, t); err != nil {
		return nil, err
	}
	for group, kinds := range api.TenancyKinds {
		for _, kind := range kinds {
			rm, err := res.Mapper().RESTMapping(schema.GroupKind{Group: group, Kind: kind})
			if err != nil {
				continue // not served by this version of KubeSphere
			}
			err = list(ctx, e.Clients, rm.Resource, func(u *unstructured.Unstructured) {
				if o := e.keep(t, u); o != nil {
					t.Objects = append(t.Objects, o)
				}
			})
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("list %s: %w", rm.Resource, err)
			}
		}
	}
	sort.SliceStable(t.Objects, func(i, j int) bool {
		a, b := t.Objects[i], t.Objects[j]
		ra, rb := api.TenancyRank(a.GroupVersionKind().Group, a.GetKind()), api.TenancyRank(b.GroupVersionKind().Group, b.GetKind())
		if ra != rb {
			return ra < rb
		}
		if a.GetAPIVersion() != b.GetAPIVersion() {
			return a.GetAPIVersion() < b.GetAPIVersion()
		}
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
	return t, nil
}

// Major is KubeSphere's major version for the version of its iam.kubesphere.io
// users: v1alpha2 is 3.x, v1beta1 is 4.x.
func Major(iamVersion string) string {
	switch iamVersion {
	case "v1alpha2":
		return "3"
	case "v1beta1":
		return "4"
	}
	return iamVersion
}

// namespaces maps the namespaces in workspaces, but for Kubernetes' own:
// KubeSphere 3.x's installer puts them in system-workspace itself, and an
// import refuses them (a workspace would own kube-system), so the RBAC in
// them is left out too.
func (e *Export) namespaces(ctx context.Context, t *api.Tenancy) error {
	return list(ctx, e.Clients, schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, func(u *unstructured.Unstructured) {
		if ws := u.GetLabels()[footprint.LabelWorkspace]; ws != "" && u.GetDeletionTimestamp() == nil && !api.KubernetesNamespaces[u.GetName()] {
			t.Namespaces[u.GetName()] = ws
		}
	})
}

// keep returns what of u goes into the file, or nil. KubeSphere's own API
// groups are tenancy whole, outside Kubernetes' and KubeSphere's own
// namespaces; Kubernetes RBAC only in a workspace's
// namespace, with KubeSphere's marks (3.x's namespace roles). What a Helm
// chart installed comes back with the chart.
func (e *Export) keep(t *api.Tenancy, u *unstructured.Unstructured) *unstructured.Unstructured {
	if u.GetDeletionTimestamp() != nil || u.GetAnnotations()[helmRelease] != "" {
		return nil
	}
	// Objects in Kubernetes' or KubeSphere's own namespaces are not
	// tenancy: the new install makes KubeSphere's, and an import refuses
	// them without --allow-privileged.
	if ns := u.GetNamespace(); api.KubernetesNamespaces[ns] || footprint.IsSystemNamespaceName(ns) {
		return nil
	}
	if u.GroupVersionKind().Group == "rbac.authorization.k8s.io" {
		if t.Namespaces[u.GetNamespace()] == "" {
			return nil
		}
		if u.GetKind() == "RoleBinding" && u.GetLabels()[footprint.LabelUserRef] == "" {
			return nil
		}
		if u.GetKind() == "Role" && u.GetAnnotations()[footprint.AnnotationCreator] == "" {
			return nil
		}
	}
	o := kube.Portable(u)
	// Finalizers are added by KubeSphere's controllers, which handle them;
	// created with them and no controller yet, an object could not be
	// deleted.
	o.SetFinalizers(nil)
	refs := o.GetOwnerReferences()
	for i := range refs {
		refs[i].UID = "" // the owner gets a new UID; import looks it up by name
	}
	o.SetOwnerReferences(refs)
	unstructured.RemoveNestedField(o.Object, "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")
	// KubeFed's marks are the federation's state, not tenancy: the new
	// install's controllers set them again where multi-cluster is on.
	if labels := o.GetLabels(); len(labels) > 0 {
		for k := range labels {
			if strings.HasPrefix(k, "kubefed.io/") {
				delete(labels, k)
			}
		}
		o.SetLabels(labels)
	}
	if o.GetKind() == "User" && !e.Options.KeepPasswords {
		unstructured.RemoveNestedField(o.Object, "spec", "password")
		unstructured.RemoveNestedField(o.Object, "metadata", "annotations", AnnotationPasswordEncrypted)
	}
	return o
}

// list pages through a resource's objects.
func list(ctx context.Context, c *kube.Clients, gvr schema.GroupVersionResource, each func(*unstructured.Unstructured)) error {
	p := kube.Pager(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return c.Dynamic.Resource(gvr).List(ctx, opts)
	})
	return p.EachListItem(ctx, metav1.ListOptions{}, func(item runtime.Object) error {
		if u, ok := item.(*unstructured.Unstructured); ok {
			each(u)
		}
		return nil
	})
}

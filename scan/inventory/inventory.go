// Package inventory reads what a cluster holds, by discovery: every listable
// resource type is listed (paginated, concurrently with a bound), the types
// ks-clean must reason about in full and everything else as metadata only, so
// owner references, labels and finalizers pointing into a KubeSphere footprint
// are found wherever they are. It never writes and never GETs objects one by
// one.
package inventory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"

	"helm.sh/helm/v3/pkg/release"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
)

// Resource is one listable API resource, at the version the server prefers.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
	Verbs      []string
	// Full is true when objects were listed whole, false for metadata only.
	Full bool
}

// APIVersion is group/version (just version for the core group).
func (r *Resource) APIVersion() string { return r.GVR.GroupVersion().String() }

// Object is one listed object.
type Object struct {
	Resource *Resource
	metav1.Object
	// Content is the whole object for Full resources, nil otherwise.
	Content *unstructured.Unstructured
}

// Ref names the object, with UID and resourceVersion.
func (o *Object) Ref() api.ObjectRef {
	return api.ObjectRef{
		APIVersion: o.Resource.APIVersion(), Kind: o.Resource.Kind,
		Namespace: o.GetNamespace(), Name: o.GetName(),
		UID: string(o.GetUID()), ResourceVersion: o.GetResourceVersion(),
	}
}

// Inventory is a read-only snapshot of a cluster.
type Inventory struct {
	Server        string
	KubeSystemUID string
	// Kubernetes is the server's version (e.g. v1.22.17), "" if unknown.
	Kubernetes string
	// TakenAt is when the inventory was taken: ages (how long a namespace
	// has been Terminating) are as of then.
	TakenAt   time.Time
	Resources []*Resource
	Objects   []*Object
	// Releases are the Helm release records (every revision), read through
	// Helm's own storage.
	Releases []*release.Release
	// Secrets holds, whole, the Secrets of the namespaces that keep KubeFed
	// cluster tokens; every other Secret is known by its metadata only.
	Secrets map[string]*corev1.Secret // "namespace/name"
	// Warnings name what could not be read (e.g. forbidden lists).
	Warnings []string
	// Unread are the types ("group/Kind") that could not be listed: the
	// scan cannot say what their objects are.
	Unread []string
	// UnreadIn are, per namespaced type ("group/Kind"), the namespaces
	// where it could not be listed although it could elsewhere: a role
	// that grants Secrets only where a scan needs them (rbac.Scan).
	UnreadIn map[string][]string

	byUID  map[types.UID]*Object
	byKind map[string][]*Object
	holds  map[string]Tally
}

// ByUID finds a listed object.
func (inv *Inventory) ByUID(uid types.UID) *Object { return inv.byUID[uid] }

// OfKind returns the objects of group/kind ("" group for core), e.g.
// OfKind("", "Namespace"), OfKind("core.kubefed.io", "KubeFedCluster").
func (inv *Inventory) OfKind(group, kind string) []*Object { return inv.byKind[group+"/"+kind] }

// Options tune collection.
type Options struct {
	// Concurrency bounds the lists in flight (default 8).
	Concurrency int
	// PageSize is the limit of each list page (default 500).
	PageSize int64
	// FullGroup reports whether a group's objects are listed whole.
	FullGroup func(group string) bool
}

// Resources listed whole in every group, because their content matters:
// namespaces (phase, finalizers), volumes and claims (binding, reclaim
// policy), workloads (replicas), RBAC (subjects),
// webhooks and APIServices (backends), Services and EndpointSlices (whether
// a backend is up).
var fullCore = map[schema.GroupResource]bool{
	{Group: "", Resource: "namespaces"}:                                                  true,
	{Group: "", Resource: "services"}:                                                    true,
	{Group: "", Resource: "persistentvolumes"}:                                           true,
	{Group: "", Resource: "persistentvolumeclaims"}:                                      true,
	{Group: "apps", Resource: "deployments"}:                                             true,
	{Group: "apps", Resource: "statefulsets"}:                                            true,
	{Group: "rbac.authorization.k8s.io", Resource: "roles"}:                              true,
	{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}:                       true,
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}:                       true,
	{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}:                true,
	{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}: true,
	{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}:   true,
	{Group: "apiregistration.k8s.io", Resource: "apiservices"}:                           true,
	{Group: "discovery.k8s.io", Resource: "endpointslices"}:                              true,
}

// Skipped: high-volume records no footprint can own and that nothing
// restores (events), and review endpoints that are not stored.
var skip = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:                    true,
	{Group: "events.k8s.io", Resource: "events"}:       true,
	{Group: "", Resource: "componentstatuses"}:         true,
	{Group: "coordination.k8s.io", Resource: "leases"}: true,
}

// Collect takes the inventory.
func Collect(ctx context.Context, c *kube.Clients, o Options) (*Inventory, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	inv := &Inventory{Server: c.Config.Host, Secrets: map[string]*corev1.Secret{}, TakenAt: time.Now()}

	resources, err := discover(ctx, c.Discovery, o.FullGroup)
	if err != nil {
		return nil, err
	}
	inv.Resources = resources
	if v, err := c.Discovery.ServerVersion(); err == nil {
		inv.Kubernetes = v.GitVersion
	}

	var mu sync.Mutex
	// Namespaced types this user may not list cluster-wide: read namespace
	// by namespace once the namespaces are known.
	var perNamespace []*Resource
	add := func(obj *Object) {
		mu.Lock()
		defer mu.Unlock()
		inv.Objects = append(inv.Objects, obj)
	}
	warn := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		inv.Warnings = append(inv.Warnings, fmt.Sprintf(format, args...))
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, r := range resources {
		g.Go(func() error {
			err := listResource(gctx, c, r, "", o.PageSize, add)
			switch {
			case err == nil:
				return nil
			case r.GVR.Resource == "namespaces" && r.GVR.Group == "":
				return fmt.Errorf("list namespaces: %w", err)
			case apierrors.IsForbidden(err) && r.Namespaced:
				mu.Lock()
				perNamespace = append(perNamespace, r)
				mu.Unlock()
				return nil
			case apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || !r.Full:
				// A metadata-only type (often an aggregated API such as
				// metrics.k8s.io whose server is down) only matters for owner
				// references into the footprint: say it was not read, and go on.
				warn("could not list %s: %v", r.GVR.GroupResource(), err)
				mu.Lock()
				inv.Unread = append(inv.Unread, r.GVR.Group+"/"+r.Kind)
				mu.Unlock()
				return nil
			default:
				return fmt.Errorf("list %s: %w", r.GVR.GroupResource(), err)
			}
		})
	}
	releasesForbidden := false
	g.Go(func() error {
		rels, err := listReleases(gctx, c, "", o.PageSize)
		if apierrors.IsForbidden(err) {
			releasesForbidden = true
			return nil
		}
		if err != nil {
			warn("could not read Helm releases: %v", err)
			return nil
		}
		inv.Releases = rels
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(perNamespace) > 0 || releasesForbidden {
		if err := inv.collectPerNamespace(ctx, c, o, perNamespace, releasesForbidden, add); err != nil {
			return nil, err
		}
	}

	inv.index()
	for _, ns := range inv.OfKind("", "Namespace") {
		if ns.GetName() == "kube-system" {
			inv.KubeSystemUID = string(ns.GetUID())
		}
	}
	if inv.KubeSystemUID == "" {
		return nil, fmt.Errorf("namespace kube-system not found on %s: is this a Kubernetes cluster, and may this user list namespaces?", inv.Server)
	}
	if err := inv.collectTokenSecrets(ctx, c, o.PageSize); err != nil {
		return nil, err
	}
	sort.Strings(inv.Warnings)
	return inv, nil
}

// discover lists the server's preferred version of every listable resource.
// A group that fails discovery (an APIService whose backend is down) is
// reported by discovery as a partial error: the rest is still usable, and the
// broken APIService is itself a finding.
func discover(ctx context.Context, d discovery.DiscoveryInterface, fullGroup func(string) bool) ([]*Resource, error) {
	var lists []*metav1.APIResourceList
	err := kube.Retry(ctx, func() (err error) {
		lists, err = d.ServerPreferredResources()
		if discovery.IsGroupDiscoveryFailedError(err) {
			return nil // one broken group (an APIService down) is itself a finding
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("discover API resources: %w", err)
	}
	var out []*Resource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, ar := range l.APIResources {
			if strings.Contains(ar.Name, "/") || !slices.Contains(ar.Verbs, "list") {
				continue
			}
			gr := schema.GroupResource{Group: gv.Group, Resource: ar.Name}
			if skip[gr] {
				continue
			}
			out = append(out, &Resource{
				GVR: gv.WithResource(ar.Name), Kind: ar.Kind, Namespaced: ar.Namespaced, Verbs: ar.Verbs,
				Full: fullCore[gr] || (fullGroup != nil && fullGroup(gv.Group)),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GVR.String() < out[j].GVR.String() })
	return out, nil
}

// listResource lists one type in namespace ("": all).
func listResource(ctx context.Context, c *kube.Clients, r *Resource, namespace string, pageSize int64, add func(*Object)) error {
	list := func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		if r.Full {
			return c.Dynamic.Resource(r.GVR).Namespace(namespace).List(ctx, opts)
		}
		return c.Metadata.Resource(r.GVR).Namespace(namespace).List(ctx, opts)
	}
	p := kube.Pager(list)
	p.PageSize = pageSize
	return p.EachListItem(ctx, metav1.ListOptions{}, func(item runtime.Object) error {
		switch v := item.(type) {
		case *unstructured.Unstructured:
			add(&Object{Resource: r, Object: v, Content: v})
		case *metav1.PartialObjectMetadata:
			add(&Object{Resource: r, Object: &v.ObjectMeta})
		default:
			return fmt.Errorf("unexpected list item %T for %s", item, r.GVR)
		}
		return nil
	})
}

// collectTokenSecrets reads, whole, the Secrets of namespaces where KubeFed
// keeps cluster tokens: the alias check connects with them.
func (inv *Inventory) collectTokenSecrets(ctx context.Context, c *kube.Clients, pageSize int64) error {
	namespaces := map[string]bool{}
	for _, kfc := range inv.OfKind("core.kubefed.io", "KubeFedCluster") {
		namespaces[kfc.GetNamespace()] = true
	}
	for ns := range namespaces {
		p := kube.Pager(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return c.Kube.CoreV1().Secrets(ns).List(ctx, opts)
		})
		p.PageSize = pageSize
		err := p.EachListItem(ctx, metav1.ListOptions{}, func(item runtime.Object) error {
			s := item.(*corev1.Secret)
			inv.Secrets[s.Namespace+"/"+s.Name] = s
			return nil
		})
		if apierrors.IsForbidden(err) {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("could not read Secrets in %s (KubeFed cluster tokens): %v", ns, err))
			continue
		}
		if err != nil {
			return fmt.Errorf("list Secrets in %s: %w", ns, err)
		}
	}
	return nil
}

func less(a, b *Object) bool {
	if a.Resource.GVR.Group != b.Resource.GVR.Group {
		return a.Resource.GVR.Group < b.Resource.GVR.Group
	}
	if a.Resource.Kind != b.Resource.Kind {
		return a.Resource.Kind < b.Resource.Kind
	}
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	return a.GetName() < b.GetName()
}

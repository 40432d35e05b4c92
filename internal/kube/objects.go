package kube

import (
	"context"
	"fmt"
	"math"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// ServerSet are the fields the API server sets on an object; an object put
// back into a cluster (restore, tenancy import) is sent without them.
var ServerSet = [][]string{
	{"metadata", "uid"}, {"metadata", "resourceVersion"}, {"metadata", "creationTimestamp"},
	{"metadata", "generation"}, {"metadata", "managedFields"}, {"metadata", "selfLink"},
	{"metadata", "deletionTimestamp"}, {"metadata", "deletionGracePeriodSeconds"},
	{"status"},
}

// Portable is a copy of u without ServerSet, nor what a built-in
// controller keeps up to date: what can be created again.
func Portable(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	for _, f := range ServerSet {
		unstructured.RemoveNestedField(c.Object, f...)
	}
	if c.GetKind() == "ServiceAccount" && c.GetAPIVersion() == "v1" {
		// Before Kubernetes 1.24 the token controller lists the account's
		// token Secrets here: they name Secrets of the old account, and a
		// new account gets its own.
		unstructured.RemoveNestedField(c.Object, "secrets")
	}
	return c
}

// SameContent compares two objects without what the server sets and without
// their owners' UIDs (an owner created again has a new one); numbers compare
// by value, whatever decoded them (float64 from encoding/json, int64 from
// the API machinery).
func SameContent(a, b *unstructured.Unstructured) bool { return SameContentAs(a, b, Portable) }

// SameContentAs is SameContent with the caller's notion of what is sent
// (restore also strips what controllers generate).
func SameContentAs(a, b *unstructured.Unstructured, portable func(*unstructured.Unstructured) *unstructured.Unstructured) bool {
	return reflect.DeepEqual(comparable(a, portable), comparable(b, portable))
}

func comparable(u *unstructured.Unstructured, portable func(*unstructured.Unstructured) *unstructured.Unstructured) any {
	c := portable(u)
	refs := c.GetOwnerReferences()
	for i := range refs {
		refs[i].UID = ""
	}
	c.SetOwnerReferences(refs)
	if len(c.GetAnnotations()) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "annotations")
	}
	if len(c.GetLabels()) == 0 {
		unstructured.RemoveNestedField(c.Object, "metadata", "labels")
	}
	return numbers(c.Object)
}

// numbers makes every integral number an int64 and every other a float64.
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = numbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = numbers(e)
		}
		return out
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x)
		}
		return x
	case float32:
		return numbers(float64(x))
	case int:
		return int64(x)
	case int32:
		return int64(x)
	}
	return v
}

// Resolver reaches objects of any served type by apiVersion and kind,
// through discovery (custom resources included).
type Resolver struct {
	c *Clients
	m *restmapper.DeferredDiscoveryRESTMapper
}

// NewResolver caches discovery until Reset.
func NewResolver(c *Clients) *Resolver {
	return &Resolver{c: c, m: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Discovery))}
}

// Reset forgets discovery: after CRDs were created, or an install.
func (r *Resolver) Reset() { r.m.Reset() }

// Mapper is the RESTMapper behind the resolver.
func (r *Resolver) Mapper() meta.RESTMapper { return r.m }

// Resource maps apiVersion/kind to its resource; ok is false when the
// server does not serve that version of the kind.
func (r *Resolver) Resource(apiVersion, kind string) (gvr schema.GroupVersionResource, namespaced, ok bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return gvr, false, false
	}
	rm, err := r.m.RESTMapping(gv.WithKind(kind).GroupKind(), gv.Version)
	if err != nil {
		return gvr, false, false
	}
	return rm.Resource, rm.Scope.Name() == meta.RESTScopeNameNamespace, true
}

// Client is the dynamic client of apiVersion/kind in namespace (ignored for
// cluster-scoped kinds), or an error when the type is not served.
func (r *Resolver) Client(apiVersion, kind, namespace string) (dynamic.ResourceInterface, error) {
	gvr, namespaced, ok := r.Resource(apiVersion, kind)
	if !ok {
		return nil, fmt.Errorf("the server does not serve %s %s: its CustomResourceDefinition is missing", apiVersion, kind)
	}
	if namespaced {
		return r.c.Dynamic.Resource(gvr).Namespace(namespace), nil
	}
	return r.c.Dynamic.Resource(gvr), nil
}

// RemapOwners points u's owner references at its owners as they exist now
// (an owner created again has a new UID) and drops those that are not
// there, returning them as Kind/name.
func (r *Resolver) RemapOwners(ctx context.Context, u *unstructured.Unstructured) (dropped []string) {
	refs := u.GetOwnerReferences()
	if len(refs) == 0 {
		return nil
	}
	var keep []metav1.OwnerReference
	for _, ref := range refs {
		var cur *unstructured.Unstructured
		ri, err := r.Client(ref.APIVersion, ref.Kind, u.GetNamespace())
		if err == nil {
			err = Retry(ctx, func() (err error) {
				cur, err = ri.Get(ctx, ref.Name, metav1.GetOptions{})
				return err
			})
		}
		if err != nil {
			dropped = append(dropped, ref.Kind+"/"+ref.Name)
			continue
		}
		ref.UID = cur.GetUID()
		keep = append(keep, ref)
	}
	u.SetOwnerReferences(keep)
	return dropped
}

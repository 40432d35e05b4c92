package inventory

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"helm.sh/helm/v3/pkg/release"
)

// Recorded is an inventory as data: what a scan read of a cluster, so that
// classification, hazards and plans can be computed again without the
// cluster, in milliseconds (ks-clean's golden tests). Managed fields are
// left out: nothing reads them.
type Recorded struct {
	Server        string                    `json:"server"`
	KubeSystemUID string                    `json:"kubeSystemUID"`
	Kubernetes    string                    `json:"kubernetes"`
	TakenAt       time.Time                 `json:"takenAt"`
	Resources     []RecordedResource        `json:"resources"`
	Objects       []RecordedObject          `json:"objects"`
	Releases      []*release.Release        `json:"releases,omitempty"`
	Secrets       map[string]*corev1.Secret `json:"secrets,omitempty"`
	Warnings      []string                  `json:"warnings,omitempty"`
	Unread        []string                  `json:"unread,omitempty"`
	UnreadIn      map[string][]string       `json:"unreadIn,omitempty"`
	// Identities are the kube-system UIDs the cluster records' own
	// credentials read, by API server URL ("": unreachable), for
	// hazard.Options.Identify.
	Identities map[string]string `json:"identities,omitempty"`
}

// RecordedResource is one Resource.
type RecordedResource struct {
	Group      string   `json:"group"`
	Version    string   `json:"version"`
	Resource   string   `json:"resource"`
	Kind       string   `json:"kind"`
	Namespaced bool     `json:"namespaced"`
	Verbs      []string `json:"verbs"`
	Full       bool     `json:"full"`
}

// RecordedObject is one Object: its whole content for a type listed whole,
// else its metadata.
type RecordedObject struct {
	// Resource indexes Recorded.Resources.
	Resource int                `json:"resource"`
	Metadata *metav1.ObjectMeta `json:"metadata,omitempty"`
	// Content is JSON, decoded as apimachinery does (whole numbers as
	// int64, as the objects a cluster returns have them).
	Content json.RawMessage `json:"content,omitempty"`
}

// Record turns an inventory into data.
func Record(inv *Inventory) (*Recorded, error) {
	r := &Recorded{
		Server: inv.Server, KubeSystemUID: inv.KubeSystemUID, Kubernetes: inv.Kubernetes, TakenAt: inv.TakenAt,
		Releases: inv.Releases, Secrets: inv.Secrets, Warnings: inv.Warnings, Unread: inv.Unread, UnreadIn: inv.UnreadIn,
	}
	index := map[*Resource]int{}
	for i, res := range inv.Resources {
		index[res] = i
		r.Resources = append(r.Resources, RecordedResource{
			Group: res.GVR.Group, Version: res.GVR.Version, Resource: res.GVR.Resource,
			Kind: res.Kind, Namespaced: res.Namespaced, Verbs: res.Verbs, Full: res.Full,
		})
	}
	for _, o := range inv.Objects {
		ro := RecordedObject{Resource: index[o.Resource]}
		if o.Content != nil {
			c := o.Content.DeepCopy()
			c.SetManagedFields(nil)
			b, err := c.MarshalJSON()
			if err != nil {
				return nil, fmt.Errorf("record %s: %w", o.Ref(), err)
			}
			ro.Content = b
		} else {
			m := metav1.ObjectMeta{}
			if om, ok := o.Object.(*metav1.ObjectMeta); ok {
				m = *om.DeepCopy()
			}
			m.ManagedFields = nil
			ro.Metadata = &m
		}
		r.Objects = append(r.Objects, ro)
	}
	return r, nil
}

// Load turns recorded data back into an inventory, indexed as Collect
// leaves one.
func Load(r *Recorded) (*Inventory, error) {
	inv := &Inventory{
		Server: r.Server, KubeSystemUID: r.KubeSystemUID, Kubernetes: r.Kubernetes, TakenAt: r.TakenAt,
		Releases: r.Releases, Secrets: r.Secrets, Warnings: r.Warnings, Unread: r.Unread, UnreadIn: r.UnreadIn,
	}
	if inv.Secrets == nil {
		inv.Secrets = map[string]*corev1.Secret{}
	}
	for _, rr := range r.Resources {
		inv.Resources = append(inv.Resources, &Resource{
			GVR:  schema.GroupVersionResource{Group: rr.Group, Version: rr.Version, Resource: rr.Resource},
			Kind: rr.Kind, Namespaced: rr.Namespaced, Verbs: rr.Verbs, Full: rr.Full,
		})
	}
	for i, ro := range r.Objects {
		if ro.Resource < 0 || ro.Resource >= len(inv.Resources) {
			return nil, fmt.Errorf("recorded object %d: resource %d of %d", i, ro.Resource, len(inv.Resources))
		}
		res := inv.Resources[ro.Resource]
		switch {
		case ro.Content != nil:
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(ro.Content); err != nil {
				return nil, fmt.Errorf("recorded object %d: %w", i, err)
			}
			inv.Objects = append(inv.Objects, &Object{Resource: res, Object: u, Content: u})
		case ro.Metadata != nil:
			inv.Objects = append(inv.Objects, &Object{Resource: res, Object: ro.Metadata})
		default:
			return nil, fmt.Errorf("recorded object %d has neither content nor metadata", i)
		}
	}
	inv.index()
	if inv.KubeSystemUID == "" {
		return nil, fmt.Errorf("recorded inventory of %s has no kube-system UID", inv.Server)
	}
	return inv, nil
}

// index sorts the objects and builds the lookups.
func (inv *Inventory) index() {
	sort.Slice(inv.Objects, func(i, j int) bool { return less(inv.Objects[i], inv.Objects[j]) })
	inv.byUID = map[types.UID]*Object{}
	inv.byKind = map[string][]*Object{}
	for _, obj := range inv.Objects {
		inv.byUID[obj.GetUID()] = obj
		k := obj.Resource.GVR.Group + "/" + obj.Resource.Kind
		inv.byKind[k] = append(inv.byKind[k], obj)
	}
	inv.holds = tally(inv.Objects)
}

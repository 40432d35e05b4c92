package inventory

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ks-clean/ks-clean/internal/kube"
)

// collectPerNamespace lists, namespace by namespace, the namespaced types
// this user may not list cluster-wide (Secrets, under the scan role of
// rbac.Scan), and Helm's release records if those were refused too. What a
// namespace refuses is recorded in UnreadIn and named in one warning per
// type; a type no namespace lets be read is Unread, as a refused type is.
func (inv *Inventory) collectPerNamespace(ctx context.Context, c *kube.Clients, o Options, types []*Resource, releases bool, add func(*Object)) error {
	var namespaces []string
	for _, obj := range inv.Objects {
		if obj.Resource.GVR.Group == "" && obj.Resource.GVR.Resource == "namespaces" {
			namespaces = append(namespaces, obj.GetName())
		}
	}
	sort.Strings(namespaces)
	if inv.UnreadIn == nil {
		inv.UnreadIn = map[string][]string{}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, r := range types {
		key := r.GVR.Group + "/" + r.Kind
		for _, ns := range namespaces {
			g.Go(func() error {
				err := listResource(gctx, c, r, ns, o.PageSize, add)
				if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
					mu.Lock()
					inv.UnreadIn[key] = append(inv.UnreadIn[key], ns)
					mu.Unlock()
					return nil
				}
				if err != nil {
					return fmt.Errorf("list %s in %s: %w", r.GVR.GroupResource(), ns, err)
				}
				return nil
			})
		}
	}
	var unreadReleases []string
	if releases {
		for _, ns := range namespaces {
			g.Go(func() error {
				rels, err := listReleases(gctx, c, ns, o.PageSize)
				mu.Lock()
				defer mu.Unlock()
				if apierrors.IsForbidden(err) {
					unreadReleases = append(unreadReleases, ns)
					return nil
				}
				if err != nil {
					return fmt.Errorf("read Helm releases in %s: %w", ns, err)
				}
				inv.Releases = append(inv.Releases, rels...)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sortReleases(inv.Releases)
	for _, r := range types {
		key := r.GVR.Group + "/" + r.Kind
		unread := inv.UnreadIn[key]
		sort.Strings(unread)
		if len(unread) == len(namespaces) {
			delete(inv.UnreadIn, key)
			inv.Unread = append(inv.Unread, key)
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("could not list %s in any namespace (this user may not)", r.GVR.GroupResource()))
			continue
		}
		if len(unread) > 0 {
			inv.Warnings = append(inv.Warnings, fmt.Sprintf("could not list %s in %d namespaces (this user may not: a role that grants them only where a scan needs them), %s: an owner reference there is not seen, and apply refuses a step on one", r.GVR.GroupResource(), len(unread), sample(unread)))
		}
	}
	if len(unreadReleases) > 0 {
		sort.Strings(unreadReleases)
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("could not read Helm release records in %d namespaces (this user may not read their Secrets), %s: a KubeSphere release there is not seen", len(unreadReleases), sample(unreadReleases)))
	}
	return nil
}

// sample names at most five namespaces.
func sample(ns []string) string {
	if len(ns) <= 5 {
		return fmt.Sprint(ns)
	}
	return fmt.Sprintf("%v and %d more", ns[:5], len(ns)-5)
}

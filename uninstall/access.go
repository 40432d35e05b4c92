package uninstall

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"golang.org/x/sync/errgroup"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/rbac"
)

// needed lists the permissions the plan's steps need: exactly those
// `ks-clean rbac apply` grants (rbac.ForStage), less the Helm releases'
// own objects, which Helm's uninstall reports itself.
func (a *stage) needed(targets map[string]*resolved) []rbac.Permission {
	kinds := map[string]*resolved{}
	for _, s := range a.Plan.Steps {
		if r := targets[s.ID]; r != nil && r.gvr.Resource != "" {
			kinds[s.Target.APIVersion+"/"+s.Target.Kind] = r
		}
	}
	return rbac.ForStage(a.Plan, func(apiVersion, kind string) (string, bool, bool) {
		r := kinds[apiVersion+"/"+kind]
		if r == nil {
			return "", false, false
		}
		return r.gvr.Resource, r.namespaced, true
	}, nil)
}

// checkAccess asks the apiserver (SelfSubjectAccessReview, which stores
// nothing) for the permissions and lists all that are missing. One review
// per verb, resource and namespace, for the first name the plan gives: a
// plan of thousands of steps is checked in a few dozen requests, and a role
// of resourceNames is still checked by name.
func checkAccess(ctx context.Context, kc kubernetes.Interface, needs []rbac.Permission) error {
	type key struct{ verb, group, resource, namespace string }
	first := map[key]rbac.Permission{}
	for _, n := range needs {
		k := key{n.Verb, n.Group, n.Resource, n.Namespace}
		if _, ok := first[k]; !ok {
			first[k] = n
		}
	}
	var mu sync.Mutex
	missing := map[string][]string{} // "verb resource" -> objects
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, n := range first {
		g.Go(func() error {
			// RBAC names a subresource "namespaces/finalize"; a review
			// asks for it apart.
			resource, sub, _ := strings.Cut(n.Resource, "/")
			var r *authorizationv1.SelfSubjectAccessReview
			err := kube.Retry(gctx, func() (err error) {
				r, err = kc.AuthorizationV1().SelfSubjectAccessReviews().Create(gctx, &authorizationv1.SelfSubjectAccessReview{
					Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
						Verb: n.Verb, Group: n.Group, Resource: resource, Subresource: sub, Namespace: n.Namespace, Name: n.Name,
					}},
				}, metav1.CreateOptions{})
				return err
			})
			if err != nil {
				return fmt.Errorf("check permissions: %w", err)
			}
			if !r.Status.Allowed {
				what := n.Verb + " " + n.Resource
				if n.Group != "" {
					what += "." + n.Group
				}
				where := n.Name
				if n.Namespace != "" {
					where = strings.TrimPrefix(where+" in "+n.Namespace, " ")
				}
				mu.Lock()
				missing[what] = append(missing[what], where)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(missing) > 0 {
		var lines []string
		for what, where := range missing {
			sort.Strings(where)
			if len(where) > 3 {
				where = append(where[:3], fmt.Sprintf("and %d more", len(where)-3))
			}
			if w := strings.Join(where, ", "); w != "" {
				what += " (" + w + ")"
			}
			lines = append(lines, what)
		}
		sort.Strings(lines)
		return api.Refuse(api.FixPermissions, "this user lacks permissions the plan needs: %s; bind the roles `ks-clean rbac apply PLAN` prints for this plan (with those `ks-clean rbac scan` prints) and run again", strings.Join(lines, "; "))
	}
	return nil
}

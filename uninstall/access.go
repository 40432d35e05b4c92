package uninstall

import (
	"context"
	"fmt"
	"sort"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
)

type access struct {
	verb     string
	resource schema.GroupResource
	sub      string
}

// needed lists the permissions the plan's steps need, one per verb and
// resource (namespaces are not distinguished: the plan acts cluster-wide).
func (a *stage) needed(targets map[string]*resolved) []access {
	set := map[access]bool{
		{verb: "create", resource: schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}}: true,
		{verb: "list", resource: schema.GroupResource{Resource: "namespaces"}}:                             true,
		{verb: "get", resource: schema.GroupResource{Resource: "namespaces"}}:                              true,
	}
	for _, s := range a.Plan.Steps {
		r := targets[s.ID]
		switch s.Action {
		case api.ActionScale:
			set[access{verb: "patch", resource: r.gvr.GroupResource(), sub: "scale"}] = true
			set[access{verb: "list", resource: schema.GroupResource{Resource: "pods"}}] = true
		case api.ActionPatch:
			set[access{verb: "get", resource: r.gvr.GroupResource()}] = true
			set[access{verb: "patch", resource: r.gvr.GroupResource()}] = true
		case api.ActionRetain:
			set[access{verb: "patch", resource: r.gvr.GroupResource()}] = true
		case api.ActionDelete:
			set[access{verb: "delete", resource: r.gvr.GroupResource()}] = true
		case api.ActionHelmUninstall:
			set[access{verb: "delete", resource: schema.GroupResource{Resource: "secrets"}}] = true
		}
	}
	if len(guarded(a.Plan)) > 0 {
		for _, r := range []schema.GroupResource{
			{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies"},
			{Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicybindings"},
		} {
			for _, verb := range []string{"create", "update", "delete"} { // update: taking over a leftover guard
				set[access{verb: verb, resource: r}] = true
			}
		}
		// The tripwire, where the server has no admission policies.
		for _, r := range []string{"namespaces", "persistentvolumes"} {
			set[access{verb: "list", resource: schema.GroupResource{Resource: r}}] = true
			set[access{verb: "watch", resource: schema.GroupResource{Resource: r}}] = true
		}
	}
	out := make([]access, 0, len(set))
	for k := range set {
		if k.resource.Resource != "" {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// checkAccess asks the apiserver (SelfSubjectAccessReview, which stores
// nothing) for every permission at once and lists all that are missing.
func checkAccess(ctx context.Context, kc kubernetes.Interface, needs []access) error {
	var missing []string
	for _, n := range needs {
		var r *authorizationv1.SelfSubjectAccessReview
		err := kube.Retry(ctx, func() (err error) {
			r, err = kc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: n.verb, Group: n.resource.Group, Resource: n.resource.Resource, Subresource: n.sub,
				}},
			}, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("check permissions: %w", err)
		}
		if !r.Status.Allowed {
			res := n.resource.String()
			if n.sub != "" {
				res += "/" + n.sub
			}
			missing = append(missing, n.verb+" "+res)
		}
	}
	if len(missing) > 0 {
		return api.Refuse(api.FixPermissions, "this user lacks permissions the plan needs: %s; use an account bound to the apply role (docs/rbac) and run again", strings.Join(missing, ", "))
	}
	return nil
}

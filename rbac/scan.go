package rbac

import (
	"slices"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
)

// ScanName names the scan role and its bindings.
const ScanName = "ks-clean-scan"

// GroupResource is one resource type the cluster serves.
type GroupResource struct{ Group, Resource string }

// Scan is the scan role: get, list and watch of every type served (a scan
// lists them all, by discovery, to find owner references, labels and
// finalizers that tie anything to KubeSphere), Secrets excepted; Secrets only
// in secretNamespaces. Core types are named one by one, because a rule for
// every resource of every group would grant every Secret; other groups get
// one rule each, so a type added to a group later is read too.
//
// secretNamespaces are where a scan must read Secrets: Helm release records
// (a release is classified by its chart), KubeFed cluster tokens (an alias
// check connects with them), and the namespaces the teardown deletes whole
// (apply's backup saves them). Elsewhere a scan sees no Secret: it reports
// those namespaces as unread, and apply refuses a step on a Secret it
// cannot see.
func Scan(served []GroupResource, secretNamespaces []string, subject Subject) *Roles {
	var perms []Permission
	groups := map[string]bool{}
	for _, r := range served {
		if r.Group != "" {
			groups[r.Group] = true
			continue
		}
		if r.Resource == "secrets" {
			continue
		}
		for _, v := range readVerbs {
			perms = append(perms, Permission{Verb: v, Resource: r.Resource})
		}
	}
	for g := range groups {
		for _, v := range readVerbs {
			perms = append(perms, Permission{Verb: v, Group: g, Resource: "*"})
		}
	}
	seen := map[string]bool{}
	for _, ns := range secretNamespaces {
		if seen[ns] || ns == "" {
			continue
		}
		seen[ns] = true
		for _, v := range readVerbs {
			perms = append(perms, Permission{Verb: v, Resource: "secrets", Namespace: ns})
		}
	}
	sort.Slice(perms, func(i, j int) bool { return perms[i].String() < perms[j].String() })
	return Build(ScanName, perms, subject, discoveryURLs)
}

var readVerbs = []string{"get", "list", "watch"}

// Grants reports whether roles let subject do p (resourceNames and "*"
// honoured): what the apiserver's RBAC authorizer decides for the roles
// alone.
func (r *Roles) Grants(p Permission) bool {
	rules := []rbacv1.PolicyRule{}
	if r.ClusterRole != nil {
		rules = append(rules, r.ClusterRole.Rules...)
	}
	for _, role := range r.Roles {
		if role.Namespace == p.Namespace {
			rules = append(rules, role.Rules...)
		}
	}
	for _, rule := range rules {
		if has(rule.Verbs, p.Verb) && has(rule.APIGroups, p.Group) && has(rule.Resources, p.Resource) &&
			(len(rule.ResourceNames) == 0 || (p.Name != "" && slices.Contains(rule.ResourceNames, p.Name))) {
			return true
		}
	}
	return false
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}

// Package rbac derives the least RBAC a ks-clean run needs, so that a Job or
// an operator's account is bound to what one scan or one plan does and not
// to cluster-admin in effect:
//
//   - the scan role (Scan) reads every type the cluster serves, and Secrets
//     only in the namespaces where KubeSphere and KubeFed keep what a scan
//     must read: Helm release records, KubeFed cluster tokens, and the
//     namespaces the teardown deletes whole;
//   - the apply role (Apply) adds exactly the writes of one plan: each verb
//     on each object its steps name (resourceNames), the Lease and the
//     deletion guard by name, and reads and finalizer patches inside the
//     namespaces the plan deletes.
//
// apply checks the same list before its first write (uninstall's preflight),
// so what `ks-clean rbac apply` prints and what apply asks for cannot drift.
package rbac

import (
	"fmt"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Permission is one request a run makes, as RBAC authorizes it.
type Permission struct {
	Verb     string
	Group    string
	Resource string
	// Namespace is "" for a cluster-scoped resource.
	Namespace string
	// Name is "" when the request names no object (create, list, watch) or
	// when it may touch any object of the namespace.
	Name string
}

func (p Permission) String() string {
	s := p.Verb + " " + p.Resource
	if p.Group != "" {
		s += "." + p.Group
	}
	if p.Name != "" {
		s += " " + p.Name
	}
	if p.Namespace != "" {
		s += " in " + p.Namespace
	}
	return s
}

// Subject is whom the roles are bound to.
type Subject = rbacv1.Subject

// ServiceAccount is the subject for a service account.
func ServiceAccount(namespace, name string) Subject {
	return Subject{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}
}

// User is the subject for a user name.
func User(name string) Subject {
	return Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// Roles are the objects that grant a set of permissions to one subject: a
// ClusterRole for what is cluster-scoped, a Role per namespace, and their
// bindings, all named Name.
type Roles struct {
	ClusterRole        *rbacv1.ClusterRole
	ClusterRoleBinding *rbacv1.ClusterRoleBinding
	Roles              []*rbacv1.Role
	RoleBindings       []*rbacv1.RoleBinding
}

// Objects lists them in the order to create them.
func (r *Roles) Objects() []any {
	var out []any
	if r.ClusterRole != nil {
		out = append(out, r.ClusterRole, r.ClusterRoleBinding)
	}
	for i := range r.Roles {
		out = append(out, r.Roles[i], r.RoleBindings[i])
	}
	return out
}

// YAML is the objects as documents for kubectl apply -f -.
func (r *Roles) YAML() ([]byte, error) {
	var out []byte
	for _, o := range r.Objects() {
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		out = append(append(out, "---\n"...), b...)
	}
	return out, nil
}

// Build turns permissions into roles named name, bound to subject. Extra
// rules (nonResourceURLs) go to the ClusterRole as they are.
func Build(name string, perms []Permission, subject Subject, extra ...rbacv1.PolicyRule) *Roles {
	byNS := map[string][]Permission{}
	for _, p := range perms {
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	labels := map[string]string{"app.kubernetes.io/managed-by": "ks-clean"}
	out := &Roles{}
	if rules := append(Rules(byNS[""]), extra...); len(rules) > 0 {
		out.ClusterRole = &rbacv1.ClusterRole{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Rules:      rules,
		}
		out.ClusterRoleBinding = &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{subject},
		}
	}
	var namespaces []string
	for ns := range byNS {
		if ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	sort.Strings(namespaces)
	for _, ns := range namespaces {
		out.Roles = append(out.Roles, &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Rules:      Rules(byNS[ns]),
		})
		out.RoleBindings = append(out.RoleBindings, &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{subject},
		})
	}
	return out
}

// Rules merges permissions of one namespace (or of the cluster scope) into
// policy rules: per group and resource, the names that share a set of verbs
// become one rule with those resourceNames; unnamed permissions a rule
// without them.
func Rules(perms []Permission) []rbacv1.PolicyRule {
	type gr struct{ group, resource string }
	verbs := map[gr]map[string]map[string]bool{} // gr -> name -> verbs
	for _, p := range perms {
		k := gr{p.Group, p.Resource}
		if verbs[k] == nil {
			verbs[k] = map[string]map[string]bool{}
		}
		if verbs[k][p.Name] == nil {
			verbs[k][p.Name] = map[string]bool{}
		}
		verbs[k][p.Name][p.Verb] = true
	}
	var out []rbacv1.PolicyRule
	for k, names := range verbs {
		bySet := map[string][]string{} // verb set -> names
		for name, vs := range names {
			if name == "" {
				continue
			}
			if unnamed := names[""]; unnamed != nil {
				for v := range unnamed {
					delete(vs, v) // granted for every name already
				}
				if len(vs) == 0 {
					continue
				}
			}
			bySet[setKey(vs)] = append(bySet[setKey(vs)], name)
		}
		if unnamed := names[""]; len(unnamed) > 0 {
			out = append(out, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: strings.Split(setKey(unnamed), ",")})
		}
		for set, ns := range bySet {
			sort.Strings(ns)
			out = append(out, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: strings.Split(set, ","), ResourceNames: ns})
		}
	}
	sort.Slice(out, func(i, j int) bool { return ruleKey(out[i]) < ruleKey(out[j]) })
	return out
}

func setKey(vs map[string]bool) string {
	keys := make([]string, 0, len(vs))
	for v := range vs {
		keys = append(keys, v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func ruleKey(r rbacv1.PolicyRule) string {
	return fmt.Sprint(r.APIGroups, r.Resources, r.ResourceNames, r.Verbs)
}

// discoveryURLs are what every client reads to find the API.
var discoveryURLs = rbacv1.PolicyRule{
	NonResourceURLs: []string{"/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi/*"},
	Verbs:           []string{"get"},
}

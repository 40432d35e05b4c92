package rbac

import (
	"testing"

	"github.com/ks-clean/ks-clean/api"
)

func resolver(apiVersion, kind string) (string, bool, bool) {
	switch kind {
	case "Namespace":
		return "namespaces", false, true
	case "Deployment":
		return "deployments", true, true
	case "ClusterRole":
		return "clusterroles", false, true
	case "Secret":
		return "secrets", true, true
	case "Workspace":
		return "workspaces", false, true
	}
	return "", false, false // a type the cluster no longer serves
}

func TestForStageGrantsEachStepByName(t *testing.T) {
	st := &api.Stage{
		Protected: []api.ObjectRef{{APIVersion: "v1", Kind: "Namespace", Name: "prod", UID: "u-prod"}},
		Steps: []api.Step{
			{Action: api.ActionScale, Target: api.ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "kubesphere-system", Name: "ks-controller-manager"}},
			{Action: api.ActionPatch, Target: api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "prod"}},
			{Action: api.ActionDelete, Target: api.ObjectRef{APIVersion: "tenant.kubesphere.io/v1alpha1", Kind: "Workspace", Name: "ws1"}},
			{Action: api.ActionDelete, Target: api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kubesphere-system"}},
			{Action: api.ActionDelete, Target: api.ObjectRef{APIVersion: "gone.example.com/v1", Kind: "Gone", Name: "x"}},
			{Action: api.ActionHelmUninstall, Target: api.ObjectRef{Namespace: "kubesphere-system", Name: "ks-core"}},
			{Action: api.ActionWait, Phase: api.PhaseKubeSphere},
		},
	}
	manifests := map[string][]api.ObjectRef{"kubesphere-system/ks-core": {{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole", Namespace: "kubesphere-system", Name: "ks-admin"}}}
	r := Build("ks-clean-apply-x", ForStage(st, resolver, manifests), User("job"))

	for _, p := range []Permission{
		{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: "kubesphere-system", Name: "ks-controller-manager"},
		{Verb: "patch", Resource: "namespaces", Name: "prod"},
		{Verb: "delete", Group: "tenant.kubesphere.io", Resource: "workspaces", Name: "ws1"},
		{Verb: "delete", Resource: "namespaces", Name: "kubesphere-system"},
		{Verb: "list", Resource: "secrets", Namespace: "kubesphere-system"},                                    // the backup, Helm's records
		{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: "kubesphere-system", Name: "other"}, // a finalizer inside a deleted namespace
		{Verb: "delete", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "ks-admin"},       // Helm's uninstall, cluster-scoped, no namespace
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"},
		{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: "ks-clean"},
		{Verb: "update", Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies", Name: api.GuardName},
	} {
		if !r.Grants(p) {
			t.Errorf("not granted: %s", p)
		}
	}
	for _, p := range []Permission{
		{Verb: "delete", Resource: "namespaces", Name: "prod"}, // patched, never deleted
		{Verb: "delete", Resource: "namespaces", Name: "other"},
		{Verb: "delete", Group: "tenant.kubesphere.io", Resource: "workspaces", Name: "ws2"},
		{Verb: "delete", Group: "tenant.kubesphere.io", Resource: "workspaces"},
		{Verb: "list", Resource: "secrets"},
		{Verb: "get", Resource: "secrets", Namespace: "prod", Name: "db"},
		{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: "prod", Name: "app"},
		{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: "kube-controller-manager"},
		{Verb: "delete", Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies", Name: "someone-elses"},
		{Verb: "delete", Group: "gone.example.com", Resource: "gones", Name: "x"},
	} {
		if r.Grants(p) {
			t.Errorf("granted: %s", p)
		}
	}
	if len(r.Roles) != 2 || r.Roles[0].Namespace != "kube-system" || r.Roles[1].Namespace != "kubesphere-system" {
		t.Errorf("Roles in %v; want kube-system (the Lease) and kubesphere-system", r.Roles)
	}
	for _, rule := range r.ClusterRole.Rules {
		if len(rule.ResourceNames) == 0 && rule.Verbs[0] != "create" {
			t.Errorf("a cluster-wide rule without names that is not a create: %+v", rule)
		}
	}
}

func TestForStageWithoutProtectedSetsNoGuard(t *testing.T) {
	r := Build("x", ForStage(&api.Stage{}, resolver, nil), User("job"))
	if r.Grants(Permission{Verb: "create", Group: "admissionregistration.k8s.io", Resource: "validatingadmissionpolicies"}) {
		t.Fatal("a stage that protects nothing may create admission policies")
	}
}

func TestScanReadsNoSecretOutsideItsNamespaces(t *testing.T) {
	served := []GroupResource{{"", "namespaces"}, {"", "secrets"}, {"", "configmaps"}, {"apps", "deployments"}, {"iam.kubesphere.io", "users"}}
	r := Scan(served, []string{"kubesphere-system", "kube-federation-system", "kubesphere-system"}, ServiceAccount("ks-clean", "ks-clean"))
	for _, p := range []Permission{
		{Verb: "list", Resource: "configmaps"},
		{Verb: "watch", Resource: "namespaces"},
		{Verb: "list", Group: "apps", Resource: "deployments"},
		{Verb: "list", Group: "iam.kubesphere.io", Resource: "globalroles"}, // a type added to a group later
		{Verb: "list", Resource: "secrets", Namespace: "kube-federation-system"},
	} {
		if !r.Grants(p) {
			t.Errorf("not granted: %s", p)
		}
	}
	for _, p := range []Permission{
		{Verb: "list", Resource: "secrets"},
		{Verb: "get", Resource: "secrets", Namespace: "prod", Name: "db"},
		{Verb: "delete", Resource: "configmaps", Namespace: "prod", Name: "x"},
		{Verb: "list", Group: "example.com", Resource: "widgets"}, // not served when made
	} {
		if r.Grants(p) {
			t.Errorf("granted: %s", p)
		}
	}
	if len(r.Roles) != 2 {
		t.Errorf("%d Roles, want one per namespace, each once", len(r.Roles))
	}
}

package uninstall_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/rbac"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/uninstall"
)

// The least RBAC is enough and no more: an account bound only to the roles
// `ks-clean rbac scan` and `ks-clean rbac apply` print scans and plans what
// an administrator's scan plans, may not read Secrets outside the
// namespaces a scan needs nor delete a protected namespace, is refused by
// apply's preflight (no write) with the scan role alone, and applies the
// plan with both: cleaned, nothing lost, the deletion guard checked through
// the run's Lease.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	for _, scenario := range []string{"ks41", "incident"} {
		t.Run(scenario, func(t *testing.T) { leastPrivilege(t, scenario) })
	}
}

func leastPrivilege(t *testing.T, scenario string) {
	t.Parallel()
	e := setup(t, scenario)
	ctx := context.Background()
	const name = "ks-clean-job"
	subject := rbac.User(name)
	create := func(r *rbac.Roles) {
		t.Helper()
		kc := e.s.Kube.RbacV1()
		var err error
		if r.ClusterRole != nil {
			if _, err = kc.ClusterRoles().Create(ctx, r.ClusterRole, metav1.CreateOptions{}); err == nil {
				_, err = kc.ClusterRoleBindings().Create(ctx, r.ClusterRoleBinding, metav1.CreateOptions{})
			}
		}
		for i := 0; err == nil && i < len(r.Roles); i++ {
			if _, err = kc.Roles(r.Roles[i].Namespace).Create(ctx, r.Roles[i], metav1.CreateOptions{}); err == nil {
				_, err = kc.RoleBindings(r.Roles[i].Namespace).Create(ctx, r.RoleBindings[i], metav1.CreateOptions{})
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	admin, err := scan.Run(ctx, []scan.Target{{Clients: e.clients}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	scanRoles := rbac.ScanFor(admin.Host(), subject)
	checkLeast(t, scanRoles, "scan")
	if scanRoles.Grants(rbac.Permission{Verb: "list", Resource: "secrets"}) {
		t.Fatal("the scan role lists Secrets cluster-wide")
	}
	create(scanRoles)

	cfg, _, err := e.cp.AddUser(name)
	if err != nil {
		t.Fatal(err)
	}
	job, err := kube.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mark := e.cp.AuditMark()
	rep, err := scan.Run(ctx, []scan.Target{{Clients: job}}, scan.Options{})
	if err != nil {
		t.Fatalf("scan with the scan role: %v", err)
	}
	inv := rep.Host().Footprint.Inv
	if len(inv.Unread) > 0 {
		t.Fatalf("scan with the scan role could not list %v", inv.Unread)
	}
	if len(inv.UnreadIn["/Secret"]) == 0 {
		t.Fatal("the scan role let every namespace's Secrets be read")
	}
	t.Logf("scan with the scan role: Secrets unread in %d namespaces; warnings: %v", len(inv.UnreadIn["/Secret"]), inv.Warnings)
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stepTargets(p), stepTargets(e.plan); !slices.Equal(got, want) {
		t.Fatalf("the scan role plans other steps than cluster-admin:\n  role:  %v\n  admin: %v", got, want)
	}
	e.cp.NoWritesSince(t, mark, name, "scan with the scan role")

	// The scan role alone: refused before any write, naming what is missing.
	dir := t.TempDir()
	a := &uninstall.Apply{Clients: clientsFor(p, job), Plan: p, PlanPath: filepath.Join(dir, "plan.json"), Options: uninstall.Options{FinalizerTimeout: 20 * time.Second}}
	if _, err := a.Run(ctx); err == nil || !strings.Contains(err.Error(), "lacks permissions") {
		t.Fatalf("apply with the scan role only: %v; want a refusal that names the missing permissions", err)
	}
	e.cp.NoWritesSince(t, mark, name, "apply refused for want of permissions")

	applyRoles, err := rbac.ApplyFor(p, "", admin.Host(), subject)
	if err != nil {
		t.Fatal(err)
	}
	checkLeast(t, applyRoles, "apply")
	for _, r := range p.Stages[0].Protected {
		if r.Kind == "Namespace" && applyRoles.Grants(rbac.Permission{Verb: "delete", Resource: "namespaces", Name: r.Name}) {
			t.Fatalf("the apply role may delete protected namespace %s", r.Name)
		}
	}
	create(applyRoles)
	a = &uninstall.Apply{Clients: clientsFor(p, job), Plan: p, PlanPath: filepath.Join(dir, "plan.json"), Options: uninstall.Options{FinalizerTimeout: 20 * time.Second}}
	r, err := a.Run(ctx)
	if err != nil {
		t.Fatalf("apply with the scan and apply roles: %v\n%+v", err, failed(r))
	}
	if r.Verification == nil || !r.Verification.OK {
		t.Fatalf("apply with the least roles left %+v", r.Verification)
	}
	t.Logf("guard: %s", r.Stages[0].Guard)
	if g := r.Stages[0].Guard; g != uninstall.GuardPolicy && g != uninstall.GuardTripwire {
		t.Fatalf("guard %q; want it set", g)
	}
	e.assertNothingLost(t)
}

// checkLeast: no wildcard verb, and no verb that grants more than itself.
func checkLeast(t *testing.T, r *rbac.Roles, what string) {
	t.Helper()
	rules := []rbacv1.PolicyRule{}
	if r.ClusterRole != nil {
		rules = append(rules, r.ClusterRole.Rules...)
	}
	for _, role := range r.Roles {
		rules = append(rules, role.Rules...)
	}
	for _, rule := range rules {
		for _, v := range rule.Verbs {
			if v == "*" || v == "escalate" || v == "bind" || v == "impersonate" {
				t.Fatalf("the %s role grants %s: %+v", what, v, rule)
			}
		}
	}
	if r.Grants(rbac.Permission{Verb: "list", Resource: "secrets"}) || r.Grants(rbac.Permission{Verb: "create", Resource: "secrets", Namespace: "kube-system"}) {
		t.Fatalf("the %s role reads every Secret or mints tokens", what)
	}
}

func stepTargets(p *api.Plan) []string {
	var out []string
	for _, st := range p.Stages {
		for _, s := range st.Steps {
			out = append(out, string(s.Action)+" "+s.Target.String())
		}
	}
	return out
}

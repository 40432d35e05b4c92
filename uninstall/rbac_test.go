package uninstall_test

import (
	"context"
	"os"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/uninstall"
)

// The roles shipped in docs/rbac are enough: scan and plan as a user bound
// only to ks-clean-scan, apply as a user bound only to ks-clean-apply.
func TestShippedRoles(t *testing.T) {
	e := setup(t, "incident")
	ctx := context.Background()
	bind := func(user, file string) *kube.Clients {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal(b, &role); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Kube.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: "User", Name: user, APIGroup: "rbac.authorization.k8s.io"}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := e.cp.AddUser(user)
		if err != nil {
			t.Fatal(err)
		}
		c, err := kube.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	reader := bind("scanner", "../docs/rbac/ks-clean-scan.yaml")
	mark := e.cp.AuditMark()
	rep, err := scan.Run(ctx, []scan.Target{{Clients: reader}}, scan.Options{})
	if err != nil {
		t.Fatalf("scan with ks-clean-scan: %v", err)
	}
	if w := rep.Host().Warnings; len(w) > 0 {
		t.Fatalf("scan with ks-clean-scan could not read everything: %v", w)
	}
	p, err := plan.Build(rep, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if writes, _ := e.cp.PersistedWritesSince(mark, "scanner"); len(writes) > 0 {
		t.Fatalf("scan wrote: %v", writes[0].RequestURI)
	}

	operator := bind("operator", "../docs/rbac/ks-clean-apply.yaml")
	a := &uninstall.Apply{Clients: clientsFor(p, operator), Plan: p, PlanPath: e.dir + "/roles-plan.json", Options: uninstall.Options{FinalizerTimeout: 20 * time.Second}}
	r, err := a.Run(ctx)
	if err != nil {
		t.Fatalf("apply with ks-clean-apply: %v\n%+v", err, failed(r))
	}
	e.assertNothingLost(t)
}

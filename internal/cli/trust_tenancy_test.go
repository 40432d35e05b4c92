package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// tenancy import carries tenancy, not privilege (issue 22, item 4): an
// export edited to grant more is refused before any write, exit 2, the
// message naming each object and --allow-privileged; a file claiming what
// it does not carry is refused; another ks-clean's Lease is respected. On
// a healthy KubeSphere 4.1 cluster, where the import would otherwise have
// gone through (exit 0).
func TestTrustTenancyImport(t *testing.T) {
	t.Parallel()
	st := fixture.Start(t, "ks41", controlplane.Options{Audit: true}, true)
	healthy(t, st.Seeder)
	kc := st.CP.AdminKubeconfig
	t.Run("export file", func(t *testing.T) { exportFileChecks(t, kc) })
	dir := t.TempDir()
	base := filepath.Join(dir, "export.yaml")
	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "tenancy", "export", "--out", base); code != 0 {
		t.Fatalf("tenancy export: %s", errOut)
	}
	userNS := fixture.UserNamespace("ws1", 0)
	edited := func(name string, edit func(*api.Tenancy)) string {
		tn, err := api.ReadTenancy(base)
		if err != nil {
			t.Fatal(err)
		}
		if tn.KubeSphere != "4" {
			t.Fatalf("the ks41 export is KubeSphere %q", tn.KubeSphere)
		}
		edit(tn)
		p := filepath.Join(dir, name)
		if err := api.WriteTenancy(p, tn); err != nil {
			t.Fatal(err)
		}
		return p
	}
	add := func(objs ...map[string]any) func(*api.Tenancy) {
		return func(tn *api.Tenancy) {
			for _, o := range objs {
				tn.Objects = append(tn.Objects, &unstructured.Unstructured{Object: o})
			}
		}
	}
	meta := func(ns, name string) map[string]any {
		m := map[string]any{"name": name}
		if ns != "" {
			m["namespace"] = ns
		}
		return m
	}
	user := func(name string) map[string]any {
		return map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}
	}
	clusterAdminInKubeSystem := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("kube-system", "alice-cluster-admin"),
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
		"subjects": []any{user("alice")}}
	clusterAdminInUserNS := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(userNS, "alice-cluster-admin"),
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
		"subjects": []any{user("alice")}}
	platformAdmin := map[string]any{"apiVersion": "iam.kubesphere.io/v1beta1", "kind": "GlobalRoleBinding", "metadata": meta("", "mallory-platform-admin"),
		"roleRef":  map[string]any{"apiGroup": "iam.kubesphere.io", "kind": "GlobalRole", "name": "platform-admin"},
		"subjects": []any{map[string]any{"apiGroup": "iam.kubesphere.io", "kind": "User", "name": "mallory"}}}
	secretReader := map[string]any{"apiVersion": "iam.kubesphere.io/v1beta1", "kind": "GlobalRole", "metadata": meta("", "secret-reader"),
		"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "verbs": []any{"get", "list"}}}}
	saBinding := map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(userNS, "default-sa-admin"),
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "admin"},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "default", "namespace": "other"}}}
	kubeSystemInWorkspace := func(tn *api.Tenancy) { tn.Namespaces["kube-system"] = "ws1" }
	allPrivileged := func(tn *api.Tenancy) {
		add(clusterAdminInKubeSystem, clusterAdminInUserNS, platformAdmin, secretReader, saBinding)(tn)
		kubeSystemInWorkspace(tn)
	}
	hashed := func(name string) map[string]any {
		return map[string]any{"apiVersion": "iam.kubesphere.io/v1beta1", "kind": "User", "metadata": meta("", name),
			"spec": map[string]any{"email": name + "@example.com", "password": fixture.PasswordHash}}
	}
	annotated := map[string]any{"apiVersion": "iam.kubesphere.io/v1beta1", "kind": "User",
		"metadata": map[string]any{"name": "trudy", "annotations": map[string]any{"iam.kubesphere.io/password-encrypted": "true"}},
		"spec":     map[string]any{"email": "trudy@example.com"}}

	cases := []struct {
		name     string
		file     string
		setup    func()
		teardown func()
		want     []string
	}{
		{"RoleBinding to cluster-admin in kube-system", edited("ks.yaml", add(clusterAdminInKubeSystem)), nil, nil,
			[]string{"RoleBinding kube-system/alice-cluster-admin is in kube-system", "--allow-privileged"}},
		{"RoleBinding to cluster-admin in a user's namespace", edited("ns.yaml", add(clusterAdminInUserNS)), nil, nil,
			[]string{"RoleBinding " + userNS + "/alice-cluster-admin binds ClusterRole cluster-admin", "--allow-privileged"}},
		{"GlobalRoleBinding to platform-admin", edited("gr.yaml", add(platformAdmin)), nil, nil,
			[]string{"GlobalRoleBinding mallory-platform-admin binds GlobalRole platform-admin", "--allow-privileged"}},
		{"cluster-wide role reading Secrets", edited("secrets.yaml", add(secretReader)), nil, nil,
			[]string{"GlobalRole secret-reader is a cluster-wide role that grants access to Secrets", "--allow-privileged"}},
		{"binding of a ServiceAccount", edited("sa.yaml", add(saBinding)), nil, nil,
			[]string{"RoleBinding " + userNS + "/default-sa-admin binds ServiceAccount default", "--allow-privileged"}},
		{"kube-system put in a workspace", edited("map.yaml", kubeSystemInWorkspace), nil, nil,
			[]string{"kube-system → workspace ws1", "--allow-privileged"}},
		{"all of them: each named", edited("all.yaml", allPrivileged), nil, nil,
			[]string{"kube-system/alice-cluster-admin", userNS + "/alice-cluster-admin", "mallory-platform-admin", "secret-reader", "default-sa-admin", "kube-system → workspace ws1"}},
		{"password hash in a file without passwords", edited("pw.yaml", add(hashed("mallory"))), nil, nil,
			[]string{"User mallory has spec.password, but the file says passwords: false"}},
		{"password-encrypted annotation in a file without passwords", edited("pwa.yaml", add(annotated)), nil, nil,
			[]string{"User trudy has annotation iam.kubesphere.io/password-encrypted, but the file says passwords: false"}},
		{"KubeSphere version the objects deny", edited("v3.yaml", func(tn *api.Tenancy) { tn.KubeSphere = "3" }), nil, nil,
			[]string{`but the file says kubesphere: "3"`}},
		{"lease held", base, func() { holdLease(t, st.Seeder) }, func() {
			if err := st.Seeder.Kube.CoordinationV1().Leases("kube-system").Delete(context.Background(), "ks-clean", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, []string{"another ks-clean run holds the cluster"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			if c.teardown != nil {
				defer c.teardown()
			}
			runRefused(t, st.CP, 2, c.want, "--kubeconfig", kc, "tenancy", "import", c.file, "--confirm")
		})
	}

	// The same privileged file goes through with --allow-privileged (a dry
	// run: every write sent, nothing stored).
	t.Run("--allow-privileged lets it through", func(t *testing.T) {
		mark := st.CP.AuditMark()
		out, errOut, code := runCLI(t, "--kubeconfig", kc, "tenancy", "import", filepath.Join(dir, "all.yaml"), "--allow-privileged", "--dry-run", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, w := range []string{`"name": "alice-cluster-admin"`, `"name": "mallory-platform-admin"`, `"name": "secret-reader"`, `"namespace": "kube-system"`, `"would-create"`} {
			if !strings.Contains(out, w) {
				t.Errorf("result does not say %s: %.2000s", w, out)
			}
		}
		noWritesSince(t, st.CP, mark, "dry run")
	})
	// An unedited export passes without the flag: its privileged objects
	// (platform-admin) are the cluster's already.
	t.Run("the export itself needs no flag", func(t *testing.T) {
		if _, errOut, code := runCLI(t, "--kubeconfig", kc, "tenancy", "import", base, "--dry-run"); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

// healthy gives ks41's ks-controller-manager Service a ready endpoint, as a
// running install has: its fail-closed webhooks are then served, and the
// scan before an import finds no critical hazard (the import writes nothing
// they match).
func healthy(t *testing.T, s *fixture.Seeder) {
	t.Helper()
	ready := true
	_, err := s.Kube.DiscoveryV1().EndpointSlices("kubesphere-system").Create(context.Background(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "ks-controller-manager-ready", Labels: map[string]string{discoveryv1.LabelServiceName: "ks-controller-manager"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// tenancy export --out writes a new 0600 file: an existing file's wider
// mode is not kept, and a symlink or non-regular file at the path is
// refused (exit 2) without touching what it points at.
// (On TestTrustTenancyImport's cluster: it reads only.)
func exportFileChecks(t *testing.T, kc string) {
	dir := t.TempDir()

	wide := filepath.Join(dir, "wide.yaml")
	if err := os.WriteFile(wide, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(wide, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "tenancy", "export", "--out", wide); code != 0 {
		t.Fatalf("export over an existing file: exit %d, %s", code, errOut)
	}
	if fi, err := os.Stat(wide); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("export over a 0666 file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if _, err := api.ReadTenancy(wide); err != nil {
		t.Errorf("the export written over the old file: %v", err)
	}

	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("not yours\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub.yaml")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{{link, "is a symlink"}, {sub, "not a regular file"}} {
		out, errOut, code := runCLI(t, "--kubeconfig", kc, "tenancy", "export", "--out", c.path)
		if code != 2 || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("export --out %s: exit %d, stdout %q, stderr %q; want 2 and %q", c.path, code, out, errOut, c.want)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "not yours\n" {
		t.Errorf("the symlink's target changed: %q %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("left behind: %v", entries)
	}
}

package reinstall_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/reinstall"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/tenancy"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
	"github.com/ks-clean/ks-clean/uninstall"
)

// reinstall --keep-tenancy on 3.x (the incident) and 4.x: every user,
// workspace, role and role binding KubeSphere had is there again after the
// reinstall, as it was (without the password hash), the namespaces are back
// in their workspaces, no user object changed UID, and the scan after finds
// no alias. The chart installs the tenancy CRDs, so what comes back can only
// be the import's doing: without it the new install has none of them.
func TestReinstallKeepsTenancy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ scenario, appVersion string }{{"incident", "v3.3.1"}, {"ks41", "v4.1.3"}} {
		t.Run(tc.scenario, func(t *testing.T) {
			ctx := context.Background()
			st := fixture.Start(t, tc.scenario, controlplane.Options{Audit: true}, true)
			c, err := kube.New(st.CP.Config)
			if err != nil {
				t.Fatal(err)
			}
			want := tenancyOf(t, st.Seeder)
			if len(want) < 5 {
				t.Fatalf("the scenario has only %d tenancy objects: the test would prove little", len(want))
			}
			workspaceOf := map[string]string{}
			for _, ws := range (fixture.Options{}).WorkspaceNames() {
				for i := 0; i < 2; i++ { // the scenarios' default
					workspaceOf[fixture.UserNamespace(ws, i)] = ws
				}
			}

			if tc.scenario == "incident" {
				refusalsChangeNothing(t, st, c)
			}

			dir := t.TempDir()
			r := &reinstall.Reinstall{Clients: c, Options: reinstall.Options{
				Chart: chartWithAppVersion(t, tc.appVersion), WorkDir: dir, KeepTenancy: true,
				Apply: uninstall.Options{FinalizerTimeout: 20 * time.Second},
			}}
			res, err := r.Run(ctx)
			if err != nil {
				t.Fatalf("reinstall --keep-tenancy: %v (%+v)", err, res)
			}
			t.Logf("reinstall --keep-tenancy over %s: phases %v, import %+v", tc.scenario, res.DurationsSeconds, res.Tenancy)
			if !res.Healthy || res.Tenancy == nil || res.Tenancy.Counts[tenancy.StatusConflict] > 0 || res.Tenancy.Counts[tenancy.StatusCreated] < len(want) {
				t.Errorf("result %+v, import %+v", res, res.Tenancy)
			}
			if res.Tenancy != nil && (tc.scenario == "incident") != (res.Tenancy.Note != "") {
				t.Errorf("3.x's result must say the Workspace ownerReferences come back (and 4.x's not): %q", res.Tenancy.Note)
			}
			if st, err := os.Stat(res.TenancyFile); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("tenancy export %s: %v", res.TenancyFile, err)
			}
			if missing, _ := st.Missing(ctx, st.Seeded.Protected); len(missing) > 0 {
				t.Fatalf("user objects lost or re-created: %v", missing)
			}
			for ref, w := range want {
				got, err := st.Get(ctx, ref)
				if err != nil {
					t.Errorf("%s not back after the reinstall: %v", ref, err)
					continue
				}
				if !kube.SameContent(portable(got), w) {
					t.Errorf("%s came back different:\n got %v\nwant %v", ref, portable(got).Object, w.Object)
				}
				if got.GetKind() == "User" {
					if _, has, _ := unstructured.NestedString(got.Object, "spec", "password"); has {
						t.Errorf("user %s got its password hash back without --keep-passwords", got.GetName())
					}
				}
			}
			for ns, ws := range workspaceOf {
				n, err := st.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if err != nil || n.Labels[footprint.LabelWorkspace] != ws {
					t.Errorf("namespace %s not back in workspace %s: %v %v", ns, ws, n.Labels, err)
				}
			}
			// The export imported again, with a binding in a namespace that
			// is not there: everything else is present already, nothing is
			// created twice, and the stray binding is reported, not fatal.
			again, err := api.ReadTenancy(res.TenancyFile)
			if err != nil {
				t.Fatal(err)
			}
			stray := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
				"metadata": map[string]any{"name": "stray", "namespace": "no-such-namespace"},
				"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "admin"}}}
			again.Objects = append(again.Objects, stray)
			second, err := (&tenancy.Import{Clients: c, Tenancy: again}).Run(ctx)
			if err != nil || second.Counts[tenancy.StatusPresent] != len(again.Objects)-1 || second.Counts[tenancy.StatusMissing] != 1 || second.NamespaceCounts[tenancy.StatusCreated] != 0 {
				t.Errorf("second import: %v, objects %v, namespaces %v", err, second.Counts, second.NamespaceCounts)
			}
			rep, err := scan.Cluster(ctx, scan.Target{Clients: c}, scan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range rep.Findings {
				if f.ID == hazard.ClusterAlias {
					t.Errorf("alias after the reinstall: %s", f.Message)
				}
			}
		})
	}
}

// refusalsChangeNothing: on the incident cluster (two records for one API
// server) a tenancy import is refused, and --keep-tenancy with a chart of
// another major version stops before the uninstall; neither writes.
func refusalsChangeNothing(t *testing.T, st fixture.Started, c *kube.Clients) {
	t.Helper()
	ctx := context.Background()
	ex, err := (&tenancy.Export{Clients: c}).Run(ctx)
	if err != nil || ex.KubeSphere != "3" || len(ex.Namespaces) == 0 {
		t.Fatalf("export: %v %+v", err, ex)
	}
	mark := st.CP.AuditMark()
	if _, err := (&tenancy.Import{Clients: c, Tenancy: ex}).Run(ctx); !errors.Is(err, tenancy.ErrUnsafe) || !strings.Contains(err.Error(), hazard.ClusterAlias) {
		t.Fatalf("import into the incident's cluster: %v, want ErrUnsafe naming %s", err, hazard.ClusterAlias)
	}
	r := &reinstall.Reinstall{Clients: c, Options: reinstall.Options{Chart: chart, WorkDir: t.TempDir(), KeepTenancy: true}}
	if _, err := r.Run(ctx); !errors.Is(err, reinstall.ErrTenancyMismatch) {
		t.Fatalf("--keep-tenancy of 3.x tenancy with a 4.x chart: %v, want ErrTenancyMismatch", err)
	}
	st.CP.NoWritesSince(t, mark, controlplane.AdminUser, "refusals")
}

// tenancyOf is the scenario's tenancy as it should come back: its seeded
// KubeSphere objects of the tenancy kinds (3.x's namespace RBAC included),
// without what the server, the controllers and KubeFed set, and without
// the password hash.
func tenancyOf(t *testing.T, s *fixture.Seeder) map[fixture.Ref]*unstructured.Unstructured {
	t.Helper()
	out := map[fixture.Ref]*unstructured.Unstructured{}
	for _, r := range s.Seeded.Footprint {
		ref := api.ObjectRef{APIVersion: r.APIVersion, Kind: r.Kind}
		if !api.IsTenancyKind(ref.Group(), r.Kind) {
			continue
		}
		u, err := s.Get(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if pw, _, _ := unstructured.NestedString(u.Object, "spec", "password"); r.Kind == "User" && pw != fixture.PasswordHash {
			t.Fatalf("seeded user %s has no password hash: the test of its removal would prove nothing", r.Name)
		}
		p := portable(u)
		unstructured.RemoveNestedField(p.Object, "spec", "password")
		unstructured.RemoveNestedField(p.Object, "metadata", "annotations", tenancy.AnnotationPasswordEncrypted)
		labels := p.GetLabels()
		delete(labels, fixture.LabelKubeFedManaged)
		p.SetLabels(labels)
		r.UID = ""
		out[r] = p
	}
	return out
}

func portable(u *unstructured.Unstructured) *unstructured.Unstructured {
	p := kube.Portable(u)
	p.SetFinalizers(nil)
	if len(p.GetAnnotations()) == 0 {
		p.SetAnnotations(nil)
	}
	return p
}

// chartWithAppVersion is the test chart as another KubeSphere version.
func chartWithAppVersion(t *testing.T, appVersion string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ks-core")
	if err := os.CopyFS(dir, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "Chart.yaml")
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "appVersion:") {
			lines[i] = "appVersion: " + appVersion
		}
	}
	if err := os.WriteFile(meta, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

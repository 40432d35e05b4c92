package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/rbac"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// Every bad input gets a non-zero exit, a message naming the problem and the
// way out, and changes nothing (audit log: zero persisted writes).
func TestBadInputTable(t *testing.T) {
	t.Parallel()
	st := fixture.Start(t, "incident", controlplane.Options{Audit: true}, true)
	kc := st.CP.AdminKubeconfig
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := filepath.Join(dir, "good.json")
	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "plan", "--out", good, "--protect", "prod-ws1-1", "--protect", fixture.StandaloneNamespace); code != 0 {
		t.Fatalf("plan: %s", errOut)
	}
	// Another cluster's plan: the recorded clean scenario's.
	otherPlan := filepath.Join(dir, "other.json")
	op, err := fixture.RecordedPlan("clean")
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Write(otherPlan, op); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	p, _ := api.Read(good)
	p.CreatedAt = time.Now().Add(-72 * time.Hour)
	p.Digest = ""
	stale := filepath.Join(dir, "stale.json")
	if err := api.Write(stale, p); err != nil {
		t.Fatal(err)
	}

	kubeconfigWith := func(name string, edit func(*clientcmdapiConfig)) string {
		cfg, err := clientcmd.LoadFromFile(kc)
		if err != nil {
			t.Fatal(err)
		}
		edit(cfg)
		path := filepath.Join(dir, name)
		if err := clientcmd.WriteToFile(*cfg, path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	unreachable := kubeconfigWith("unreachable", func(c *clientcmdapiConfig) {
		for _, cl := range c.Clusters {
			cl.Server = "https://127.0.0.1:1"
		}
	})
	badToken := kubeconfigWith("badtoken", func(c *clientcmdapiConfig) {
		for _, u := range c.AuthInfos {
			u.ClientCertificateData, u.ClientKeyData, u.Token = nil, nil, "not-a-valid-token"
		}
	})
	// Another apply holds the cluster: a lease renewed just now by another host.
	leaseHeld := func() { holdLease(t, st.Seeder) }

	// Plans edited and sealed again (api.Seal is public, and a digest is
	// no key): each must be refused on what a fresh scan finds.
	resealed := func(name string, edit func(*api.Stage)) string {
		p, err := api.Read(good)
		if err != nil {
			t.Fatal(err)
		}
		edit(&p.Stages[0])
		p.Digest = ""
		path := filepath.Join(dir, name)
		if err := api.Write(path, p); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ctx := context.Background()
	nsRef := func(name string) api.ObjectRef {
		ns, err := st.Seeder.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: name, UID: string(ns.UID)}
	}
	// insert puts a step before the first of its phase's steps, as the
	// planner would have placed it.
	insert := func(st *api.Stage, s api.Step) {
		for i, x := range st.Steps {
			if x.Phase == s.Phase {
				st.Steps = append(st.Steps[:i], append([]api.Step{s}, st.Steps[i:]...)...)
				return
			}
		}
		t.Fatalf("plan has no %s phase", s.Phase)
	}
	deleteProtected := resealed("reseal-delete-ns.json", func(stg *api.Stage) {
		victim := nsRef("prod-ws1-1")
		var kept []api.ObjectRef
		for _, r := range stg.Protected {
			if r.UID != victim.UID {
				kept = append(kept, r)
			}
		}
		stg.Protected = kept
		insert(stg, api.Step{ID: "0000-namespaces-delete", Phase: api.PhaseNamespaces, Action: api.ActionDelete, Target: victim, Reason: "resealed"})
	})
	// Written by their setups, which first make what they point at.
	userSecret, untiedLabel := filepath.Join(dir, "reseal-delete-secret.json"), filepath.Join(dir, "reseal-label.json")
	setupUserSecret := func() {
		sec, err := st.Seeder.Kube.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "payments-db"}, StringData: map[string]string{"password": "x"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		resealed(filepath.Base(userSecret), func(stg *api.Stage) {
			insert(stg, api.Step{ID: "0000-kubesphere-delete", Phase: api.PhaseKubeSphere, Action: api.ActionDelete, Reason: "resealed",
				Target: api.ObjectRef{APIVersion: "v1", Kind: "Secret", Namespace: "kube-system", Name: sec.Name, UID: string(sec.UID)}})
		})
	}
	setupUntiedLabel := func() {
		ns, err := st.Seeder.Kube.CoreV1().Namespaces().Get(ctx, "prod-ws1-2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Labels["payments.example.com/tier"] = "gold"
		if _, err := st.Seeder.Kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		resealed(filepath.Base(untiedLabel), func(stg *api.Stage) {
			insert(stg, api.Step{ID: "0000-detach-patch", Phase: api.PhaseDetach, Action: api.ActionPatch, Reason: "resealed",
				Target: nsRef("prod-ws1-2"), Remove: &api.Removal{Labels: []string{"payments.example.com/tier"}}})
		})
	}

	cases := []struct {
		name  string
		args  []string
		setup func()
		want  string
	}{
		{"empty plan", []string{"--kubeconfig", kc, "apply", write("empty.json", ""), "--confirm"}, nil, "is empty"},
		{"truncated plan", []string{"--kubeconfig", kc, "apply", write("trunc.json", string(b[:len(b)/2])), "--confirm"}, nil, "not a ks-clean plan"},
		{"not JSON", []string{"--kubeconfig", kc, "apply", write("text.json", "steps: all"), "--confirm"}, nil, "not a ks-clean plan"},
		{"unknown apiVersion", []string{"--kubeconfig", kc, "apply", write("v9.json", strings.Replace(string(b), api.APIVersion, "ks-clean/v9", 1)), "--confirm"}, nil, "apiVersion"},
		{"edited plan", []string{"--kubeconfig", kc, "apply", write("edited.json", strings.Replace(string(b), `"kubesphere-system"`, `"prod-ws1-1"`, 1)), "--confirm"}, nil, "edited after planning"},
		{"plan for another cluster", []string{"--kubeconfig", kc, "apply", otherPlan, "--confirm"}, nil, "was made for cluster"},
		{"stale plan", []string{"--kubeconfig", kc, "apply", stale, "--confirm"}, nil, "--allow-stale"},
		{"unreadable plan path", []string{"--kubeconfig", kc, "apply", filepath.Join(dir, "absent.json"), "--confirm"}, nil, "absent.json"},
		{"unwritable backup dir", []string{"--kubeconfig", kc, "apply", good, "--confirm", "--backup-dir", "/proc/nope"}, nil, "--backup-dir"},
		{"kubeconfig missing", []string{"--kubeconfig", filepath.Join(dir, "nokc"), "scan"}, nil, "nokc"},
		{"kubeconfig malformed", []string{"--kubeconfig", write("badkc", "{{{"), "scan"}, nil, "badkc"},
		{"absent context", []string{"--kubeconfig", kc, "--context", "nope", "scan"}, nil, `"nope"`},
		{"unreachable server", []string{"--kubeconfig", unreachable, "--request-timeout", "3s", "scan"}, nil, "cannot reach"},
		{"invalid token", []string{"--kubeconfig", badToken, "scan"}, nil, "rejected the credentials"},
		{"concurrency 0", []string{"--kubeconfig", kc, "apply", good, "--confirm", "--concurrency", "0"}, nil, "--concurrency"},
		{"protect: no such namespace", []string{"--kubeconfig", kc, "plan", "--protect", "prod-ws1-9"}, nil, "no namespace of that name"},
		{"protect: a namespace the plan deletes", []string{"--kubeconfig", kc, "plan", "--protect", "kubesphere-system"}, nil, "move what you need out of it first"},
		{"remove-apiservice: no such APIService", []string{"--kubeconfig", kc, "plan", "--remove-apiservice", "v1.nope.example.com"}, nil, "no such APIService"},
		{"lease held", []string{"--kubeconfig", kc, "apply", good, "--confirm"}, leaseHeld, "another ks-clean run holds the cluster"},
		{"reinstall: no chart", []string{"--kubeconfig", kc, "reinstall", "--dry-run"}, nil, "reinstall needs --chart"},
		{"reinstall: chart that does not load", []string{"--kubeconfig", kc, "reinstall", "--chart", filepath.Join(dir, "nope"), "--dry-run", "--work-dir", filepath.Join(dir, "work")}, nil, "nope"},
		{"unknown command", []string{"--kubeconfig", kc, "aply", good}, nil, `did you mean "apply"?`},
		{"client-side dry run", []string{"--kubeconfig", kc, "apply", good, "--dry-run=client"}, nil, "--dry-run=server"},
		{"restore: not a backup", []string{"--kubeconfig", kc, "restore", dir, "--confirm"}, nil, "holds no backup of an apply"},
		{"restore: no such directory", []string{"--kubeconfig", kc, "restore", filepath.Join(dir, "nope.apply"), "--confirm"}, nil, "nope.apply"},
		{"restore: no argument", []string{"--kubeconfig", kc, "restore", "--confirm"}, nil, "restore takes one argument"},
		{"tenancy import: not a tenancy file", []string{"--kubeconfig", kc, "tenancy", "import", write("plan.yaml", "apiVersion: ks-clean/v1alpha2\nkind: Plan\n"), "--confirm"}, nil, "write one with 'ks-clean tenancy export'"},
		{"tenancy import: a Secret in the file", []string{"--kubeconfig", kc, "tenancy", "import", write("secret.yaml", "apiVersion: ks-clean/v1alpha2\nkind: Tenancy\nobjects:\n- {apiVersion: v1, kind: Secret, metadata: {name: s, namespace: prod-ws1-1}}\n"), "--confirm"}, nil, "not one of KubeSphere's tenancy kinds"},
		{"tenancy import: into a cluster with an alias", []string{"--kubeconfig", kc, "tenancy", "import", filepath.Join(dir, "tenancy.yaml"), "--confirm"}, func() {
			if _, errOut, code := runCLI(t, "--kubeconfig", kc, "tenancy", "export", "--out", filepath.Join(dir, "tenancy.yaml")); code != 0 {
				t.Fatalf("tenancy export: %s", errOut)
			}
		}, hazard.ClusterAlias},
		{"tenancy import: no argument", []string{"--kubeconfig", kc, "tenancy", "import", "--confirm"}, nil, "tenancy import takes one argument"},
		{"resealed plan: deletes a user's namespace it no longer lists as protected", []string{"--kubeconfig", kc, "apply", deleteProtected, "--confirm"}, nil, "prod-ws1-1 is protected"},
		{"resealed plan: deletes a user's Secret in kube-system", []string{"--kubeconfig", kc, "apply", userSecret, "--confirm"}, setupUserSecret, "does not find it is KubeSphere's"},
		{"resealed plan: strips a label that ties nothing", []string{"--kubeconfig", kc, "apply", untiedLabel, "--confirm"}, setupUntiedLabel, "no tie to KubeSphere/KubeFed in label payments.example.com/tier"},
		{"plan not the one reviewed (--expect-digest)", []string{"--kubeconfig", kc, "apply", good, "--confirm", "--expect-digest", "sha256:0000"}, nil, "not the sha256:0000 expected"},
		{"plan is a device (no end to read)", []string{"--kubeconfig", kc, "apply", "/dev/zero", "--confirm"}, nil, "/dev/zero is a device"},
		{"tenancy import: a device (no end to read)", []string{"--kubeconfig", kc, "tenancy", "import", "/dev/zero", "--confirm"}, nil, "/dev/zero is a device"},
		{"request timeout not a duration", []string{"--kubeconfig", kc, "--request-timeout", "soon", "scan"}, nil, "--request-timeout"},
		{"rbac apply: a plan for another cluster", []string{"--kubeconfig", kc, "rbac", "apply", otherPlan}, nil, "use the context the plan was made with"},
		{"rbac apply: an edited plan", []string{"--kubeconfig", kc, "rbac", "apply", filepath.Join(dir, "edited.json")}, nil, "edited after planning"},
		{"rbac apply: a resealed plan would grant deleting a user's namespace", []string{"--kubeconfig", kc, "rbac", "apply", deleteProtected}, nil, "prod-ws1-1 is protected"},
		{"rbac scan: a service account without its namespace", []string{"--kubeconfig", kc, "rbac", "scan", "--serviceaccount", "ks-clean"}, nil, "NAMESPACE:NAME"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			runRefused(t, st.CP, 0, []string{c.want}, c.args...)
		})
	}

	// And the good plan's roles: bound to the default service account,
	// named after the plan, never a delete of a namespace it protects.
	out, errOut, code := runCLI(t, "--kubeconfig", kc, "rbac", "apply", good)
	if code != 0 {
		t.Fatalf("rbac apply of the good plan: exit %d: %s", code, errOut)
	}
	p, _ = api.Read(good)
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(strings.Split(out, "---\n")[1]), &role); err != nil || role.Name != rbac.ApplyName(p) {
		t.Fatalf("rbac apply printed %q first (%v); want ClusterRole %s", out[:min(len(out), 200)], err, rbac.ApplyName(p))
	}
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "namespaces") && slices.Contains(r.Verbs, "delete") && (len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, "prod-ws1-1")) {
			t.Fatalf("the apply role may delete protected prod-ws1-1: %+v", r)
		}
	}
	if !strings.Contains(out, "- kind: ServiceAccount\n  name: ks-clean\n  namespace: ks-clean") {
		t.Fatalf("rbac apply's bindings are not to ks-clean:ks-clean:\n%s", out)
	}
}

// runRefused runs the CLI and requires what every refused input gets: exit
// code code (0: any but 0), stderr naming each of want, nothing on stdout,
// and not one persisted write.
func runRefused(t *testing.T, cp *controlplane.ControlPlane, code int, want []string, args ...string) {
	t.Helper()
	mark := cp.AuditMark()
	out, errOut, got := runCLI(t, args...)
	if got == 0 || code != 0 && got != code {
		t.Fatalf("exit %d, want %d (0: any refusal); stderr %q", got, code, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr %q does not say %q", errOut, w)
		}
	}
	if out != "" {
		t.Errorf("refused input printed a result on stdout: %.300q", out)
	}
	noWritesSince(t, cp, mark, "refused input")
}

// noWritesSince fails the test if anything was persisted since mark, or if
// the audit log cannot tell.
func noWritesSince(t *testing.T, cp *controlplane.ControlPlane, mark int, what string) {
	t.Helper()
	writes, err := cp.PersistedWritesSince(mark, controlplane.AdminUser)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	if len(writes) > 0 {
		t.Fatalf("%s wrote %d times, first %s %s", what, len(writes), writes[0].Verb, writes[0].RequestURI)
	}
}

type clientcmdapiConfig = clientcmdapi.Config

func holdLease(t *testing.T, s *fixture.Seeder) {
	t.Helper()
	holder, secs, now := "other-host/4242", int32(60), metav1.NewMicroTime(time.Now())
	_, err := s.Kube.CoordinationV1().Leases("kube-system").Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "ks-clean"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/restore"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// crafted is a backup as an attacker who can write files would make it:
// consistent, sealed with the (unkeyed) checksums, for the right cluster,
// its journal saying every delete was done.
type crafted struct {
	t       *testing.T
	cluster api.Cluster
	// key is the journal key (plan digest, "/STAGE" in a stage of several).
	key string
}

// write makes the backup of one stage in dir: a delete step per object,
// done. edit may change the index before it is sealed.
func (c crafted) write(dir, stage string, kind api.StageKind, objs []map[string]any, edit func(dir string, x *api.BackupIndex)) {
	t := c.t
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st := api.Stage{Name: stage, Kind: kind, Cluster: c.cluster, Protected: []api.ObjectRef{}}
	x := &api.BackupIndex{Plan: c.key, Cluster: c.cluster.UID, TakenAt: time.Now().UTC()}
	journal := []string{fmt.Sprintf(`{"step":"plan","status":"started","detail":%q,"at":%q}`, c.key, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano))}
	for i, o := range objs {
		md := o["metadata"].(map[string]any)
		ns, _ := md["namespace"].(string)
		ref := api.ObjectRef{APIVersion: o["apiVersion"].(string), Kind: o["kind"].(string), Namespace: ns, Name: md["name"].(string), UID: md["uid"].(string)}
		id := fmt.Sprintf("%04d-kubesphere-delete", i+1)
		st.Steps = append(st.Steps, api.Step{ID: id, Phase: api.PhaseKubeSphere, Action: api.ActionDelete, Target: ref, Reason: "crafted", Cascade: &api.Cascade{}})
		journal = append(journal, fmt.Sprintf(`{"step":%q,"status":"done","at":%q}`, id, time.Now().UTC().Format(time.RFC3339Nano)))
		if ns == "" {
			ns = "_cluster"
		}
		rel := "objects/" + ns + "/" + ref.Kind + "/" + ref.Name + ".json"
		b, _ := json.Marshal(o)
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), b, 0o600); err != nil {
			t.Fatal(err)
		}
		x.Objects = append(x.Objects, api.BackupEntry{ObjectRef: ref, File: rel, SHA256: api.FileSHA256(b)})
	}
	sb, _ := json.MarshalIndent(st, "", " ")
	if err := os.WriteFile(filepath.Join(dir, api.BackupStageFile), sb, 0o600); err != nil {
		t.Fatal(err)
	}
	x.StageSHA256 = api.FileSHA256(sb)
	if edit != nil {
		edit(dir, x)
	}
	if err := api.WriteBackupIndex(dir, x); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, api.JournalFile), []byte(strings.Join(journal, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

var objects int

func object(apiVersion, kind, ns, name string, rest map[string]any) map[string]any {
	objects++
	md := map[string]any{"name": name, "uid": fmt.Sprintf("00000000-0000-4000-8000-%012x", objects)}
	if ns != "" {
		md["namespace"] = ns
	}
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": md}
	for k, v := range rest {
		o[k] = v
	}
	return o
}

// TestTrustRestore: backups and backup directories are inputs an attacker
// may write (issue 22, items 3, 7 and 10). Each crafted one is refused
// with exit 2, a message naming the problem and the way out, nothing on
// stdout, and no persisted write (audit log).
func TestTrustRestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := fixture.Start(t, "incident", controlplane.Options{Audit: true}, true)
	kc := st.CP.AdminKubeconfig
	ks, err := st.Seeder.Kube.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	digest := "sha256:" + strings.Repeat("ab", 32)
	cfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	single := crafted{t: t, cluster: api.Cluster{UID: string(ks.UID), Context: cfg.CurrentContext}, key: digest}
	bound := object("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "ks-clean-pwned", map[string]any{
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
		"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "default", "namespace": "default"}},
	})
	secret := object("v1", "Secret", "kube-system", "ks-clean-pwned", map[string]any{"stringData": map[string]any{"token": "x"}, "type": "Opaque"})
	planted := object("v1", "ConfigMap", "default", "ks-clean-planted", map[string]any{"data": map[string]any{"k": "v"}})
	outside := t.TempDir()

	backup := func(name string, objs []map[string]any, edit func(dir string, x *api.BackupIndex)) string {
		d := filepath.Join(dir, name)
		single.write(d, "cluster", api.StageCluster, objs, edit)
		return d
	}
	// The index entry's file is replaced by one outside the backup (its
	// checksum right), reached by "..", or by a symbolic link.
	escape := func(rel string) func(string, *api.BackupIndex) {
		return func(d string, x *api.BackupIndex) {
			b, _ := json.Marshal(planted)
			if err := os.WriteFile(filepath.Join(outside, "planted.json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
			x.Objects[0].File = rel
		}
	}
	symlink := func(target string) func(string, *api.BackupIndex) {
		return func(d string, x *api.BackupIndex) {
			f := filepath.Join(d, x.Objects[0].File)
			_ = os.Remove(f)
			if err := os.Symlink(target, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A plan of several stages: a stage apply would have saved elsewhere.
	multi := func(name string, layout func(top string)) string {
		top := filepath.Join(dir, name)
		layout(top)
		return top
	}
	stageOf := func(stage string) crafted {
		return crafted{t: t, cluster: single.cluster, key: digest + "/" + stage}
	}

	// apply with a backup directory someone prepared.
	good := filepath.Join(dir, "good.json")
	if _, errOut, code := runCLI(t, "--kubeconfig", kc, "plan", "--out", good, "--protect", "prod-ws1-1", "--protect", fixture.StandaloneNamespace); code != 0 {
		t.Fatalf("plan: %s", errOut)
	}
	p, err := api.Read(good)
	if err != nil {
		t.Fatal(err)
	}
	prepared := func(name string, prepare func(d string)) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(d, "objects"), 0o700); err != nil {
			t.Fatal(err)
		}
		prepare(d)
		return d
	}

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"restore: a ClusterRoleBinding to cluster-admin",
			[]string{"restore", backup("crb", []map[string]any{bound}, nil), "--confirm"}, "--allow-kind ClusterRoleBinding"},
		{"restore: a Secret in kube-system",
			[]string{"restore", backup("secret", []map[string]any{secret}, nil), "--confirm"}, "--allow-kind Secret"},
		{"restore: allowing one kind does not allow another",
			[]string{"restore", backup("both", []map[string]any{bound, secret}, nil), "--confirm", "--allow-kind", "Secret"}, "ClusterRoleBinding/ks-clean-pwned"},
		{"restore: an index entry with ..",
			[]string{"restore", backup("dotdot", []map[string]any{planted}, escape("objects/../../../"+filepath.Base(outside)+"/planted.json")), "--confirm"}, "without \"..\""},
		{"restore: an index entry /dev/zero",
			[]string{"restore", backup("devzero", []map[string]any{planted}, func(d string, x *api.BackupIndex) { x.Objects[0].File = "/dev/zero" }), "--confirm"}, "relative path below objects/"},
		{"restore: a backup file that links to /dev/zero",
			[]string{"restore", backup("zerolink", []map[string]any{planted}, symlink("/dev/zero")), "--confirm"}, "a symbolic link"},
		{"restore: a backup file that links outside",
			[]string{"restore", backup("outlink", []map[string]any{planted}, symlink(filepath.Join(outside, "planted.json"))), "--confirm"}, "a symbolic link"},
		{"restore: an index entry no step of the stage names",
			[]string{"restore", backup("nostep", []map[string]any{planted}, func(d string, x *api.BackupIndex) {
				x.Objects[0].UID = "11111111-0000-4000-8000-000000000000"
			}), "--confirm"}, "no target of the stage"},
		{"restore: a stage directory named with ..",
			[]string{"restore", multi("dotdotstage.apply", func(top string) {
				stageOf("../evil").write(filepath.Join(top, "01-..-evil"), "../evil", api.StageUnjoin, []map[string]any{planted}, nil)
			}), "--confirm"}, "apply would have saved as"},
		{"restore: an EKS context's stage in nested directories",
			[]string{"restore", multi("eks.apply", func(top string) {
				stageOf("unjoin").write(filepath.Join(top, "01-unjoin"), "unjoin", api.StageUnjoin, []map[string]any{planted}, nil)
				name := "arn:aws:eks:eu-west-1:123456789012:cluster/prod"
				stageOf(name).write(filepath.Join(top, "02-"+name), name, api.StageHost, []map[string]any{bound}, nil)
			}), "--confirm"}, "not a stage directory as apply makes them"},
		{"restore: a missing stage",
			[]string{"restore", multi("gap.apply", func(top string) {
				stageOf("unjoin").write(filepath.Join(top, "01-unjoin"), "unjoin", api.StageUnjoin, []map[string]any{planted}, nil)
				stageOf("host").write(filepath.Join(top, "03-host"), "host", api.StageHost, []map[string]any{planted}, nil)
			}), "--confirm"}, "stage 02 is missing"},
		{"apply: a 0666 file planted in the backup directory",
			[]string{"apply", good, "--confirm", "--backup-dir", prepared("wide.apply", func(d string) {
				f := filepath.Join(d, "objects", "secret.json")
				if err := os.WriteFile(f, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f, 0o666); err != nil {
					t.Fatal(err)
				}
			})}, "wider than 0600"},
		{"apply: a symbolic link in the backup directory",
			[]string{"apply", good, "--confirm", "--backup-dir", prepared("link.apply", func(d string) {
				if err := os.Symlink(outside, filepath.Join(d, "objects", "kubesphere-system")); err != nil {
					t.Fatal(err)
				}
			})}, "is a symbolic link"},
		{"apply: a backup directory open to others",
			[]string{"apply", good, "--confirm", "--backup-dir", prepared("open.apply", func(d string) {
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			})}, "wider than 0700"},
		{"apply: a planted index.json",
			[]string{"apply", good, "--confirm", "--backup-dir", prepared("index.apply", func(d string) {
				sb, _ := json.MarshalIndent(p.Stages[0], "", " ")
				if err := os.WriteFile(filepath.Join(d, api.BackupStageFile), sb, 0o600); err != nil {
					t.Fatal(err)
				}
				x := &api.BackupIndex{Plan: p.Digest, Cluster: p.Stages[0].Cluster.UID, TakenAt: time.Now().UTC(), StageSHA256: api.FileSHA256(sb), Objects: []api.BackupEntry{}}
				if err := api.WriteBackupIndex(d, x); err != nil {
					t.Fatal(err)
				}
			})}, "is not the backup an earlier run of this plan's apply took"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runRefused(t, st.CP, 2, []string{c.want}, append([]string{"--kubeconfig", kc}, c.args...)...)
		})
	}
}

// allowKinds are --allow-kind flags for every kind restore asks for: the
// tests that restore a backup their own apply wrote pass them, as the
// runbook says an operator does once the list is checked.
func allowKinds() []string {
	var out []string
	for _, k := range restore.SensitiveKinds {
		out = append(out, "--allow-kind", k)
	}
	return out
}

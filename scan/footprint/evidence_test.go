package footprint

import (
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Pure logic of the evidence rules; the control-plane tests (plan,
// conformance) prove them on real clusters.

func object(kind, name string, fields map[string]any) *inventory.Object {
	u := &unstructured.Unstructured{Object: map[string]any{"kind": kind, "metadata": map[string]any{"name": name}}}
	for k, v := range fields {
		u.Object[k] = v
	}
	return &inventory.Object{Resource: &inventory.Resource{Kind: kind}, Object: u, Content: u}
}

func TestRulesOnlyFootprintGroups(t *testing.T) {
	rule := func(groups ...any) map[string]any {
		return map[string]any{"apiGroups": groups, "resources": []any{"*"}, "verbs": []any{"get"}}
	}
	for _, c := range []struct {
		name  string
		rules []any
		want  bool
	}{
		{"KubeSphere and KubeFed groups", []any{rule("iam.kubesphere.io"), rule("core.kubefed.io", "types.kubefed.io")}, true},
		{"core group too", []any{rule("iam.kubesphere.io"), rule("")}, false},
		{"wildcard group", []any{rule("*")}, false},
		{"a look-alike group", []any{rule("kubesphere.io.example.com")}, false},
		{"non-resource URLs", []any{map[string]any{"nonResourceURLs": []any{"/healthz"}, "verbs": []any{"get"}}}, false},
		{"no rules", nil, false},
	} {
		if got := rulesOnlyFootprintGroups(object("ClusterRole", "r", map[string]any{"rules": c.rules})); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestStatefulSetClaimNames(t *testing.T) {
	prefixes := []string{"data-redis-"}
	for name, want := range map[string]bool{"data-redis-0": true, "data-redis-12": true, "data-redis-": false, "data-redis-x": false, "data-redis-0-copy": false, "data-other-0": false} {
		if got := hasPrefix(name, prefixes); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

func TestLookalike(t *testing.T) {
	labelled := object("Service", "etcd", nil)
	labelled.SetLabels(map[string]string{"app.kubernetes.io/vendor": "kubesphere"})
	annotated := object("ClusterRole", "cluster-admin", nil)
	annotated.SetAnnotations(map[string]string{"iam.kubesphere.io/aggregation-roles": "[]"})
	for _, c := range []struct {
		o    *inventory.Object
		want string
	}{
		{object("Namespace", "KubeSphere-sample", nil), "its name"},
		{labelled, "its label app.kubernetes.io/vendor"},
		{annotated, "its annotation iam.kubesphere.io/aggregation-roles"},
		{object("Service", "metrics-server", nil), ""},
	} {
		if got := lookalike(c.o); got != c.want {
			t.Errorf("%s: %q, want %q", c.o.GetName(), got, c.want)
		}
	}
}

// The evidence rules are what docs/safety-model.md shows, generated.
func TestRulesDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/safety-model.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- evidence-rules:begin -->\n")
	table, _, ok2 := strings.Cut(rest, "<!-- evidence-rules:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/safety-model.md has no evidence-rules markers")
	}
	if table != RulesMarkdown() {
		t.Errorf("docs/safety-model.md's evidence table is not footprint.Rules; replace it with:\n%s", RulesMarkdown())
	}
	names := map[string]bool{}
	for _, r := range Rules {
		if names[r.Name] || r.Name == "" || r.What == "" || r.Removes == "" {
			t.Errorf("rule %q: a unique name, what it decides and when it removes are required", r.Name)
		}
		names[r.Name] = true
	}
}

// An object whose release annotations name a release that is not
// KubeSphere's is not taken because a footprint release's manifest lists
// the same name: two charts render ClusterRole kube-state-metrics.
func TestHelmOwnerOverManifest(t *testing.T) {
	f := &Footprint{releases: map[string]bool{"kubesphere-monitoring-system/whizard-monitoring-agent": true},
		inRelease: map[string]string{manifestKey("", "ClusterRole", "", "kube-state-metrics"): "kubesphere-monitoring-system/whizard-monitoring-agent"}}
	users := object("ClusterRole", "kube-state-metrics", nil)
	users.SetAnnotations(map[string]string{AnnotationHelmName: "kube-prometheus-stack", AnnotationHelmNS: "monitoring"})
	if why := f.helmReason(users); why != "" {
		t.Errorf("a user's release's ClusterRole: %q, want no evidence", why)
	}
	unmarked := object("ClusterRole", "kube-state-metrics", nil)
	if why := f.helmReason(unmarked); !strings.Contains(why, "manifest") {
		t.Errorf("an unannotated ClusterRole the manifest lists: %q, want the manifest as evidence", why)
	}
}

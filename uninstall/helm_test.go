package uninstall

import (
	"testing"

	"github.com/ks-clean/ks-clean/api"
)

// A release whose manifest names a protected object must not be uninstalled:
// Helm would delete that object with the release.
func TestProtectedInManifest(t *testing.T) {
	x := &executor{stage: &stage{Plan: &api.Stage{Protected: []api.ObjectRef{
		{APIVersion: "v1", Kind: "Namespace", Name: "prod-ws1-1", UID: "u1"},
		{APIVersion: "v1", Kind: "ConfigMap", Namespace: "prod-ws1-1", Name: "app-config", UID: "u2"},
	}}}}
	manifest := `---
# Source: ks-core/templates/a.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: kubesphere-config
  namespace: kubesphere-system
---
# Source: ks-core/templates/b.yaml
apiVersion: v1
kind: Namespace
metadata:
  name: prod-ws1-1
`
	if got := x.protectedIn(manifest, "kubesphere-system"); got != "Namespace prod-ws1-1" {
		t.Fatalf("protectedIn = %q, want the protected namespace", got)
	}
	if got := x.protectedIn("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kubesphere-config\n  namespace: kubesphere-system\n", "kubesphere-system"); got != "" {
		t.Fatalf("protectedIn = %q for a manifest of KubeSphere's own objects", got)
	}
}

package restore

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/internal/kube"
)

// portable is the object as restore sends it: kube.Portable (no field the
// API server sets), and, as Velero's restore item actions do, without what
// the server or a built-in controller generated for the object that was
// deleted and would refuse or misapply on a new one.
func portable(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := kube.Portable(u)
	group := c.GroupVersionKind().Group
	switch {
	case group == "batch" && c.GetKind() == "Job":
		portableJob(c)
	case group == "" && c.GetKind() == "Pod":
		portablePod(c)
	case group == "" && c.GetKind() == "Service":
		portableService(c)
	case group == "" && c.GetKind() == "PersistentVolume":
		// The claim it was bound to has a new UID once restored: bound by
		// namespace and name again (restore's rebind does the same for a
		// volume apply kept).
		unstructured.RemoveNestedField(c.Object, "spec", "claimRef", "uid")
		unstructured.RemoveNestedField(c.Object, "spec", "claimRef", "resourceVersion")
	}
	return c
}

// The labels the Job controller puts on a Job and its pod template: they
// name the old Job's UID, and the API server refuses a new Job whose
// selector or template carries them ("`selector` not auto-generated").
var jobUIDLabels = []string{"controller-uid", "batch.kubernetes.io/controller-uid"}

func portableJob(c *unstructured.Unstructured) {
	if manual, _, _ := unstructured.NestedBool(c.Object, "spec", "manualSelector"); manual {
		return // the selector and labels are the user's
	}
	unstructured.RemoveNestedField(c.Object, "spec", "selector")
	for _, path := range [][]string{{"metadata", "labels"}, {"spec", "template", "metadata", "labels"}} {
		labels, found, _ := unstructured.NestedStringMap(c.Object, path...)
		if !found {
			continue
		}
		for _, k := range jobUIDLabels {
			delete(labels, k)
		}
		if len(labels) == 0 {
			unstructured.RemoveNestedField(c.Object, path...)
			continue
		}
		_ = unstructured.SetNestedStringMap(c.Object, labels, path...)
	}
}

// portablePod: the scheduler places the pod again (the node it ran on may
// be gone: a pod bound to a missing node never runs); admission computes
// its priority from its class again (a stale value is refused); ephemeral
// containers cannot be set on create; the service account token volume
// admission adds (and, before 1.24, the old account's token Secret, which
// restore does not bring back) is added again for the new account.
func portablePod(c *unstructured.Unstructured) {
	unstructured.RemoveNestedField(c.Object, "spec", "nodeName")
	unstructured.RemoveNestedField(c.Object, "spec", "priority")
	unstructured.RemoveNestedField(c.Object, "spec", "ephemeralContainers")
	sa, _, _ := unstructured.NestedString(c.Object, "spec", "serviceAccountName")
	if sa == "" {
		sa = "default"
	}
	volumes, _, _ := unstructured.NestedSlice(c.Object, "spec", "volumes")
	drop := map[string]bool{}
	var keep []any
	for _, v := range volumes {
		m, _ := v.(map[string]any)
		name, _ := m["name"].(string)
		secret, _, _ := unstructured.NestedString(m, "secret", "secretName")
		_, projected := m["projected"]
		if projected && strings.HasPrefix(name, "kube-api-access-") || strings.HasPrefix(secret, sa+"-token-") {
			drop[name] = true
			continue
		}
		keep = append(keep, v)
	}
	if len(drop) == 0 {
		return
	}
	_ = unstructured.SetNestedSlice(c.Object, keep, "spec", "volumes")
	for _, field := range []string{"containers", "initContainers"} {
		containers, _, _ := unstructured.NestedSlice(c.Object, "spec", field)
		for _, ct := range containers {
			m, _ := ct.(map[string]any)
			mounts, _, _ := unstructured.NestedSlice(m, "volumeMounts")
			var kept []any
			for _, mt := range mounts {
				mm, _ := mt.(map[string]any)
				if n, _ := mm["name"].(string); !drop[n] {
					kept = append(kept, mt)
				}
			}
			if len(mounts) > 0 {
				m["volumeMounts"] = kept
			}
		}
		if len(containers) > 0 {
			_ = unstructured.SetNestedSlice(c.Object, containers, "spec", field)
		}
	}
}

// portableService: the cluster IPs are allocated again (the old ones may
// be another Service's by now; DNS names stay), but a headless Service
// stays headless; the health check node port is allocated again. Node
// ports are kept: clients outside the cluster use them (KubeSphere's
// console is on 30880); create retries without them if one is taken.
func portableService(c *unstructured.Unstructured) {
	if ip, _, _ := unstructured.NestedString(c.Object, "spec", "clusterIP"); ip != "None" {
		unstructured.RemoveNestedField(c.Object, "spec", "clusterIP")
		unstructured.RemoveNestedField(c.Object, "spec", "clusterIPs")
	}
	unstructured.RemoveNestedField(c.Object, "spec", "healthCheckNodePort")
}

// withoutNodePorts drops a Service's node ports, for the server to choose.
func withoutNodePorts(c *unstructured.Unstructured) bool {
	ports, _, _ := unstructured.NestedSlice(c.Object, "spec", "ports")
	dropped := false
	for _, p := range ports {
		if m, ok := p.(map[string]any); ok {
			if _, ok := m["nodePort"]; ok {
				delete(m, "nodePort")
				dropped = true
			}
		}
	}
	if dropped {
		_ = unstructured.SetNestedSlice(c.Object, ports, "spec", "ports")
	}
	return dropped
}

// equal: the same content, but for what the server sets or generates
// (portable) and the owners' UIDs (a restored owner has a new one);
// numbers compare by value whatever their Go type (a backup decoded by
// another JSON decoder has float64 where the server's objects have int64).
func equal(a, b *unstructured.Unstructured) bool {
	return kube.SameContentAs(a, b, portable)
}

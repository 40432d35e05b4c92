package footprint

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// foreign lists the objects of a namespace that nothing ties to
// KubeSphere: not of a footprint group or release, not made by Kubernetes
// for what is (token Secrets of its ServiceAccounts, Endpoints of its
// Services, claims of its StatefulSets), not owned by what is.
func (f *Footprint) foreign(objs []*inventory.Object) []*inventory.Object {
	ours := map[types.UID]bool{}
	made := map[string]bool{"ServiceAccount default": true, "ConfigMap kube-root-ca.crt": true}
	var claimPrefixes []string
	for _, o := range objs {
		if !(IsFootprintGroup(o.Resource.GVR.Group) || f.helmReason(o) != "" || f.releaseRecord(o) || o.GetLabels()[LabelExtensionRef] != "") {
			continue
		}
		ours[o.GetUID()] = true
		switch o.Resource.Kind {
		case "Service":
			made["Endpoints "+o.GetName()] = true
		case "ServiceAccount":
			made["token "+o.GetName()] = true
		case "StatefulSet":
			if o.Content != nil {
				tmpls, _, _ := unstructured.NestedSlice(o.Content.Object, "spec", "volumeClaimTemplates")
				for _, t := range tmpls {
					name, _, _ := unstructured.NestedString(t.(map[string]any), "metadata", "name")
					claimPrefixes = append(claimPrefixes, name+"-"+o.GetName()+"-")
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, o := range objs {
			if ours[o.GetUID()] {
				continue
			}
			for _, ref := range o.GetOwnerReferences() {
				if ours[ref.UID] {
					ours[o.GetUID()], changed = true, true
					break
				}
			}
		}
	}
	var out []*inventory.Object
	for _, o := range objs {
		if ours[o.GetUID()] || made[o.Resource.Kind+" "+o.GetName()] {
			continue
		}
		if sa := o.GetAnnotations()["kubernetes.io/service-account.name"]; o.Resource.Kind == "Secret" && (sa == "default" || made["token "+sa]) {
			continue
		}
		if o.Resource.Kind == "PersistentVolumeClaim" && hasPrefix(o.GetName(), claimPrefixes) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// hasPrefix: s is one of the prefixes followed by an ordinal, as the
// StatefulSet controller names its claims.
func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if n, ok := strings.CutPrefix(s, p); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}

func describeSome(objs []*inventory.Object, n int) string {
	var parts []string
	for i, o := range objs {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(objs)-n))
			break
		}
		parts = append(parts, o.Resource.Kind+" "+strings.TrimPrefix(o.GetNamespace()+"/"+o.GetName(), "/"))
	}
	return strings.Join(parts, ", ")
}

// reportLookalikes lists what stays although it looks like KubeSphere's:
// namespaces by name or the installer's label, and, in namespaces that are
// not the users' workspaces, objects whose name, labels or annotations
// mention KubeSphere or KubeFed.
func (f *Footprint) reportLookalikes() {
	userWorkspaceNS := map[string]bool{}
	for _, ns := range f.UserNamespaces {
		n := ns.GetName()
		ws := ns.GetLabels()[LabelWorkspace]
		switch {
		case api.KubernetesNamespaces[n]:
		case ws == LabelSystemWorkspace:
			f.keep(ns, KeptNamespace, "labelled as in KubeSphere's system-workspace, but nothing in the cluster says KubeSphere created it: kept")
		case LooksLikeKubeSphere(n):
			f.keep(ns, KeptNamespace, "named like KubeSphere's, but nothing in the cluster says it is (no owner, Helm release or installer record): kept")
		}
		if ws != "" && ws != LabelSystemWorkspace {
			userWorkspaceNS[n] = true
		}
	}
	detached := map[types.UID]bool{}
	for _, d := range f.Detach {
		detached[d.Obj.GetUID()] = true
	}
	for _, o := range f.Inv.Objects {
		ns := o.GetNamespace()
		if f.Goes(o) || detached[o.GetUID()] || userWorkspaceNS[ns] || o.Resource.Kind == "Namespace" || o.Resource.Kind == "CustomResourceDefinition" || localAPIService(o) {
			continue
		}
		if hint := lookalike(o); hint != "" {
			f.keep(o, KeptUnproven, hint+" mentions KubeSphere/KubeFed, but nothing in the cluster proves it is theirs: kept")
		}
	}
}

// localAPIService: the apiserver's own record of a CRD group, which goes
// with the group's last CRD.
func localAPIService(o *inventory.Object) bool {
	if o.Resource.Kind != "APIService" || o.Content == nil {
		return false
	}
	_, remote, _ := unstructured.NestedMap(o.Content.Object, "spec", "service")
	return !remote
}

// lookalike says what about an object mentions KubeSphere or KubeFed.
func lookalike(o *inventory.Object) string {
	if LooksLikeKubeSphere(o.GetName()) {
		return "its name"
	}
	for k, v := range o.GetLabels() {
		if LooksLikeKubeSphere(k) || LooksLikeKubeSphere(v) {
			return "its label " + k
		}
	}
	for k := range o.GetAnnotations() {
		if LooksLikeKubeSphere(k) {
			return "its annotation " + k
		}
	}
	return ""
}

// Volume is a PersistentVolume bound, or pre-bound, to a claim that goes
// with the teardown (in a removed namespace, of a footprint release) or is
// already being deleted, and whose reclaim policy would take the data with
// it.
type Volume struct {
	PV, Claim *inventory.Object
	Policy    string
}

// Volumes lists what must be switched to Retain before any claim goes. A
// volume pre-bound to such a claim counts too: its claimRef names the
// claim without a UID yet (static provisioning, or the volume binder's
// first pass), or the claim names it in spec.volumeName. The binder may
// complete the binding at any moment; then the volume goes with the claim.
func (f *Footprint) Volumes() []Volume {
	byName, byVolume := map[string]*inventory.Object{}, map[string]*inventory.Object{}
	for _, c := range f.Inv.OfKind("", "PersistentVolumeClaim") {
		if !(f.Goes(c) || f.Dying(c) || f.inRelease[objectKey(c)] != "") || c.Content == nil {
			continue
		}
		byName[c.GetNamespace()+"/"+c.GetName()] = c
		if v, _, _ := unstructured.NestedString(c.Content.Object, "spec", "volumeName"); v != "" {
			byVolume[v] = c
		}
	}
	var out []Volume
	for _, pv := range f.Inv.OfKind("", "PersistentVolume") {
		if pv.Content == nil {
			continue
		}
		policy, _, _ := unstructured.NestedString(pv.Content.Object, "spec", "persistentVolumeReclaimPolicy")
		if policy == "Retain" {
			continue
		}
		ref, _, _ := unstructured.NestedStringMap(pv.Content.Object, "spec", "claimRef")
		c := byName[ref["namespace"]+"/"+ref["name"]]
		if c == nil {
			c = byVolume[pv.GetName()]
		}
		if c == nil || (ref["uid"] != "" && ref["uid"] != string(c.GetUID())) {
			continue // bound to another claim, or to none that goes
		}
		out = append(out, Volume{PV: pv, Claim: c, Policy: policy})
	}
	return out
}

// Package api holds ks-clean's wire types: the teardown plan (a plain,
// versioned data structure with a stable JSON form that `ks-clean plan`
// writes and `ks-clean apply` executes exactly), the findings of a scan and
// the typed refusals every package returns. Plans are reviewed by people and
// diffed by runbooks, so field names and orders are part of the contract. It
// imports nothing of ks-clean: every other package may use it.
package api

import (
	"fmt"
	"time"
)

// APIVersion is the plan format this build writes and reads. v1alpha2: a
// plan is a list of stages (one per cluster and step of a teardown); a
// single-cluster plan is a plan of one stage.
const APIVersion = "ks-clean/v1alpha2"

// KindPlan is the kind of a plan file.
const KindPlan = "Plan"

// ObjectRef names one Kubernetes object.
type ObjectRef struct {
	APIVersion      string `json:"apiVersion"`
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name"`
	UID             string `json:"uid,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return fmt.Sprintf("%s/%s", r.Kind, r.Name)
	}
	return fmt.Sprintf("%s/%s/%s", r.Kind, r.Namespace, r.Name)
}

// Guardable: apply's deletion guard can protect it (a namespace or a
// PersistentVolume, known by UID).
func (r ObjectRef) Guardable() bool {
	return r.Group() == "" && (r.Kind == "Namespace" || r.Kind == "PersistentVolume") && r.UID != ""
}

// Group is the API group of the reference ("" for the core group).
func (r ObjectRef) Group() string {
	for i := 0; i < len(r.APIVersion); i++ {
		if r.APIVersion[i] == '/' {
			return r.APIVersion[:i]
		}
	}
	return ""
}

// KubernetesNamespaces are Kubernetes' own namespaces: no plan deletes
// them, no tenancy file moves them, whatever KubeSphere's labels say.
var KubernetesNamespaces = map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}

// Cluster identifies the cluster a scan or plan is about. UID is the UID of
// its kube-system namespace: stable for the cluster's life, unlike URLs.
type Cluster struct {
	UID     string `json:"uid"`
	Server  string `json:"server"`
	Context string `json:"context"`
}

// KubeSphere is what was detected of the install.
type KubeSphere struct {
	// Version is e.g. "v3.3.1", "v4.1.3", "" when none was found.
	Version string `json:"version"`
	// Role is host, member, none (single cluster), leftovers (pieces of
	// KubeSphere or KubeFed without a working install) or absent.
	Role string `json:"role"`
}

// Roles.
const (
	RoleHost      = "host"
	RoleMember    = "member"
	RoleNone      = "none"
	RoleLeftovers = "leftovers"
	RoleAbsent    = "absent"
)

// Severity of a finding.
type Severity string

const (
	Critical Severity = "critical"
	Warning  Severity = "warning"
	Info     Severity = "info"
)

// Finding is one hazard found by a scan. IDs are stable: runbooks match them.
type Finding struct {
	ID       string      `json:"id"`
	Severity Severity    `json:"severity"`
	Message  string      `json:"message"`
	Objects  []ObjectRef `json:"objects"`
}

// Phase of a teardown, in execution order.
type Phase string

const (
	PhasePreflight  Phase = "preflight"
	PhaseQuiesce    Phase = "quiesce"
	PhaseDisarm     Phase = "disarm"
	PhaseDetach     Phase = "detach"
	PhaseKubeFed    Phase = "kubefed"
	PhaseKubeSphere Phase = "kubesphere"
	PhaseHelm       Phase = "helm"
	PhaseNamespaces Phase = "namespaces"
	PhaseCRDs       Phase = "crds"
	PhaseRBAC       Phase = "rbac"
	PhaseVerify     Phase = "verify"
)

// Phases lists every phase in order.
var Phases = []Phase{PhasePreflight, PhaseQuiesce, PhaseDisarm, PhaseDetach, PhaseKubeFed, PhaseKubeSphere, PhaseHelm, PhaseNamespaces, PhaseCRDs, PhaseRBAC, PhaseVerify}

// Action a step performs.
type Action string

const (
	ActionScale Action = "scale"
	ActionPatch Action = "patch"
	// ActionRetain sets a PersistentVolume's reclaim policy to Retain, so
	// its data outlives the claim the teardown deletes.
	ActionRetain Action = "retain"
	// ActionFinalize puts the `kubernetes` finalizer back into a
	// namespace's spec.finalizers (through /finalize). Without it a delete
	// removes the namespace at once and leaves its content in etcd, to
	// come back with the next namespace of that name (KubeSphere 4.1's
	// post-delete hook wipes it). It touches no data.
	ActionFinalize      Action = "finalize"
	ActionDelete        Action = "delete"
	ActionHelmUninstall Action = "helm-uninstall"
	ActionWait          Action = "wait"
	ActionVerify        Action = "verify"
)

// Step is one write (or check) of the teardown.
type Step struct {
	ID     string    `json:"id"`
	Phase  Phase     `json:"phase"`
	Action Action    `json:"action"`
	Target ObjectRef `json:"target"`
	Reason string    `json:"reason"`
	// Wave orders the steps of one phase: a wave starts once every step
	// of the lower ones is finished; the steps of a wave run concurrently.
	// The waves keep the evidence a resumed apply rescans: a role goes
	// before the bindings that made it KubeSphere's.
	Wave int `json:"wave,omitempty"`
	// Cluster, in a multi-cluster plan, is the kubeconfig context of the
	// cluster the step acts on.
	Cluster string `json:"cluster,omitempty"`
	// Replicas, for scale steps, is the count found at planning time, so
	// the quiesce can be undone by hand.
	Replicas *int64 `json:"replicas,omitempty"`
	// Remove, for patch steps, is exactly what the patch takes away.
	Remove *Removal `json:"remove,omitempty"`
	// Annotate, for patch steps, are annotations the patch sets (the only
	// addition a plan makes: kubefed.io/orphan on federated objects, so a
	// KubeFed that comes back cannot propagate their deletion).
	Annotate map[string]string `json:"annotate,omitempty"`
	// Cascade, for delete steps, is what Kubernetes takes with the target
	// (see Cascade).
	Cascade *Cascade `json:"cascade,omitempty"`
	// Claim, for retain steps, is the claim the volume is bound to, and
	// ReclaimPolicy the policy found at planning time (to restore by hand).
	Claim         *ObjectRef `json:"claim,omitempty"`
	ReclaimPolicy string     `json:"reclaimPolicy,omitempty"`
	// Release, for helm-uninstall steps, is the release as planned: apply
	// refuses to uninstall a release installed or upgraded since.
	Release *ReleaseRef `json:"release,omitempty"`
}

// ReleaseRef is what a plan saw of a Helm release: its latest revision,
// that revision's chart (name-version, as 'helm list' shows it) and when
// that revision was deployed (a release uninstalled and installed again
// starts again at revision 1).
type ReleaseRef struct {
	Revision int        `json:"revision"`
	Chart    string     `json:"chart,omitempty"`
	Deployed *time.Time `json:"deployed,omitempty"`
}

// Cascade is what a delete takes with it, once the plan's detaches are
// done: Objects counts everything (what a deleted namespace holds, and what
// the garbage collector deletes because every owner it names is gone); To
// names the latter, so a reviewer sees each object that goes without a step
// of its own outside the deleted namespaces.
type Cascade struct {
	Objects int         `json:"objects"`
	To      []ObjectRef `json:"to,omitempty"`
}

// Removal lists what a detach or finalizer patch removes from an object's
// metadata; nothing else of the object is touched.
type Removal struct {
	// OwnerReferences are the UIDs of owners to drop.
	OwnerReferences []string `json:"ownerReferences,omitempty"`
	Finalizers      []string `json:"finalizers,omitempty"`
	Labels          []string `json:"labels,omitempty"`
}

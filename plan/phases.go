package plan

import (
	"fmt"
	"strings"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Wait says how a phase ends.
type Wait string

const (
	// WaitNone: the phase ends with its last write.
	WaitNone Wait = ""
	// WaitDeleted: until every object the phase deletes is gone.
	WaitDeleted Wait = "deleted"
	// WaitNoPods: until every scaled workload has no pod left, terminating
	// ones included (a pod in its grace period still acts).
	WaitNoPods Wait = "no-pods"
)

// Match narrows a placement or a rank rule to some footprint objects; empty
// fields match anything.
type Match struct {
	Group      string
	Kind       string
	NamePrefix string
	// NameContains matches controller names that vary by install.
	NameContains string
	// Namespaced, when set, matches only namespaced (true) or cluster-wide
	// (false) objects.
	Namespaced *bool
}

func (m Match) matches(o *inventory.Object) bool {
	return (m.Group == "" || o.Resource.GVR.Group == m.Group) &&
		(m.Kind == "" || o.Resource.Kind == m.Kind) &&
		(m.NamePrefix == "" || strings.HasPrefix(o.GetName(), m.NamePrefix)) &&
		(m.NameContains == "" || strings.Contains(o.GetName(), m.NameContains)) &&
		(m.Namespaced == nil || *m.Namespaced == (o.GetNamespace() != ""))
}

// Rank orders objects within a phase: the first rule an object matches
// gives its rank, lower first; an object matching none ranks Default.
type Rank struct {
	Rules   []RankRule
	Default int
}

// RankRule is one line of a Rank.
type RankRule struct {
	Match
	Rank int
}

func (r Rank) of(o *inventory.Object) int {
	for _, rule := range r.Rules {
		if rule.matches(o) {
			return rule.Rank
		}
	}
	return r.Default
}

// PhaseRule is one row of the phase table: what a phase removes, in which
// order, and how it ends.
type PhaseRule struct {
	Phase api.Phase
	// Categories are the footprint categories whose members this phase
	// acts on, in this order (see Placements for categories split across
	// phases: their members come after).
	Categories []footprint.Category
	// Order ranks the members of one category.
	Order Rank
	Wait  Wait
	// What and Why are the phase's row in docs/safety-model.md.
	What, Why string
}

// Placement puts the members of a category that match into a phase other
// than the one the table gives the category.
type Placement struct {
	Category footprint.Category
	Match
	Phase api.Phase
}

var yes = true

// bindingsLast puts RBAC bindings in a wave after the roles: a role used
// only by KubeSphere's bindings is KubeSphere's by that evidence, which
// must outlive it for a rescan (a resumed apply's) to find it again.
var bindingsLast = []RankRule{
	{Match: Match{Kind: "ClusterRoleBinding"}, Rank: 9},
	{Match: Match{Kind: "RoleBinding"}, Rank: 9},
}

// Placements: the first that matches a member decides its phase.
var Placements = []Placement{
	// KubeFed's join RBAC goes with KubeFed.
	{Category: footprint.CatRBAC, Match: Match{NamePrefix: "kubefed-controller-manager:"}, Phase: api.PhaseKubeFed},
	// KubeSphere's per-namespace RBAC goes with KubeSphere; cluster RBAC
	// last, so a half-done teardown keeps the permissions it ran with.
	{Category: footprint.CatRBAC, Match: Match{Namespaced: &yes}, Phase: api.PhaseKubeSphere},
}

// Table is the teardown's order: phases run in this order, each finished
// (its wait included) before the next starts. plan.Validate checks a plan
// against it, and docs/safety-model.md's table is generated from it.
var Table = []PhaseRule{
	{Phase: api.PhasePreflight,
		What: "check the cluster is the planned one (kube-system UID)", Why: "before any write"},
	{Phase: api.PhaseQuiesce, Categories: []footprint.Category{footprint.CatWorkload}, Wait: WaitNoPods,
		// KubeFed's controller first, so it stops syncing (the incident's
		// flapping) before anything changes.
		Order: Rank{Default: 2, Rules: []RankRule{
			{Match: Match{NameContains: "kubefed-controller-manager"}, Rank: 0},
			{Match: Match{NameContains: "controller-manager"}, Rank: 1},
			{Match: Match{NamePrefix: "ks-installer"}, Rank: 1},
		}},
		What: "scale KubeSphere/KubeFed Deployments/StatefulSets to 0, KubeFed's controller first, and wait until they have no pod left (terminating ones included)",
		Why:  "stops the flapping (2) and stops controllers from undoing the teardown"},
	{Phase: api.PhaseDisarm, Categories: []footprint.Category{footprint.CatWebhook, footprint.CatAPIService, footprint.CatGrant},
		What: "delete footprint webhooks and remote APIServices, then bindings that grant a role the teardown removes only to Kubernetes' own identities",
		Why:  "(3): nothing later is refused; a grant outliving its role would hand it to whoever makes one of that name, and the role is the grant's evidence, so it goes first"},
	{Phase: api.PhaseDetach,
		What: "PersistentVolumes of claims that go are switched to `Retain`; users' objects lose ownerReferences into the footprint, KubeSphere/KubeFed finalizers and the `kubefed.io/managed` / `kubesphere.io/workspace` labels",
		Why:  "the data before any claim goes; (1): before anything that owns them goes"},
	{Phase: api.PhaseKubeFed, Categories: []footprint.Category{footprint.CatKubeFed}, Wait: WaitDeleted,
		// Federated copies go before the records and type configs that
		// drive their propagation.
		Order: Rank{Default: 3, Rules: []RankRule{
			{Match: Match{Group: "types.kubefed.io"}, Rank: 0},
			{Match: Match{Kind: "KubeFedCluster"}, Rank: 1},
			{Match: Match{Kind: "FederatedTypeConfig"}, Rank: 2},
			{Match: Match{Kind: "KubeFedConfig"}, Rank: 4},
			bindingsLast[0], bindingsLast[1],
		}},
		What: "mark federated objects `kubefed.io/orphan` and strip finalizers (one write each), delete them, KubeFedClusters, type configs, KubeFedConfig, join RBAC", Why: "a KubeFed that comes back cannot propagate the deletions"},
	{Phase: api.PhaseKubeSphere, Categories: []footprint.Category{footprint.CatKubeSphere}, Wait: WaitDeleted,
		Order: Rank{Rules: bindingsLast},
		What:  "strip finalizers, delete KubeSphere custom resources and KubeSphere's per-namespace RBAC",
		Why:   "Workspaces go only now, owning nothing"},
	{Phase: api.PhaseHelm,
		What: "uninstall KubeSphere/KubeFed releases (hooks off by default)",
		Why:  "refused if a release manifest names a protected object"},
	{Phase: api.PhaseNamespaces, Categories: []footprint.Category{footprint.CatNamespace}, Wait: WaitDeleted,
		What: "delete KubeSphere/KubeFed system namespaces", Why: "never a user or Kubernetes namespace"},
	{Phase: api.PhaseCRDs, Categories: []footprint.Category{footprint.CatCRD}, Wait: WaitDeleted,
		What: "delete the CRDs of KubeSphere/KubeFed groups, and those a KubeSphere release installed whose every instance went", Why: "their instances are gone (4); a type with one instance of someone else's stays"},
	{Phase: api.PhaseRBAC, Categories: []footprint.Category{footprint.CatRBAC, footprint.CatHelm},
		Order: Rank{Rules: bindingsLast},
		What:  "delete cluster RBAC made by or for KubeSphere/KubeFed", Why: "last, so a half-done run keeps its permissions"},
	{Phase: api.PhaseVerify,
		What: "rescan: nothing left, every protected object present with its UID"},
}

// categoryRank orders a phase's members by category: the phase's own in
// the order it lists them, then those placed in it from other categories.
func (r PhaseRule) categoryRank(c footprint.Category) int {
	for i, own := range r.Categories {
		if own == c {
			return i
		}
	}
	return len(r.Categories)
}

// wave is a member's Step.Wave: its category's place in the phase, then
// its rank (ranks stay below 10).
func (r PhaseRule) wave(m *footprint.Member) int {
	return 10*r.categoryRank(m.Category) + r.Order.of(m.Obj)
}

// rule returns the table's row for a phase.
func rule(ph api.Phase) PhaseRule {
	for _, r := range Table {
		if r.Phase == ph {
			return r
		}
	}
	panic("plan: no phase " + ph)
}

// phaseOf is the phase a footprint member is removed in.
func phaseOf(m *footprint.Member) (api.Phase, bool) {
	for _, p := range Placements {
		if p.Category == m.Category && p.matches(m.Obj) {
			return p.Phase, true
		}
	}
	for _, r := range Table {
		for _, c := range r.Categories {
			if c == m.Category {
				return r.Phase, true
			}
		}
	}
	return "", false
}

// TableMarkdown renders the phase table for docs/safety-model.md.
func TableMarkdown() string {
	var b strings.Builder
	b.WriteString("| phase | what | why here |\n|---|---|---|\n")
	for _, r := range Table {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.Phase, r.What, r.Why)
	}
	return b.String()
}

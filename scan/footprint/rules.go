package footprint

import (
	"fmt"
	"strings"

	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Rule is one kind of evidence that puts objects in the footprint: the
// cluster says they are KubeSphere's or KubeFed's. A name is never
// evidence. Rules are data: Classify runs the object rules in this order
// (the first that applies to an object decides it), and
// docs/safety-model.md's evidence table is generated from all of them
// (RulesMarkdown).
type Rule struct {
	Name string
	// What the rule decides, when it Removes it, and what is Kept (and
	// reported) otherwise: its row in the docs.
	What, Removes, Kept string
	// applies selects the objects this rule decides; nil for the rules
	// Classify applies before the object rules (namespaces, releases).
	applies func(o *inventory.Object) bool
	// reason says why o goes ("": it stays), and in which category.
	reason func(f *Footprint, o *inventory.Object) (Category, string)
}

func kind(group string, kinds ...string) func(*inventory.Object) bool {
	return func(o *inventory.Object) bool {
		if o.Resource.GVR.Group != group {
			return false
		}
		for _, k := range kinds {
			if o.Resource.Kind == k {
				return true
			}
		}
		return false
	}
}

// Rules, in the order Classify applies them.
var Rules = []Rule{
	{
		Name: "system-namespace", What: "a namespace, whole",
		Removes: "it is one KubeSphere/KubeFed create for themselves (`kubesphere-system`, `kube-federation-system`, … a fixed list of their own names), an extension's (`InstallPlan` target, `extension-*` of an `Extension`); or one ks-installer created for a component its `ClusterConfiguration` switches on (`argocd`, `istio-system`, `kubeedge`, `gatekeeper-system`, `weave`) and labelled `kubesphere.io/workspace=system-workspace`, or an extension's by its own marks where no InstallPlan says so (on a member, or after the official uninstall): labelled `kubesphere.io/extension-ref`, or holding a Helm release whose manifest labels every object so; **and** holding nothing but KubeSphere's objects (its releases' manifests and hooks, its groups, objects labelled `kubesphere.io/extension-ref`, what they own, what Kubernetes makes for them)",
		Kept:    "`kept-namespace`: named like KubeSphere's, labelled system-workspace, or a component namespace holding something else (listed); the releases in it are still uninstalled",
	},
	{
		Name: "helm-release", What: "a Helm release",
		Removes: "it lives in one of KubeSphere's/KubeFed's own namespaces, an `InstallPlan` names it, its manifest labels every object `kubesphere.io/extension-ref` (or it is `<x>`/`<x>-agent` in a namespace labelled `kubesphere.io/extension-ref=<x>`), or the `ClusterConfiguration` switches on the component that installs exactly that release in exactly that namespace (`argocd/devops`, `istio-system/jaeger-operator`, …)",
		Kept:    "never uninstalled: `metrics-server` and `snapshot-controller` carry no such evidence (users' HPAs and VolumeSnapshots need them)",
	},
	{
		Name: "kubernetes-bootstrap", What: "an object labelled `kubernetes.io/bootstrapping`",
		Removes: "never: it is Kubernetes' own, whatever KubeSphere annotated on it (the installer annotates `cluster-admin`)",
		applies: func(o *inventory.Object) bool { return o.GetLabels()[LabelBootstrapping] != "" },
		reason:  func(*Footprint, *inventory.Object) (Category, string) { return "", "" },
	},
	{
		Name: "kubefed-group", What: "objects of `*.kubefed.io` groups",
		Removes: "always: the group is the evidence",
		applies: func(o *inventory.Object) bool { return IsKubeFedGroup(o.Resource.GVR.Group) },
		reason: func(_ *Footprint, o *inventory.Object) (Category, string) {
			return CatKubeFed, "KubeFed object (" + o.Resource.GVR.Group + ")"
		},
	},
	{
		Name: "kubesphere-group", What: "objects of `*.kubesphere.io` groups",
		Removes: "always: the group is the evidence",
		applies: func(o *inventory.Object) bool { return IsKubeSphereGroup(o.Resource.GVR.Group) },
		reason: func(_ *Footprint, o *inventory.Object) (Category, string) {
			return CatKubeSphere, "KubeSphere object (" + o.Resource.GVR.Group + ")"
		},
	},
	{
		Name: "crd", What: "a CRD of another group (`app.k8s.io`, `monitoring.coreos.com`, `snapshot.storage.k8s.io`, `argoproj.io`, …)",
		Removes: "a footprint release installed it **and** every instance goes: deleting a CRD deletes every instance cluster-wide (decided after every other object)",
		Kept:    "`kept-shared-type`: KubeSphere's instances go, the type stays with the others'",
		applies: kind("apiextensions.k8s.io", "CustomResourceDefinition"),
		reason:  nil, // deferred: Classify decides CRDs once every instance is classified
	},
	{
		Name: "webhook", What: "webhook configurations",
		Removes: "of a footprint release, served from a removed namespace (or one of KubeSphere's own that is gone), or matching KubeSphere/KubeFed groups only",
		applies: kind("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"),
		reason:  func(f *Footprint, o *inventory.Object) (Category, string) { return CatWebhook, f.webhookReason(o) },
	},
	{
		Name: "apiservice", What: "APIServices",
		Removes: "of a footprint release, served from a removed namespace (or one of KubeSphere's own that is gone), or serving a KubeSphere/KubeFed group; or named by `plan --remove-apiservice`",
		applies: func(o *inventory.Object) bool { return o.Resource.GVR.Group == "apiregistration.k8s.io" },
		reason: func(f *Footprint, o *inventory.Object) (Category, string) {
			if why := f.apiServiceReason(o); why != "" {
				return CatAPIService, why
			}
			if f.removeAPI[o.GetName()] {
				return CatAPIService, "APIService removed at the user's request (--remove-apiservice)"
			}
			return "", ""
		},
	},
	{
		Name: "rbac", What: "RBAC",
		Removes: "labelled `iam.kubesphere.io/*`, `kubesphere.io/managed` or `kubesphere.io/extension-ref`; a ClusterRole KubeSphere aggregates (`iam.kubesphere.io/aggregation-roles`); of a footprint release; a binding whose every subject is a ServiceAccount of a removed namespace, or of KubeSphere's/KubeFed's own namespaces that are already gone (a half-finished uninstall); a ClusterRole whose rules name KubeSphere/KubeFed groups only; a ClusterRole that only such bindings use; a binding that grants a ClusterRole the teardown removes only to Kubernetes' own `system:` identities, ServiceAccounts of removed namespaces or KubeSphere users that go (removed first, in the disarm phase)",
		Kept:    "`kept-unproven` when its name or labels mention KubeSphere",
		applies: func(o *inventory.Object) bool { return o.Resource.GVR.Group == "rbac.authorization.k8s.io" },
		reason:  func(f *Footprint, o *inventory.Object) (Category, string) { return CatRBAC, f.rbacReason(o) },
	},
	{
		Name: "system-workload", What: "Deployments and StatefulSets",
		Removes: "in a namespace the teardown deletes: stopped first (quiesce), so nothing of KubeSphere's acts while the rest goes",
		applies: kind("apps", "Deployment", "StatefulSet"),
		reason: func(f *Footprint, o *inventory.Object) (Category, string) {
			if f.SystemNamespaces[o.GetNamespace()] {
				return CatWorkload, "workload of KubeSphere/KubeFed"
			}
			return "", ""
		},
	},
	{
		Name: "release-object", What: "any other cluster-scoped object",
		Removes: "its `meta.helm.sh/release-*` annotations name a footprint release, or a release whose namespace is KubeSphere's/KubeFed's own (the record may be gone with it), or the release's manifest or hooks list it",
		applies: func(o *inventory.Object) bool { return o.GetNamespace() == "" },
		reason: func(f *Footprint, o *inventory.Object) (Category, string) {
			if why := f.helmReason(o); why != "" {
				return CatHelm, "cluster-scoped object " + why
			}
			return "", ""
		},
	},
	{
		Name: "extension-object", What: "any other object outside the namespaces the teardown deletes",
		Removes: "labelled `kubesphere.io/extension-ref`: KubeSphere's post-renderer labels every object of an extension's release so, also those it puts into other namespaces (whizard-monitoring's Services in `kube-system`)",
		applies: func(o *inventory.Object) bool { return o.GetLabels()[LabelExtensionRef] != "" },
		reason: func(f *Footprint, o *inventory.Object) (Category, string) {
			if f.SystemNamespaces[o.GetNamespace()] {
				return "", "" // goes with its namespace
			}
			return CatHelm, "object of KubeSphere extension " + o.GetLabels()[LabelExtensionRef] + " (its label " + LabelExtensionRef + ")"
		},
	},
	{
		Name: "release-hook", What: "any other object outside the namespaces the teardown deletes",
		Removes: "a footprint release's hooks list it: helm uninstall deletes a release's manifest, not its hooks",
		applies: func(o *inventory.Object) bool { return true },
		reason: func(f *Footprint, o *inventory.Object) (Category, string) {
			if f.SystemNamespaces[o.GetNamespace()] {
				return "", "" // goes with its namespace
			}
			if rel := f.inHooks[objectKey(o)]; rel != "" {
				return CatHelm, "hook object of Helm release " + rel + ", which helm uninstall leaves"
			}
			return "", ""
		},
	},
}

// RulesMarkdown is the evidence table of docs/safety-model.md.
func RulesMarkdown() string {
	var b strings.Builder
	b.WriteString("| rule | what | removed when | kept (and reported) otherwise |\n|---|---|---|---|\n")
	for _, r := range Rules {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.Name, r.What, r.Removes, r.Kept)
	}
	return b.String()
}

// classifyObjects applies the object rules to every object; CRDs are
// returned, to be decided once every instance is.
func (f *Footprint) classifyObjects() (crds []*inventory.Object) {
	for _, obj := range f.Inv.Objects {
		for _, r := range Rules {
			if r.applies == nil || !r.applies(obj) {
				continue
			}
			if r.reason == nil {
				crds = append(crds, obj)
			} else if c, why := r.reason(f, obj); why != "" {
				f.add(obj, c, why)
			}
			break
		}
	}
	return crds
}

package uninstall

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/pager"
	"k8s.io/utils/ptr"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/lease"
)

// GuardName names the deletion guard's ValidatingAdmissionPolicy and its
// binding (scan looks for it under the same name).
const GuardName = api.GuardName

const guardMessage = "ks-clean apply is running and protects this object from deletion (the user's namespace or a retained volume); see 'ks-clean scan'"

// Guard modes, as the result reports them.
const (
	// GuardPolicy: a ValidatingAdmissionPolicy refused every delete of a
	// guarded object (Kubernetes 1.30 and later).
	GuardPolicy = "admission-policy"
	// GuardTripwire: the server cannot refuse deletes (no
	// ValidatingAdmissionPolicy API); apply watched the guarded objects and
	// would have stopped every write the moment one was being deleted.
	GuardTripwire = "tripwire"
	// GuardNone: nothing to guard.
	GuardNone = "none"
)

// GuardTrippedError says apply stopped because a guarded object (a
// protected namespace or retained volume) began to be deleted while it ran,
// on a server where the guard could only watch. No write was issued after
// At.
type GuardTrippedError struct {
	Object string
	// Deleted: the object is gone, not only being deleted.
	Deleted bool
	At      time.Time
}

func (e *GuardTrippedError) Error() string {
	what := "is being deleted"
	if e.Deleted {
		what = "was deleted"
	}
	return fmt.Sprintf("%v: protected %s %s by someone else while apply ran (noticed %s); this server cannot refuse the delete (no ValidatingAdmissionPolicy API, Kubernetes 1.30+), so apply watched for it and stopped. Find who deleted it (its ownerReferences and events, the audit log), then run 'ks-clean scan': it names what is being deleted and what of the user's is left",
		api.ErrGuardTripped, e.Object, what, e.At.UTC().Format(time.RFC3339))
}

func (e *GuardTrippedError) Unwrap() error { return api.ErrGuardTripped }

// guard is a ValidatingAdmissionPolicy that denies DELETE of the plan's
// protected namespaces and retained PersistentVolumes, from anyone, the
// garbage collector and the namespace controller included, while apply
// runs: a path nobody tested cannot lose them either.
type guard struct {
	kc   kubernetes.Interface
	uids map[types.UID]string
	// created are the UIDs of what this apply made, removed only if they
	// are still those objects.
	created map[string]types.UID
	mode    string
	// stopWatch ends the tripwire's watches.
	stopWatch context.CancelFunc
}

func guardLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "ks-clean"}
}

// guarded lists what the guard protects: every protected namespace and
// PersistentVolume of the stage.
func guarded(st *api.Stage) map[types.UID]string {
	out := map[types.UID]string{}
	for _, r := range st.Protected {
		if r.Guardable() {
			out[types.UID(r.UID)] = r.String()
		}
	}
	return out
}

// installGuard puts the guard in place and waits until the apiserver
// enforces it (a dry-run delete of a guarded namespace is refused). On a
// server without the ValidatingAdmissionPolicy API it sets a tripwire
// instead, which calls halt.
func installGuard(ctx context.Context, c *kube.Clients, st *api.Stage, halt func(error)) (*guard, error) {
	g := &guard{kc: c.Kube, uids: guarded(st), created: map[string]types.UID{}, mode: GuardNone}
	if len(g.uids) == 0 {
		return g, nil
	}
	served, err := policyServed(c)
	if err != nil {
		return nil, err
	}
	if !served || tripwireOnly {
		return g, g.startTripwire(ctx, c, halt)
	}
	fail := admissionregistrationv1.Fail
	deny := []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: GuardName, Labels: guardLabels()},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy:    &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: append(guardRules(g.uids), leaseRule())},
			// The Lease is matched for the probe alone: a real delete of it
			// (an operator breaking a stuck run, this run releasing it)
			// stays allowed.
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "lease-probe-is-a-dry-run",
				Expression: "request.resource.resource != 'leases' || request.dryRun == true",
			}},
			// Everything the rules match is refused: they name only what
			// is guarded.
			Validations: []admissionregistrationv1.Validation{{
				Expression: "false",
				Message:    guardMessage,
				Reason:     ptr.To(metav1.StatusReasonForbidden),
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: GuardName, Labels: guardLabels()},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        GuardName,
			ValidationActions: deny,
		},
	}
	// A guard already there (left by an apply that was killed or that
	// kept it for objects still at risk, or made by this apply's create
	// whose answer was lost) is taken over in place: deleting and
	// re-creating it would leave a moment with no guard. This apply holds
	// the Lease, so no other apply is using it.
	ar := c.Kube.AdmissionregistrationV1()
	policies, bindings := ar.ValidatingAdmissionPolicies(), ar.ValidatingAdmissionPolicyBindings()
	for _, step := range []struct {
		what   string
		create func() (metav1.Object, error)
		update func() (metav1.Object, error)
	}{
		{"policy", func() (metav1.Object, error) { return policies.Create(ctx, policy, metav1.CreateOptions{}) },
			func() (metav1.Object, error) {
				old, err := policies.Get(ctx, GuardName, metav1.GetOptions{})
				if err != nil {
					return nil, err
				}
				old.Labels, old.Spec = policy.Labels, policy.Spec
				return policies.Update(ctx, old, metav1.UpdateOptions{})
			}},
		{"binding", func() (metav1.Object, error) { return bindings.Create(ctx, binding, metav1.CreateOptions{}) },
			func() (metav1.Object, error) {
				old, err := bindings.Get(ctx, GuardName, metav1.GetOptions{})
				if err != nil {
					return nil, err
				}
				old.Labels, old.Spec = binding.Labels, binding.Spec
				return bindings.Update(ctx, old, metav1.UpdateOptions{})
			}},
	} {
		var uid types.UID
		err := kube.RetryIf(ctx, func(err error) bool { return apierrors.IsConflict(err) || kube.Retriable(err) }, func() error {
			o, err := step.create()
			if apierrors.IsAlreadyExists(err) {
				o, err = step.update()
			}
			if err == nil {
				uid = o.GetUID()
			}
			return err
		})
		if err != nil {
			g.remove(ctx)
			return nil, fmt.Errorf("install the deletion guard: %w", err)
		}
		g.created[step.what] = uid
	}
	g.mode = GuardPolicy
	if err := g.waitEnforced(ctx); err != nil {
		g.remove(ctx)
		return nil, err
	}
	return g, nil
}

// leaseProbe names the Lease as the object a dry-run delete checks the
// guard with.
const leaseProbe = "Lease " + lease.Namespace + "/" + lease.Name

// leaseRule matches dry-run deletes of the run's own Lease (see the
// policy's match condition): refused, they show the policy is enforced to a
// user who may delete nothing else the guard protects.
func leaseRule() admissionregistrationv1.NamedRuleWithOperations {
	return admissionregistrationv1.NamedRuleWithOperations{
		ResourceNames: []string{lease.Name},
		RuleWithOperations: admissionregistrationv1.RuleWithOperations{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"coordination.k8s.io"}, APIVersions: []string{"v1"}, Resources: []string{"leases"}},
		},
	}
}

// guardRules match DELETE of the guarded namespaces and volumes by name
// (resourceNames). Not by UID in a CEL expression: the apiserver limits an
// expression to 100,000 code points (about 2,000 UIDs), and a policy
// holding 5,000 UIDs, split across expressions, took 23 s to be enforced;
// 5,000 names take about a second. A namespace re-created under a guarded
// name while apply runs is guarded too, which costs nothing: the plan
// deletes none of those names.
func guardRules(uids map[types.UID]string) []admissionregistrationv1.NamedRuleWithOperations {
	names := map[string][]string{} // by resource
	for _, what := range uids {
		kind, name, _ := strings.Cut(what, "/")
		resource := map[string]string{"Namespace": "namespaces", "PersistentVolume": "persistentvolumes"}[kind]
		names[resource] = append(names[resource], name)
	}
	var rules []admissionregistrationv1.NamedRuleWithOperations
	for _, resource := range []string{"namespaces", "persistentvolumes"} {
		if len(names[resource]) == 0 {
			continue // a rule without names would match every one
		}
		sort.Strings(names[resource])
		rules = append(rules, admissionregistrationv1.NamedRuleWithOperations{
			ResourceNames: names[resource],
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{resource}},
			},
		})
	}
	return rules
}

// policyServed: the server offers admissionregistration.k8s.io/v1
// ValidatingAdmissionPolicies (Kubernetes 1.30 and later).
func policyServed(c *kube.Clients) (bool, error) {
	var list *metav1.APIResourceList
	err := kube.Retry(context.Background(), func() (err error) {
		list, err = c.Discovery.ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
		return err
	})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover admission policies: %w", err)
	}
	for _, r := range list.APIResources {
		if r.Name == "validatingadmissionpolicies" {
			return true, nil
		}
	}
	return false, nil
}

// waitEnforced waits until a dry-run delete of a guarded object is refused
// by the guard: policies take effect asynchronously. The probe is an object
// not already being deleted: the apiserver answers a delete of a
// terminating namespace without asking admission.
func (g *guard) waitEnforced(ctx context.Context) error {
	probe, err := g.probe(ctx)
	if err != nil {
		return err
	}
	if probe == nil {
		return nil // nothing guarded that a dry-run delete reaches admission with
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = probe.dryRunDelete(ctx)
		if apierrors.IsForbidden(last) && !strings.Contains(last.Error(), guardMessage) && probe.what != leaseProbe {
			// RBAC refused before admission was asked: a role of least
			// privilege (rbac.ForStage) may not delete users' namespaces.
			// The same policy guards this run's Lease, which it may.
			probe = &guardProbe{what: leaseProbe, dryRunDelete: func(ctx context.Context) error {
				return g.kc.CoordinationV1().Leases(lease.Namespace).Delete(ctx, lease.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
			}}
			last = probe.dryRunDelete(ctx)
		}
		return last != nil && strings.Contains(last.Error(), guardMessage), nil
	})
	if err != nil {
		return fmt.Errorf("the deletion guard was installed but is not enforced after 30s (a dry-run delete of %s answered %v): %w", probe.what, last, err)
	}
	return nil
}

type guardProbe struct {
	what         string
	dryRunDelete func(context.Context) error
}

// probe picks a guarded namespace, else volume, that exists with its
// guarded UID and is not being deleted: one paginated list of each kind
// (not a GET per guarded object: thousands in a large cluster).
func (g *guard) probe(ctx context.Context) (*guardProbe, error) {
	dry := metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}
	for _, kind := range []struct {
		prefix string
		list   func(context.Context, metav1.ListOptions) (runtime.Object, error)
		delete func(context.Context, string) error
	}{
		{"Namespace/",
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return g.kc.CoreV1().Namespaces().List(ctx, o)
			},
			func(ctx context.Context, name string) error { return g.kc.CoreV1().Namespaces().Delete(ctx, name, dry) }},
		{"PersistentVolume/",
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return g.kc.CoreV1().PersistentVolumes().List(ctx, o)
			},
			func(ctx context.Context, name string) error {
				return g.kc.CoreV1().PersistentVolumes().Delete(ctx, name, dry)
			}},
	} {
		var found *guardProbe
		errFound := errors.New("found")
		err := pager.New(kind.list).EachListItem(ctx, metav1.ListOptions{Limit: 500}, func(obj runtime.Object) error {
			m, ok := obj.(metav1.Object)
			if !ok {
				return nil
			}
			what, guarded := g.uids[m.GetUID()]
			if !guarded || !strings.HasPrefix(what, kind.prefix) || m.GetDeletionTimestamp() != nil || immortal[m.GetName()] && kind.prefix == "Namespace/" {
				return nil // immortal: the apiserver itself refuses deleting it, no probe
			}
			name := m.GetName()
			found = &guardProbe{what: what, dryRunDelete: func(ctx context.Context) error { return kind.delete(ctx, name) }}
			return errFound
		})
		if found != nil {
			return found, nil
		}
		if err != nil {
			return nil, fmt.Errorf("find a guarded object to check the deletion guard with: %w", err)
		}
	}
	return nil, nil
}

// immortal are the namespaces the apiserver never lets anyone delete.
var immortal = map[string]bool{"default": true, "kube-system": true, "kube-public": true}

// remove deletes what this apply created, each only if it is still that
// object (another apply may have replaced it).
func (g *guard) remove(ctx context.Context) {
	if g != nil && g.stopWatch != nil {
		g.stopWatch()
	}
	if g == nil || len(g.created) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ar := g.kc.AdmissionregistrationV1()
	del := map[string]func(metav1.DeleteOptions) error{
		"binding": func(o metav1.DeleteOptions) error {
			return ar.ValidatingAdmissionPolicyBindings().Delete(ctx, GuardName, o)
		},
		"policy": func(o metav1.DeleteOptions) error { return ar.ValidatingAdmissionPolicies().Delete(ctx, GuardName, o) },
	}
	for _, k := range []string{"binding", "policy"} {
		uid, ok := g.created[k]
		if !ok {
			continue
		}
		err := kube.Retry(ctx, func() error {
			err := del[k](metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return nil
			}
			return err
		})
		if err == nil {
			delete(g.created, k)
		}
	}
}

// tripwireOnly makes apply use the tripwire even where the server has
// admission policies (tests of the fallback).
var tripwireOnly bool

// startTripwire watches the guarded namespaces and volumes (metadata only)
// and calls halt the moment one gets a deletionTimestamp or disappears. An
// object already being deleted when apply starts does not trip it: the plan
// keeps what holds its data, and the final check counts it lost.
func (g *guard) startTripwire(ctx context.Context, c *kube.Clients, halt func(error)) error {
	var mu sync.Mutex
	dyingAtStart := map[types.UID]bool{}
	synced := false
	tripped := false
	check := func(obj any, gone bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj, gone = d.Obj, true
		}
		m, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			return
		}
		what, guarded := g.uids[m.UID]
		if !guarded || (!gone && m.DeletionTimestamp == nil) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !synced:
			dyingAtStart[m.UID] = true
		case dyingAtStart[m.UID] || tripped:
		default:
			tripped = true
			halt(&GuardTrippedError{Object: what, Deleted: gone, At: time.Now()})
		}
	}
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.stopWatch = cancel
	var syncs []cache.InformerSynced
	for _, kind := range []struct{ prefix, resource string }{{"Namespace/", "namespaces"}, {"PersistentVolume/", "persistentvolumes"}} {
		watched := false
		for _, what := range g.uids {
			watched = watched || strings.HasPrefix(what, kind.prefix)
		}
		if !watched {
			continue
		}
		inf := metadatainformer.NewFilteredMetadataInformer(c.Metadata, schema.GroupVersionResource{Version: "v1", Resource: kind.resource}, "", 0, cache.Indexers{}, nil).Informer()
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { check(obj, false) },
			UpdateFunc: func(_, obj any) { check(obj, false) },
			DeleteFunc: func(obj any) { check(obj, true) },
		}); err != nil {
			cancel()
			return fmt.Errorf("set the deletion tripwire: %w", err)
		}
		go inf.Run(watchCtx.Done())
		syncs = append(syncs, inf.HasSynced)
	}
	syncCtx, done := context.WithTimeout(watchCtx, time.Minute)
	defer done()
	if !cache.WaitForCacheSync(syncCtx.Done(), syncs...) {
		cancel()
		return fmt.Errorf("set the deletion tripwire: could not list the protected namespaces and volumes within a minute")
	}
	mu.Lock()
	synced = true
	mu.Unlock()
	g.mode = GuardTripwire
	return nil
}

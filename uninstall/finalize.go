package uninstall

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
)

// A namespace without the `kubernetes` finalizer (spec.finalizers) is
// removed by its delete, or by any write once it is Terminating, without
// its content: the objects stay in etcd and come back with the next
// namespace of that name. KubeSphere 4.1's post-delete hook leaves such
// namespaces. Apply never deletes or patches one of KubeSphere's as it is:
// it puts the finalizer back first (a repair that touches no data). A
// users' namespace already Terminating never gets it back (the namespace
// controller would delete what it holds), and is patched only where a
// metadata finalizer keeps it.

// UnfinalizedError is a write apply refused because it could have removed
// a users' namespace with its content left in etcd.
type UnfinalizedError struct{ Namespace string }

func (e *UnfinalizedError) Error() string {
	return fmt.Sprintf("namespace %s is Terminating without its %q finalizer: this write would remove it, and what it still holds would stay in etcd; putting the finalizer back would delete that. Left alone: copy out what you need, then delete it yourself", e.Namespace, corev1.FinalizerKubernetes)
}

func hasKubernetesFinalizer(ns *corev1.Namespace) bool {
	return slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
}

// finalize is the finalize step.
func (x *executor) finalize(s *api.Step) (outcome, error) {
	_, added, err := x.ensureFinalizer(s)
	switch {
	case err != nil:
		return outcome{}, err
	case !added:
		return skipped("it has the finalizer"), nil
	}
	return done(fmt.Sprintf("put back the %q finalizer", corev1.FinalizerKubernetes)), nil
}

// ensureFinalizer puts the finalizer back into the step's namespace if it
// lacks it, with the UID and resourceVersion read (a PUT to /finalize
// carries the whole object; the read one, so nothing else changes). It
// returns the namespace as it now is.
func (x *executor) ensureFinalizer(s *api.Step) (*corev1.Namespace, bool, error) {
	nsi := x.Clients.Kube.CoreV1().Namespaces()
	ns, err := nsi.Get(x.writeCtx, s.Target.Name, metav1.GetOptions{})
	if err != nil {
		return nil, false, err
	}
	if string(ns.UID) != s.Target.UID {
		return nil, false, journal.ErrRecreated
	}
	if hasKubernetesFinalizer(ns) {
		return ns, false, nil
	}
	if ns.DeletionTimestamp != nil && x.protects(s.Target.UID) {
		return nil, false, &UnfinalizedError{Namespace: ns.Name}
	}
	ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	out, err := nsi.Finalize(x.writeCtx, ns, metav1.UpdateOptions{DryRun: x.dryRun()})
	if err != nil {
		if apierrors.IsConflict(err) {
			return nil, false, fmt.Errorf("%w: %v", errStale, err)
		}
		return nil, false, err
	}
	x.written()
	return out, true, nil
}

// isNamespace: the step's target is a namespace.
func isNamespace(s *api.Step) bool { return s.Target.Kind == "Namespace" && s.Target.Group() == "" }

// protects reports whether the stage protects the object.
func (x *executor) protects(uid string) bool {
	for _, r := range x.Plan.Protected {
		if r.UID == uid {
			return true
		}
	}
	return false
}

// terminatingUnfinalized: the namespace is Terminating without the
// kubernetes finalizer. Either the namespace controller emptied it and
// removed the finalizer (it waits for metadata finalizers), or it was wiped
// (KubeSphere 4.1's hook) and deleted with its content: an update that
// leaves no metadata finalizer removes it at once.
func terminatingUnfinalized(ns *unstructured.Unstructured) bool {
	fins, _, _ := unstructured.NestedStringSlice(ns.Object, "spec", "finalizers")
	return ns.GetDeletionTimestamp() != nil && !slices.Contains(fins, string(corev1.FinalizerKubernetes))
}

package uninstall

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/pager"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/scan/footprint"
)

// PhaseBackoff spaces the checks of a phase's wait that polls (apply's
// objects of types it does not watch, and the benchmark floor's): 20 ms,
// then half again longer each time, then every 500 ms once there (its
// DelayFunc keeps the cap; ExponentialBackoff would stop at it).
func PhaseBackoff() wait.Backoff {
	return wait.Backoff{Duration: 20 * time.Millisecond, Factor: 1.5, Cap: 500 * time.Millisecond, Steps: math.MaxInt32}
}

// listAtLeast is how many of a phase's delete targets of one type make a
// list (or a watch) of the type cheaper than a GET of each.
const listAtLeast = 10

// recheck is how often a wait with nothing left to poll looks again without
// an event: for the finalizer timeout, stuck namespaces, and a watch that
// missed something.
const recheck = time.Second

// stuckGrace is how long a namespace may report that its deletion cannot
// proceed before apply says so: the namespace controller retries, and a
// discovery hiccup clears by itself; an unavailable APIService does not.
const stuckGrace = 10 * time.Second

var namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// waitPhase waits until the phase's delete targets are gone. Footprint
// objects still present after FinalizerTimeout lose their finalizers (their
// controllers are stopped); a namespace still present loses the finalizers of
// what it holds. Protected objects are never delete targets, so never touched
// here.
//
// Types with many targets, and namespaces, are watched: each is listed once
// and the wait ends at the watch event of its last deletion, so neither a
// polling interval nor a re-list of thousands of objects is added to each
// of the ten phases. Everything else is polled on PhaseBackoff. (No wait or
// watchtools helper waits on several informers and a poll at once.)
func (x *executor) waitPhase(ctx context.Context, ph api.Phase) (string, error) {
	var pending []*api.Step
	for i := range x.Plan.Steps {
		s := &x.Plan.Steps[i]
		if s.Phase == ph && (s.Action == api.ActionDelete || s.Action == api.ActionScale) && !x.targets[s.ID].gone {
			pending = append(pending, s)
		}
	}
	start := time.Now()
	// The wait ends with the caller's context, with the lease, and at the
	// phase timeout.
	wctx, cancel := context.WithTimeout(ctx, x.PhaseTimeout)
	defer cancel()
	defer context.AfterFunc(x.writeCtx, cancel)()

	w := x.watch(wctx, pending)
	delay := PhaseBackoff().DelayFunc()
	nextPoll, stripped := start, false
	var lastCheck time.Time
	stuckSince := map[string]time.Time{}
	unblocked := map[string]bool{}
	var failed error
	for {
		now := time.Now()
		if now.Sub(lastCheck) >= recheck {
			lastCheck = now
			if ph == api.PhaseNamespaces {
				if failed = x.stuckNamespaces(wctx, pending, stuckSince, w.store(namespacesGVR)); failed != nil {
					break
				}
			}
			x.unblock(wctx, ph, pending, w, unblocked)
		}
		poll := !now.Before(nextPoll)
		if pending, failed = x.stillPresent(wctx, pending, w, poll); failed != nil || len(pending) == 0 {
			break
		}
		if !stripped && time.Since(start) > x.FinalizerTimeout {
			for _, s := range pending {
				if s.Action == api.ActionDelete {
					x.stripFinalizers(s)
				}
			}
			stripped = true
		}
		if poll {
			nextPoll = time.Now().Add(delay())
		}
		next := nextPoll
		if !w.pollsAny(x, pending) {
			next = time.Now().Add(recheck)
		}
		t := time.NewTimer(time.Until(next))
		select {
		case <-w.nudge:
		case <-t.C:
		case <-wctx.Done():
		}
		t.Stop()
		if wctx.Err() != nil {
			break
		}
	}
	switch {
	case failed != nil:
		return "", failed
	case len(pending) == 0:
		msg := fmt.Sprintf("all gone after %s", time.Since(start).Round(100*time.Millisecond))
		if stripped {
			msg += " (finalizers removed after the finalizer timeout)"
		}
		return msg, nil
	case x.lease.Stopped() != nil:
		return "", x.lease.Stopped()
	case ctx.Err() != nil:
		return "", api.ErrInterrupted
	}
	var names []string
	for i, s := range pending {
		if i == 10 {
			names = append(names, fmt.Sprintf("and %d more", len(pending)-10))
			break
		}
		names = append(names, s.Target.String())
	}
	return "", &PhaseTimeoutError{Phase: ph, After: x.PhaseTimeout, Pending: names}
}

// stillPresent returns the pending steps whose targets are still there.
// Targets of a watched type are read from the watch's cache; the others
// only when poll is set (else they stay pending unread).
func (x *executor) stillPresent(ctx context.Context, pending []*api.Step, w *watches, poll bool) ([]*api.Step, error) {
	var polled []*api.Step
	var left []*api.Step
	for _, s := range pending {
		if gone, known := w.gone(x, s); known {
			if !gone {
				left = append(left, s)
			}
			continue
		}
		if !poll {
			left = append(left, s)
			continue
		}
		polled = append(polled, s)
	}
	present := x.presentByList(ctx, polled)
	for _, s := range polled {
		if p, listed := present[x.targets[s.ID].gvr]; listed && s.Action == api.ActionDelete {
			if p[s.Target.UID] {
				left = append(left, s)
			}
			continue
		}
		cur, err := x.ri(s).Get(ctx, s.Target.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && string(cur.GetUID()) != s.Target.UID) {
			continue
		}
		if err == nil && s.Action == api.ActionScale {
			if n, perr := x.podsOf(ctx, cur); perr == nil && n == 0 {
				continue // scaled down, and its pods (terminating ones too) are gone
			}
		}
		if err != nil && !kube.Retriable(err) && ctx.Err() == nil {
			return nil, fmt.Errorf("wait for %s: %w", s.Target, err)
		}
		left = append(left, s)
	}
	return left, nil
}

// watches are a phase wait's informers, one per watched type; nudge
// receives a value after a deletion, or when a watch fails.
type watches struct {
	nudge chan struct{}
	types map[schema.GroupVersionResource]*typeWatch
}

type typeWatch struct {
	inf cache.SharedIndexInformer
	// failed: a list or watch of the type failed (forbidden, a type being
	// removed, a dropped connection). Its targets are polled from then on:
	// the cache may lag, and a wait must not hang on it.
	failed atomic.Bool
}

// watch starts the phase's informers: namespaces (whole objects, for the
// conditions that say a deletion is stuck), and metadata of every type with
// at least listAtLeast delete targets. It returns once each has listed or
// failed, or after a few seconds: the types not ready by then are polled.
func (x *executor) watch(ctx context.Context, pending []*api.Step) *watches {
	w := &watches{nudge: make(chan struct{}, 1), types: map[schema.GroupVersionResource]*typeWatch{}}
	count := x.deletesByType(pending)
	nudge := func() {
		select {
		case w.nudge <- struct{}{}:
		default:
		}
	}
	for gvr, n := range count {
		if n < listAtLeast && gvr != namespacesGVR {
			continue
		}
		var inf cache.SharedIndexInformer
		if gvr == namespacesGVR {
			inf = coreinformers.NewNamespaceInformer(x.Clients.Kube, 0, cache.Indexers{})
		} else {
			inf = metadatainformer.NewFilteredMetadataInformer(x.Clients.Metadata, gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
		}
		tw := &typeWatch{inf: inf}
		// Replaces the default handler, which would log to stderr.
		if err := inf.SetWatchErrorHandlerWithContext(func(context.Context, *cache.Reflector, error) {
			tw.failed.Store(true)
			nudge()
		}); err != nil {
			continue
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(any) { nudge() }}); err != nil {
			continue
		}
		go inf.RunWithContext(ctx)
		w.types[gvr] = tw
	}
	ready := func(context.Context) (bool, error) {
		for _, tw := range w.types {
			if !tw.inf.HasSynced() && !tw.failed.Load() {
				return false, nil
			}
		}
		return true, nil
	}
	_ = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, ready)
	return w
}

// usable is the type's watch when its cache can be trusted.
func (w *watches) usable(gvr schema.GroupVersionResource) *typeWatch {
	tw := w.types[gvr]
	if tw == nil || tw.failed.Load() || !tw.inf.HasSynced() {
		return nil
	}
	return tw
}

// store is the watched type's cache, or nil.
func (w *watches) store(gvr schema.GroupVersionResource) cache.Store {
	if tw := w.usable(gvr); tw != nil {
		return tw.inf.GetStore()
	}
	return nil
}

// gone says whether a delete step's target is gone, if its type's watch can
// tell (known). An object of the same name with another UID is a new one.
func (w *watches) gone(x *executor, s *api.Step) (gone, known bool) {
	if s.Action != api.ActionDelete {
		return false, false
	}
	m, exists, known := w.lookup(x, s)
	if !known {
		return false, false
	}
	return !exists || string(m.GetUID()) != s.Target.UID, true
}

// object is a delete step's target as its type's watch last saw it, or nil
// (not watched, or not there).
func (w *watches) object(x *executor, s *api.Step) metav1.Object {
	m, exists, known := w.lookup(x, s)
	if !known || !exists {
		return nil
	}
	return m
}

// lookup reads a step's target from its type's watch cache; known is false
// when the watch cannot tell.
func (w *watches) lookup(x *executor, s *api.Step) (m metav1.Object, exists, known bool) {
	tw := w.usable(x.targets[s.ID].gvr)
	if tw == nil {
		return nil, false, false
	}
	key := s.Target.Name
	if s.Target.Namespace != "" {
		key = s.Target.Namespace + "/" + s.Target.Name
	}
	o, exists, err := tw.inf.GetStore().GetByKey(key)
	if err != nil {
		return nil, false, false
	}
	if !exists {
		return nil, false, true
	}
	if m, err = meta.Accessor(o); err != nil {
		return nil, false, false
	}
	return m, true, true
}

// pollsAny: some pending target is not covered by a usable watch.
func (w *watches) pollsAny(x *executor, pending []*api.Step) bool {
	for _, s := range pending {
		if s.Action != api.ActionDelete || w.usable(x.targets[s.ID].gvr) == nil {
			return true
		}
	}
	return false
}

// stuckNamespaces reads the conditions of the namespaces being deleted
// (from the watch's cache, else a list) and fails as soon as one has said
// for stuckGrace that its deletion cannot finish (discovery or content
// deletion failing), naming the cause, rather than waiting out the phase
// timeout.
func (x *executor) stuckNamespaces(ctx context.Context, pending []*api.Step, since map[string]time.Time, cached cache.Store) error {
	want := map[string]bool{}
	for _, s := range pending {
		if s.Action == api.ActionDelete && s.Target.Kind == "Namespace" {
			want[s.Target.Name] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	var stuck []string
	each := func(o runtime.Object) error {
		ns, ok := o.(*corev1.Namespace)
		if !ok || !want[ns.Name] {
			return nil
		}
		cause := blockedBy(ns)
		if cause == "" {
			delete(since, ns.Name)
			return nil
		}
		if _, ok := since[ns.Name]; !ok {
			since[ns.Name] = time.Now()
		}
		if time.Since(since[ns.Name]) >= stuckGrace {
			stuck = append(stuck, fmt.Sprintf("namespace %s: %s", ns.Name, cause))
		}
		return nil
	}
	if cached != nil {
		for _, o := range cached.List() {
			if ro, ok := o.(runtime.Object); ok {
				_ = each(ro)
			}
		}
	} else if err := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return x.Clients.Kube.CoreV1().Namespaces().List(ctx, opts)
	}).EachListItem(ctx, metav1.ListOptions{}, each); err != nil {
		return nil // the presence check reads again; a failed read is not a verdict
	}
	if len(stuck) == 0 {
		return nil
	}
	return &StuckError{Phase: api.PhaseNamespaces, Causes: stuck}
}

// unblock strips, as soon as the cluster shows them, the finalizers of
// KubeSphere and KubeFed that hold up a deletion: on a target being deleted
// that has no other, or, for a namespace, on the content the namespace
// controller waits for (its NamespaceFinalizersRemaining condition). Their
// controllers are stopped (quiesce) or uninstalled already, so nobody else
// would ever remove them: waiting out FinalizerTimeout would only delay.
// Other finalizers (pvc-protection, foregroundDeletion, a user's) are left
// to their controllers. Each target is unblocked once, and said so.
func (x *executor) unblock(ctx context.Context, ph api.Phase, pending []*api.Step, w *watches, done map[string]bool) {
	nss := w.store(namespacesGVR)
	for _, s := range pending {
		if s.Action != api.ActionDelete || done[s.ID] {
			continue
		}
		var why string
		if isNamespace(s) {
			if nss == nil {
				continue
			}
			o, ok, _ := nss.GetByKey(s.Target.Name)
			ns, _ := o.(*corev1.Namespace)
			if !ok || ns == nil || string(ns.UID) != s.Target.UID {
				continue
			}
			if fins := remainingFinalizers(ns); len(fins) > 0 && allFootprint(fins) {
				why = fmt.Sprintf("namespace %s waits for finalizers %s on what it holds, whose controllers are stopped: removing them now", s.Target.Name, strings.Join(fins, ", "))
			}
		} else {
			m := w.object(x, s)
			if m == nil && w.usable(x.targets[s.ID].gvr) == nil {
				cur, err := x.ri(s).Get(ctx, s.Target.Name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				m = cur
			}
			if m == nil || string(m.GetUID()) != s.Target.UID || m.GetDeletionTimestamp() == nil {
				continue
			}
			if fins := m.GetFinalizers(); len(fins) > 0 && allFootprint(fins) {
				why = fmt.Sprintf("%s waits for finalizers %s, whose controllers are stopped: removing them now", s.Target, strings.Join(fins, ", "))
			}
		}
		if why == "" {
			continue
		}
		done[s.ID] = true
		if x.Progress != nil {
			x.Progress(Event{Phase: ph, Step: s, Status: StatusNote, Detail: why})
		}
		x.stripFinalizers(s)
	}
}

func allFootprint(fins []string) bool {
	for _, f := range fins {
		if !footprint.IsFootprintFinalizer(f) {
			return false
		}
	}
	return true
}

// remainingFinalizers reads the finalizers the namespace controller says
// the namespace's content still holds ("Some content in the namespace has
// finalizers remaining: a in 1 resource instances, b in 2 resource
// instances").
func remainingFinalizers(ns *corev1.Namespace) []string {
	for _, c := range ns.Status.Conditions {
		if c.Type != corev1.NamespaceFinalizersRemaining || c.Status != corev1.ConditionTrue {
			continue
		}
		_, list, ok := strings.Cut(c.Message, ": ")
		if !ok {
			return nil
		}
		var out []string
		for _, part := range strings.Split(list, ", ") {
			if f, _, ok := strings.Cut(part, " in "); ok && f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	return nil
}

// blockedBy is the first condition by which the namespace controller says a
// deletion cannot finish.
func blockedBy(ns *corev1.Namespace) string {
	for _, c := range ns.Status.Conditions {
		switch c.Type {
		case corev1.NamespaceDeletionDiscoveryFailure, corev1.NamespaceDeletionGVParsingFailure, corev1.NamespaceDeletionContentFailure:
			if c.Status == corev1.ConditionTrue {
				return fmt.Sprintf("%s: %s", c.Type, c.Message)
			}
		}
	}
	return ""
}

// StuckError: a phase's deletions cannot finish, for causes the cluster
// states.
type StuckError struct {
	Phase  api.Phase
	Causes []string
}

func (e *StuckError) Error() string {
	return fmt.Sprintf("phase %s cannot finish: %s; remove the cause (an unavailable APIService: bring its backend back or delete it), then run apply again: it resumes", e.Phase, strings.Join(e.Causes, "; "))
}

// PhaseTimeoutError: a phase's deletions were not finished in time.
type PhaseTimeoutError struct {
	Phase   api.Phase
	After   time.Duration
	Pending []string
}

func (e *PhaseTimeoutError) Error() string {
	return fmt.Sprintf("phase %s: still present after %s: %s; see `ks-clean scan` for why (finalizers, stuck content), then run apply again", e.Phase, e.After, strings.Join(e.Pending, ", "))
}

// presentByList lists, metadata only and paginated, each type with at least
// listAtLeast delete targets pending, and returns the UIDs present per type.
// A type whose list fails is left out: its targets are read one by one.
func (x *executor) presentByList(ctx context.Context, pending []*api.Step) map[schema.GroupVersionResource]map[string]bool {
	count := x.deletesByType(pending)
	out := map[schema.GroupVersionResource]map[string]bool{}
	for gvr, n := range count {
		if n < listAtLeast {
			continue
		}
		uids := map[string]bool{}
		ri := x.Clients.Metadata.Resource(gvr)
		p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return ri.List(ctx, o) })
		err := p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
			if m, err := meta.Accessor(obj); err == nil {
				uids[string(m.GetUID())] = true
			}
			return nil
		})
		if err == nil {
			out[gvr] = uids
		}
	}
	return out
}

// deletesByType counts the delete steps among steps, by their targets' type.
func (x *executor) deletesByType(steps []*api.Step) map[schema.GroupVersionResource]int {
	count := map[schema.GroupVersionResource]int{}
	for _, s := range steps {
		if s.Action == api.ActionDelete {
			count[x.targets[s.ID].gvr]++
		}
	}
	return count
}

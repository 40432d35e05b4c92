package tenancy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/lease"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/hazard"
)

// KindImportResult is the kind of an import's JSON result.
const KindImportResult = "TenancyImportResult"

// Statuses of an imported object or namespace binding.
const (
	StatusCreated = "created"
	// StatusWouldCreate: a dry run's create, accepted by the server.
	StatusWouldCreate = "would-create"
	// StatusPresent: there already, as in the file (a built-in role the
	// new install made, or an earlier import).
	StatusPresent = "present"
	// StatusConflict: there already and different: left as it is.
	StatusConflict = "conflict"
	// StatusMissing: a namespace of the map, or of a namespaced object, that
	// is not in the cluster.
	StatusMissing = "missing"
)

var (
	// ErrUnserved: the cluster does not serve a type of the file (KubeSphere
	// not installed, or another major version).
	ErrUnserved = errors.New("the cluster does not serve the tenancy file's types")
	// ErrUnsafe: the cluster has a hazard that re-binding namespaces to
	// workspaces would turn into data loss.
	ErrUnsafe = errors.New("importing tenancy into this cluster is not safe")
)

// ImportOptions tune an import.
type ImportOptions struct {
	// DryRun sends every create and label with dryRun=All: nothing stored.
	DryRun bool
	// AllowPrivileged creates what grants more than tenancy (see
	// privilege.go); without it such a file is refused before any write.
	AllowPrivileged bool
	// LeaseDuration, LeaseCheck: the cluster's Lease, as apply's (default
	// 60s and 2s).
	LeaseDuration, LeaseCheck time.Duration
	// Lease, when the caller holds the cluster's Lease for a longer run
	// (reinstall), is used instead of taking one.
	Lease *lease.Lease
}

// Import creates a tenancy file's objects that are missing, and puts
// namespaces back in their workspaces. It never changes an object that
// exists: a difference is a conflict, reported.
type Import struct {
	Clients *kube.Clients
	Tenancy *api.Tenancy
	Options ImportOptions
}

// ImportResult says what the import did to each object and namespace.
type ImportResult struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	DryRun     bool              `json:"dryRun"`
	Objects    []ObjectResult    `json:"objects"`
	Namespaces []NamespaceResult `json:"namespaces"`
	// Counts are the objects by status; NamespaceCounts the namespace
	// bindings ("created": put back in its workspace).
	Counts          map[string]int `json:"counts"`
	NamespaceCounts map[string]int `json:"namespaceCounts"`
	// Note says what KubeSphere does next with what was imported.
	Note string `json:"note,omitempty"`
}

// ObjectResult is one object of the file.
type ObjectResult struct {
	Object api.ObjectRef `json:"object"`
	Status string        `json:"status"`
	Detail string        `json:"detail,omitempty"`
}

// NamespaceResult is one namespace → workspace binding of the file.
type NamespaceResult struct {
	Namespace string `json:"namespace"`
	Workspace string `json:"workspace"`
	Status    string `json:"status"`
	Detail    string `json:"detail,omitempty"`
}

// Run imports. Every check comes before the first write: a file that
// claims what it does not carry, grants privilege (unless allowed), has
// types the cluster does not serve, or a cluster with a hazard or another
// ks-clean holding its Lease, changes nothing.
func (im *Import) Run(ctx context.Context) (*ImportResult, error) {
	t := im.Tenancy
	res := &ImportResult{APIVersion: api.APIVersion, Kind: KindImportResult, DryRun: im.Options.DryRun,
		Objects: []ObjectResult{}, Namespaces: []NamespaceResult{}, Counts: map[string]int{}, NamespaceCounts: map[string]int{}}
	if err := checkClaims(t); err != nil {
		return res, err
	}
	r := kube.NewResolver(im.Clients)
	var unserved []string
	seen := map[string]bool{}
	for _, o := range t.Objects {
		key := o.GetAPIVersion() + " " + o.GetKind()
		if _, _, ok := r.Resource(o.GetAPIVersion(), o.GetKind()); !ok && !seen[key] {
			unserved = append(unserved, key)
		}
		seen[key] = true
	}
	if len(unserved) > 0 {
		return res, api.Refuse(api.FixNone, "%w: %s (the file is KubeSphere %s tenancy; install KubeSphere %s first, or edit the file to this cluster's versions: see docs/runbook-keep-tenancy.md)",
			ErrUnserved, strings.Join(unserved, ", "), t.KubeSphere, t.KubeSphere)
	}
	present, err := im.checkPrivilege(ctx, r)
	if err != nil {
		return res, err
	}
	if err := safe(ctx, im.Clients); err != nil {
		return res, err
	}
	// One ks-clean writing to a cluster at a time; every write runs under
	// the Lease's context, cancelled the moment it is lost. A dry run
	// stores nothing and needs none.
	lost := func() error { return nil }
	if !im.Options.DryRun {
		lock := im.Options.Lease
		if lock == nil {
			var err error
			if lock, err = lease.Acquire(ctx, im.Clients.Kube, lease.Options{Duration: im.Options.LeaseDuration, Check: im.Options.LeaseCheck}); err != nil {
				return res, err
			}
			defer lock.Release()
		}
		wctx, cancel := context.WithCancel(lock.Context())
		defer cancel()
		defer context.AfterFunc(ctx, cancel)() // and the caller's cancellation (Ctrl-C)
		ctx, lost = wctx, lock.Lost
	}

	opts := metav1.CreateOptions{}
	if im.Options.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, o := range t.Objects {
		or := ObjectResult{Object: api.ObjectRef{APIVersion: o.GetAPIVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName()}}
		if err := lost(); err != nil {
			return res, err
		}
		var err error
		or.Status, or.Detail, err = im.create(ctx, r, o, opts, present[o])
		if err != nil {
			if lerr := lost(); lerr != nil {
				err = lerr
			}
			return res, fmt.Errorf("import %s %s: %w (what was imported before it stays; run the import again once fixed: it skips what is there)", o.GetKind(), nsName(o.GetNamespace(), o.GetName()), err)
		}
		res.Objects = append(res.Objects, or)
		res.Counts[or.Status]++
	}

	names := make([]string, 0, len(t.Namespaces))
	for ns := range t.Namespaces {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		if err := lost(); err != nil {
			return res, err
		}
		nr, err := im.bind(ctx, ns, t.Namespaces[ns])
		if err != nil {
			if lerr := lost(); lerr != nil {
				err = lerr
			}
			return res, err
		}
		res.Namespaces = append(res.Namespaces, nr)
		res.NamespaceCounts[nr.Status]++
	}
	if t.KubeSphere == "3" && res.NamespaceCounts[StatusCreated]+res.NamespaceCounts[StatusWouldCreate] > 0 {
		res.Note = "KubeSphere 3.x's controllers now give each namespace put back in a workspace an ownerReference to its Workspace again: the normal state of a healthy 3.x install. It is safe because the alias checks passed first: no two cluster records point at one API server."
	}
	return res, nil
}

// safe refuses an import into a cluster with the incident's precondition
// (two KubeFed or KubeSphere cluster records for one API server) or any
// other critical hazard: on 3.x the namespaces re-bound here become owned by
// Workspaces that such a cluster would delete and re-create.
func safe(ctx context.Context, c *kube.Clients) error {
	rep, err := scan.Cluster(ctx, scan.Target{Clients: c}, scan.Options{})
	if err != nil {
		return fmt.Errorf("scan before the import: %w", err)
	}
	var problems []string
	for _, f := range rep.Findings {
		if f.Severity == api.Critical || f.ID == hazard.ClusterAlias {
			problems = append(problems, f.ID+": "+f.Message)
		}
	}
	if len(problems) > 0 {
		return api.Refuse(api.FixNone, "%w: %s; nothing was imported. Fix these first ('ks-clean scan' names them), then import again", ErrUnsafe, strings.Join(problems, "; "))
	}
	return nil
}

// create creates o unless it is there. privileged (why o would be
// privilege) is set for an object that was there at the check and was
// therefore let through: it is only compared, never created.
func (im *Import) create(ctx context.Context, r *kube.Resolver, o *unstructured.Unstructured, opts metav1.CreateOptions, privileged string) (status, detail string, err error) {
	ri, err := r.Client(o.GetAPIVersion(), o.GetKind(), o.GetNamespace())
	if err != nil {
		return "", "", err
	}
	obj := kube.Portable(o)
	obj.SetFinalizers(nil)
	if dropped := r.RemapOwners(ctx, obj); len(dropped) > 0 {
		detail = "owner references dropped (owner not there): " + strings.Join(dropped, ", ")
	}
	if privileged != "" {
		err = apierrors.NewAlreadyExists(schema.GroupResource{}, o.GetName()) // go straight to the comparison
	} else {
		err = kube.Retry(ctx, func() error {
			_, err := ri.Create(ctx, obj, opts)
			return err
		})
	}
	switch {
	case err == nil && im.Options.DryRun:
		return StatusWouldCreate, detail, nil
	case err == nil:
		return StatusCreated, detail, nil
	case apierrors.IsNotFound(err) && o.GetNamespace() != "":
		// A namespace of the old install the new one has not made (a
		// component not installed again): nothing to bind in it.
		return StatusMissing, fmt.Sprintf("namespace %s is not there now: not created", o.GetNamespace()), nil
	case !apierrors.IsAlreadyExists(err):
		return "", "", err
	}
	var cur *unstructured.Unstructured
	err = kube.Retry(ctx, func() (err error) { cur, err = ri.Get(ctx, o.GetName(), metav1.GetOptions{}); return err })
	if apierrors.IsNotFound(err) && privileged != "" {
		return StatusConflict, fmt.Sprintf("it %s and was there at the check, so it was let through; it is gone now and was not created (import with --allow-privileged to create it)", privileged), nil
	}
	if err != nil {
		return "", "", err
	}
	cmp := cur.DeepCopy()
	cmp.SetFinalizers(nil)
	if kube.SameContent(cmp, obj) {
		return StatusPresent, "", nil
	}
	return StatusConflict, "there already, and different from the file: left as it is", nil
}

// bind puts a namespace back in its workspace by label; KubeSphere's
// controllers do the rest.
func (im *Import) bind(ctx context.Context, ns, ws string) (NamespaceResult, error) {
	nr := NamespaceResult{Namespace: ns, Workspace: ws}
	cur, err := im.Clients.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		nr.Status, nr.Detail = StatusMissing, "no such namespace now: nothing to bind"
		return nr, nil
	case err != nil:
		return nr, fmt.Errorf("read namespace %s: %w", ns, err)
	case cur.DeletionTimestamp != nil:
		nr.Status, nr.Detail = StatusMissing, "being deleted: not bound"
		return nr, nil
	}
	switch got := cur.Labels[footprint.LabelWorkspace]; got {
	case ws:
		nr.Status = StatusPresent
		return nr, nil
	case "":
	default:
		nr.Status, nr.Detail = StatusConflict, fmt.Sprintf("in workspace %s now: left there", got)
		return nr, nil
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, footprint.LabelWorkspace, ws)
	opts := metav1.PatchOptions{}
	if im.Options.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	err = kube.Retry(ctx, func() error {
		_, err := im.Clients.Kube.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), opts)
		return err
	})
	if err != nil {
		return nr, fmt.Errorf("label namespace %s with %s=%s: %w", ns, footprint.LabelWorkspace, ws, err)
	}
	nr.Status = StatusCreated
	if im.Options.DryRun {
		nr.Status = StatusWouldCreate
	}
	return nr, nil
}

func nsName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

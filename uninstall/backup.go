package uninstall

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"golang.org/x/sync/errgroup"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
	"github.com/ks-clean/ks-clean/internal/kube"
)

// backup saves, before any write, every object a step changes or deletes and
// everything inside the namespaces the plan deletes. Lists, grouped by type,
// not one GET per object. Secrets are saved whole (files 0600 in a 0700
// directory) but never printed. It returns, by UID, what it read of the
// objects patch steps change: their first patch starts from it instead of a
// GET (its test operations still pin every value it removes).
func (a *stage) backup(ctx context.Context, targets map[string]*resolved) (int, map[string]*unstructured.Unstructured, error) {
	// Secrets go in there: nothing in it may be a link, a special file or
	// open to others (a planted 0666 file would be written into as is).
	if err := api.CheckPrivateDir(a.BackupDir); err != nil {
		return 0, nil, err
	}
	root := a.BackupDir
	if a.DryRun {
		// A dry run's backup shows what a real run would save; a real run
		// never reuses it: the cluster may change before that run.
		root = filepath.Join(a.BackupDir, "dry-run")
		if err := os.RemoveAll(root); err != nil {
			return 0, nil, api.Refuse(api.FixBackupDir, "replace the dry run's backup %s: %w", root, err)
		}
	}
	index := filepath.Join(root, api.BackupIndexFile)
	if _, err := os.Lstat(index); err == nil && !a.DryRun {
		// Taken by an earlier, interrupted real run of this stage: it
		// holds the state before any write, which a new backup no longer
		// could. Anything else in its place would have apply go on
		// without a backup: refused.
		n, err := a.reusableBackup(root)
		if err != nil {
			return 0, nil, notOurBackup(index, root, err)
		}
		return n, nil, nil
	}
	dir := filepath.Join(root, api.BackupObjectsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, api.Refuse(api.FixBackupDir, "backup directory %s: %w", root, err)
	}
	sc, err := a.backupScope(ctx, targets)
	if err != nil {
		return 0, nil, err
	}
	sv := &saver{scope: sc, c: a.Clients, w: &objectWriter{dir: dir, made: map[string]bool{}}, seen: map[string]bool{}, known: map[string]*unstructured.Unstructured{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.Concurrency)
	for _, rd := range sc.reads {
		g.Go(func() error { return sv.read(gctx, rd) })
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	if err := a.sealBackup(root, sv.entries); err != nil {
		return 0, nil, err
	}
	return len(sv.entries), sv.known, nil
}

// backupRead is one list the backup makes: a type in one namespace, or in
// all ("").
type backupRead struct {
	gvr       schema.GroupVersionResource
	namespace string
}

// scope is what the backup saves, and the lists that read it.
type scope struct {
	reads []backupRead
	// want: by type, the UIDs of the steps' targets.
	want map[schema.GroupVersionResource]map[string]bool
	// namespacesOf: by namespaced type, the namespaces where it has
	// something to save (a forbidden cluster-wide list is read there).
	namespacesOf map[schema.GroupVersionResource]map[string]bool
	// deletedNS: everything in them is saved; patched: the UIDs of patch
	// targets, whose content the first patch starts from.
	deletedNS, patched map[string]bool
}

func (a *stage) backupScope(ctx context.Context, targets map[string]*resolved) (*scope, error) {
	sc := &scope{want: map[schema.GroupVersionResource]map[string]bool{}, namespacesOf: map[schema.GroupVersionResource]map[string]bool{}, deletedNS: map[string]bool{}, patched: map[string]bool{}}
	add := func(m map[schema.GroupVersionResource]map[string]bool, gvr schema.GroupVersionResource, key string) {
		if m[gvr] == nil {
			m[gvr] = map[string]bool{}
		}
		if key != "" {
			m[gvr][key] = true
		}
	}
	for _, s := range a.Plan.Steps {
		if s.Action == api.ActionPatch {
			sc.patched[s.Target.UID] = true
		}
		r := targets[s.ID]
		if r == nil || r.gvr.Resource == "" || s.Action == api.ActionVerify {
			continue
		}
		add(sc.want, r.gvr, s.Target.UID)
		if r.namespaced {
			add(sc.namespacesOf, r.gvr, s.Target.Namespace)
		}
		if s.Action == api.ActionDelete && s.Target.Kind == "Namespace" {
			sc.deletedNS[s.Target.Name] = true
		}
	}
	namespaced, err := a.namespacedResources(ctx)
	if err != nil {
		return nil, err
	}
	for gvr := range sc.want {
		sc.reads = append(sc.reads, backupRead{gvr: gvr})
	}
	// What is in the deleted namespaces: a few namespaces are read one by
	// one (a cluster-wide list of every type would read every user's
	// objects too: 25,000 of them at 5,000 namespaces); many, cluster-wide.
	for _, gvr := range namespaced {
		for ns := range sc.deletedNS {
			add(sc.namespacesOf, gvr, ns)
		}
		if sc.want[gvr] != nil {
			continue // listed cluster-wide already
		}
		add(sc.want, gvr, "")
		if len(sc.deletedNS) > perNamespaceReads {
			sc.reads = append(sc.reads, backupRead{gvr: gvr})
			continue
		}
		for ns := range sc.deletedNS {
			sc.reads = append(sc.reads, backupRead{gvr: gvr, namespace: ns})
		}
	}
	return sc, nil
}

// saver writes what the backup's lists return, each object once.
type saver struct {
	*scope
	c *kube.Clients
	w *objectWriter

	mu      sync.Mutex
	entries []api.BackupEntry
	seen    map[string]bool
	known   map[string]*unstructured.Unstructured
}

func (sv *saver) read(ctx context.Context, rd backupRead) error {
	uids := sv.want[rd.gvr]
	ri := sv.c.Dynamic.Resource(rd.gvr).Namespace(rd.namespace)
	p := kube.Pager(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return ri.List(ctx, o) })
	err := p.EachListItem(ctx, metav1.ListOptions{}, func(item runtime.Object) error {
		u := item.(*unstructured.Unstructured)
		if uid := string(u.GetUID()); uids[uid] || sv.deletedNS[u.GetNamespace()] {
			return sv.save(u)
		}
		return nil
	})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err):
		return nil
	case apierrors.IsForbidden(err) && rd.namespace == "" && len(sv.namespacesOf[rd.gvr]) > 0:
		// A role of least privilege (rbac.ForStage) grants reads in the
		// namespaces the plan touches only: read there.
		for ns := range sv.namespacesOf[rd.gvr] {
			if err := sv.read(ctx, backupRead{gvr: rd.gvr, namespace: ns}); err != nil {
				return err
			}
		}
		return nil
	case err != nil:
		return fmt.Errorf("back up %s: %w", rd.gvr.GroupResource(), err)
	}
	return nil
}

func (sv *saver) save(u *unstructured.Unstructured) error {
	uid := string(u.GetUID())
	sv.mu.Lock()
	dup := sv.seen[uid]
	sv.seen[uid] = true
	sv.mu.Unlock()
	if dup {
		return nil
	}
	e, err := sv.w.write(u)
	if err != nil {
		return err
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.entries = append(sv.entries, e)
	if sv.patched[uid] {
		sv.known[uid] = u
	}
	return nil
}

// sealBackup writes the stage beside the backup, so that restore knows what
// apply was to do without the plan file, then the index, last, which seals
// both with checksums.
func (a *stage) sealBackup(root string, entries []api.BackupEntry) error {
	sb, err := a.stageJSON()
	if err != nil {
		return err
	}
	if err := api.WritePrivateFile(filepath.Join(root, api.BackupStageFile), sb); err != nil {
		return fmt.Errorf("write backup: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].File < entries[j].File })
	x := &api.BackupIndex{Plan: a.journalKey(), Cluster: a.Plan.Cluster.UID, TakenAt: time.Now().UTC(), StageSHA256: api.FileSHA256(sb), Objects: entries}
	return api.WriteBackupIndex(root, x)
}

func (a *stage) stageJSON() ([]byte, error) {
	return json.MarshalIndent(a.Plan, "", " ")
}

// reusableBackup checks that the backup in root is the one an earlier real
// run of this very stage took: complete and as written (api.ReadBackup),
// of this plan's stage and cluster, and taken after this stage's journal
// was started (apply starts the journal before it backs up; openJournal
// checked the same before the run's first write). It returns how many
// objects it holds.
func (a *stage) reusableBackup(root string) (int, error) {
	x, _, err := api.ReadBackup(root)
	if err != nil {
		return 0, err
	}
	sb, err := a.stageJSON()
	if err != nil {
		return 0, err
	}
	switch {
	case x.Plan != a.journalKey():
		return 0, fmt.Errorf("it belongs to plan %s, not %s", x.Plan, a.journalKey())
	case x.Cluster != a.Plan.Cluster.UID:
		return 0, fmt.Errorf("it was taken on cluster %s, not %s", x.Cluster, a.Plan.Cluster.UID)
	case x.StageSHA256 != api.FileSHA256(sb):
		return 0, fmt.Errorf("its %s is not this plan's stage", api.BackupStageFile)
	}
	head, _, err := journal.Read(filepath.Join(a.BackupDir, api.JournalFile))
	if err != nil {
		return 0, err
	}
	if head == nil || head.Step != "plan" || head.Detail != a.journalKey() || x.TakenAt.Before(head.At) {
		return 0, fmt.Errorf("this stage's journal was started after it was taken, or names another plan")
	}
	return len(x.Objects), nil
}

// perNamespaceReads is the most deleted namespaces whose content the backup
// reads namespace by namespace.
const perNamespaceReads = 20

// objectWriter writes backed-up objects, one file each, making each
// directory once.
type objectWriter struct {
	dir  string
	mu   sync.Mutex
	made map[string]bool
}

func (w *objectWriter) write(u *unstructured.Unstructured) (api.BackupEntry, error) {
	ns := u.GetNamespace()
	if ns == "" {
		ns = "_cluster"
	}
	kind := u.GetKind()
	if g := u.GroupVersionKind().Group; g != "" {
		kind += "." + g
	}
	rel := path.Join(ns, kind, strings.ReplaceAll(u.GetName(), "/", "_")+".json")
	file := filepath.Join(w.dir, filepath.FromSlash(rel))
	w.mu.Lock()
	made := w.made[filepath.Dir(file)]
	w.mu.Unlock()
	if !made {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return api.BackupEntry{}, err
		}
		w.mu.Lock()
		w.made[filepath.Dir(file)] = true
		w.mu.Unlock()
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return api.BackupEntry{}, err
	}
	if err := api.WritePrivateFile(file, b); err != nil {
		return api.BackupEntry{}, err
	}
	return api.BackupEntry{ObjectRef: api.ObjectRef{
		APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
		UID: string(u.GetUID()), ResourceVersion: u.GetResourceVersion(),
	}, File: path.Join(api.BackupObjectsDir, rel), SHA256: api.FileSHA256(b)}, nil
}

// namespacedResources lists every listable namespaced type, to back up the
// content of namespaces the plan deletes.
func (a *stage) namespacedResources(ctx context.Context) ([]schema.GroupVersionResource, error) {
	var lists []*metav1.APIResourceList
	err := kube.Retry(ctx, func() (err error) {
		lists, err = a.Clients.Discovery.ServerPreferredNamespacedResources()
		if len(lists) > 0 {
			return nil // partial discovery (a broken aggregated API) is enough
		}
		return err
	})
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover resources for the backup: %w", err)
	}
	var out []schema.GroupVersionResource
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || (gv.Group == "" && r.Name == "events") || gv.Group == "events.k8s.io" {
				continue
			}
			for _, v := range r.Verbs {
				if v == "list" {
					out = append(out, gv.WithResource(r.Name))
					break
				}
			}
		}
	}
	return out, nil
}

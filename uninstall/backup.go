package uninstall

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
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
	"github.com/ks-clean/ks-clean/internal/kube"
)

// backup saves, before any write, every object a step changes or deletes and
// everything inside the namespaces the plan deletes. Lists, grouped by type,
// not one GET per object. Secrets are saved whole (files 0600 in a 0700
// directory) but never printed. It returns, by UID, what it read of the
// objects patch steps change: their first patch starts from it instead of a
// GET (its test operations still pin every value it removes).
func (a *stage) backup(ctx context.Context, targets map[string]*resolved) (int, map[string]*unstructured.Unstructured, error) {
	patched := map[string]bool{}
	for _, s := range a.Plan.Steps {
		if s.Action == api.ActionPatch {
			patched[s.Target.UID] = true
		}
	}
	known := map[string]*unstructured.Unstructured{}
	root := a.BackupDir
	if a.DryRun {
		// A dry run's backup shows what a real run would save; a real run
		// never reuses it: the cluster may change before that run.
		root = filepath.Join(a.BackupDir, "dry-run")
		if err := os.RemoveAll(root); err != nil {
			return 0, nil, api.Refuse(api.FixBackupDir, "replace the dry run's backup %s: %w", root, err)
		}
	}
	dir := filepath.Join(root, "objects")
	index := filepath.Join(root, api.BackupIndexFile)
	if b, err := os.ReadFile(index); err == nil && !a.DryRun {
		// Taken by an earlier, interrupted real run of this stage: it
		// holds the state before any write, which a new backup no longer
		// could.
		var prev api.BackupIndex
		if err := json.Unmarshal(b, &prev); err != nil || prev.Plan != a.journalKey() {
			return 0, nil, api.Refuse(api.FixBackupDir, "backup index %s is damaged or belongs to another plan: move it away to take a new backup", index)
		}
		return len(prev.Objects), nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, api.Refuse(api.FixBackupDir, "backup directory %s: %w", root, err)
	}

	want := map[schema.GroupVersionResource]map[string]bool{} // gvr -> uid set
	var deletedNS []string
	for _, s := range a.Plan.Steps {
		r := targets[s.ID]
		if r == nil || r.gvr.Resource == "" || s.Action == api.ActionVerify {
			continue
		}
		if want[r.gvr] == nil {
			want[r.gvr] = map[string]bool{}
		}
		want[r.gvr][s.Target.UID] = true
		if s.Action == api.ActionDelete && s.Target.Kind == "Namespace" {
			deletedNS = append(deletedNS, s.Target.Name)
		}
	}
	nsSet := map[string]bool{}
	for _, n := range deletedNS {
		nsSet[n] = true
	}
	namespaced, err := a.namespacedResources(ctx)
	if err != nil {
		return 0, nil, err
	}
	// What is in the deleted namespaces: a few namespaces are read one by
	// one (a cluster-wide list of every type would read every user's
	// objects too: 25,000 of them at 5,000 namespaces); many, cluster-wide.
	type read struct {
		gvr       schema.GroupVersionResource
		namespace string // "": all
	}
	var reads []read
	for gvr := range want {
		reads = append(reads, read{gvr: gvr})
	}
	for _, gvr := range namespaced {
		if want[gvr] != nil {
			continue // listed cluster-wide already
		}
		want[gvr] = map[string]bool{}
		if len(deletedNS) > perNamespaceReads {
			reads = append(reads, read{gvr: gvr})
			continue
		}
		for _, ns := range deletedNS {
			reads = append(reads, read{gvr: gvr, namespace: ns})
		}
	}

	var mu sync.Mutex
	var entries []api.BackupEntry
	seen := map[string]bool{}
	w := &objectWriter{dir: dir, made: map[string]bool{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.Concurrency)
	for _, rd := range reads {
		uids := want[rd.gvr]
		g.Go(func() error {
			ri := a.Clients.Dynamic.Resource(rd.gvr).Namespace(rd.namespace)
			p := kube.Pager(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return ri.List(ctx, o) })
			err := p.EachListItem(gctx, metav1.ListOptions{}, func(item runtime.Object) error {
				u := item.(*unstructured.Unstructured)
				uid := string(u.GetUID())
				if !uids[uid] && !nsSet[u.GetNamespace()] {
					return nil
				}
				mu.Lock()
				dup := seen[uid]
				seen[uid] = true
				mu.Unlock()
				if dup {
					return nil
				}
				e, err := w.write(u)
				if err != nil {
					return err
				}
				mu.Lock()
				entries = append(entries, e)
				if patched[uid] {
					known[uid] = u
				}
				mu.Unlock()
				return nil
			})
			if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("back up %s: %w", rd.gvr.GroupResource(), err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	// The stage goes with its backup, so that restore knows what apply
	// was to do without the plan file; the index, written last, seals
	// both with checksums.
	sb, err := json.MarshalIndent(a.Plan, "", " ")
	if err != nil {
		return 0, nil, err
	}
	if err := os.WriteFile(filepath.Join(root, api.BackupStageFile), sb, 0o600); err != nil {
		return 0, nil, fmt.Errorf("write backup: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].File < entries[j].File })
	x := &api.BackupIndex{Plan: a.journalKey(), Cluster: a.Plan.Cluster.UID, TakenAt: time.Now().UTC(), StageSHA256: api.FileSHA256(sb), Objects: entries}
	if err := api.WriteBackupIndex(root, x); err != nil {
		return 0, nil, err
	}
	return len(entries), known, nil
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
	rel := filepath.Join(ns, kind, strings.ReplaceAll(u.GetName(), "/", "_")+".json")
	path := filepath.Join(w.dir, rel)
	w.mu.Lock()
	made := w.made[filepath.Dir(path)]
	w.mu.Unlock()
	if !made {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return api.BackupEntry{}, err
		}
		w.mu.Lock()
		w.made[filepath.Dir(path)] = true
		w.mu.Unlock()
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return api.BackupEntry{}, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return api.BackupEntry{}, err
	}
	return api.BackupEntry{ObjectRef: api.ObjectRef{
		APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(),
		UID: string(u.GetUID()), ResourceVersion: u.GetResourceVersion(),
	}, File: filepath.Join("objects", rel), SHA256: api.FileSHA256(b)}, nil
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

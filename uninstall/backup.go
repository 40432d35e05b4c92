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
	"k8s.io/client-go/tools/pager"

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
	for _, gvr := range namespaced {
		if want[gvr] == nil {
			want[gvr] = map[string]bool{}
		}
	}

	var mu sync.Mutex
	var entries []api.BackupEntry
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.Concurrency)
	for gvr, uids := range want {
		g.Go(func() error {
			p := pager.New(func(ctx context.Context, o metav1.ListOptions) (obj runtime.Object, err error) {
				err = kube.Retry(ctx, func() error { obj, err = a.Clients.Dynamic.Resource(gvr).List(ctx, o); return err })
				return obj, err
			})
			err := p.EachListItem(gctx, metav1.ListOptions{}, func(item runtime.Object) error {
				u := item.(*unstructured.Unstructured)
				if !uids[string(u.GetUID())] && !nsSet[u.GetNamespace()] {
					return nil
				}
				e, err := writeObject(dir, u)
				if err != nil {
					return err
				}
				mu.Lock()
				entries = append(entries, e)
				if patched[string(u.GetUID())] {
					known[string(u.GetUID())] = u
				}
				mu.Unlock()
				return nil
			})
			if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("back up %s: %w", gvr.GroupResource(), err)
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

func writeObject(dir string, u *unstructured.Unstructured) (api.BackupEntry, error) {
	ns := u.GetNamespace()
	if ns == "" {
		ns = "_cluster"
	}
	kind := u.GetKind()
	if g := u.GroupVersionKind().Group; g != "" {
		kind += "." + g
	}
	rel := filepath.Join(ns, kind, strings.ReplaceAll(u.GetName(), "/", "_")+".json")
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return api.BackupEntry{}, err
	}
	b, err := json.MarshalIndent(u.Object, "", " ")
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

// Package conformance loads the real, rendered KubeSphere manifests kept in
// ../shared/footprints (outside the repository) into a test control plane, so
// tests and benchmarks run against what a real install leaves behind rather
// than against the fixture package's hand-written approximation of it.
package conformance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ks-clean/ks-clean/test/fixture"
)

// File sets, relative to Dir, in the order the README loads them.
var (
	KS331Files = []string{
		"ks-3.3.1/ks-installer.yaml",
		"ks-3.3.1/cluster-configuration.yaml",
		"ks-3.3.1/ks-core.yaml",
		"ks-3.3.1/kubefed.yaml",
		"ks-3.3.1/federated-types.yaml",
	}
	KS413Files = []string{"ks-4.1.3/ks-core.yaml"}
)

// EnvDir overrides where the footprints folder is.
const EnvDir = "KS_FOOTPRINTS_DIR"

// Dir returns the footprints folder and whether it exists: $KS_FOOTPRINTS_DIR,
// else ../shared/footprints next to the module root (the first directory
// holding go.mod, walking up from the working directory). The files are
// shared with other projects and never copied into this repository.
func Dir() (string, bool) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", false
		}
		root := wd
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root { // no go.mod above: say where we looked
				root = wd
				break
			}
			root = parent
		}
		dir = filepath.Join(root, "..", "shared", "footprints")
	}
	dir = filepath.Clean(dir)
	st, err := os.Stat(dir)
	return dir, err == nil && st.IsDir()
}

// ReleaseNamespace is where a real install puts the objects of file whose
// template leaves metadata.namespace empty: the installer applies the KubeFed
// chart and federated-types.yaml in kube-federation-system, everything else
// (ks-core, ks-installer, cluster-configuration) in kubesphere-system.
func ReleaseNamespace(file string) string {
	switch filepath.Base(file) {
	case "kubefed.yaml", "federated-types.yaml":
		return "kube-federation-system"
	}
	return "kubesphere-system"
}

// Doc is one object of a manifest file.
type Doc struct {
	File string // as passed to Load
	Obj  *unstructured.Unstructured
}

// Skip is a document the loader did not create, and why.
type Skip struct {
	Doc    Doc
	Reason string
}

// Loaded is what Load put into the cluster.
type Loaded struct {
	// Docs are every object the files hold, in file order (known skips
	// included). Load fills in the release namespace of namespaced objects
	// that have none, so Docs show what was sent.
	Docs []Doc
	// Created are the documents as stored (with UID), in creation order.
	Created []*unstructured.Unstructured
	// Namespaces are the namespaces the files use without declaring them,
	// which Load created (they are in Seeded.Footprint, not in Created).
	Namespaces []string
	// CRDs are the names of the CustomResourceDefinitions created.
	CRDs []string
	// Skipped are the known skips (see knownSkips).
	Skipped []Skip
	// Superseded are documents a later document names again (same object),
	// which is what was created instead.
	Superseded []Skip
	// Failed are the documents the apiserver refused, one error each.
	Failed []error
}

// Err joins Failed, or is nil when every document was created.
func (l *Loaded) Err() error { return errors.Join(l.Failed...) }

// CountByKind counts objects per kind.
func CountByKind(objs []*unstructured.Unstructured) map[string]int {
	n := map[string]int{}
	for _, o := range objs {
		n[o.GetKind()]++
	}
	return n
}

// Expected returns the objects Created must match: the documents less the
// known skips and the superseded ones.
func (l *Loaded) Expected() []*unstructured.Unstructured {
	left := map[*unstructured.Unstructured]bool{}
	for _, sk := range append(append([]Skip{}, l.Skipped...), l.Superseded...) {
		left[sk.Doc.Obj] = true
	}
	var out []*unstructured.Unstructured
	for _, d := range l.Docs {
		if !left[d.Obj] {
			out = append(out, d.Obj)
		}
	}
	return out
}

// knownSkips maps "Kind name" to why the loader does not create that
// document. Every entry needs a reason that holds on a real apiserver; any
// other refusal is a failure, because the footprint under test would then not
// be the real one. Both file sets load completely on kube-apiserver 1.34, so
// it is empty.
var knownSkips = map[string]string{}

func knownSkip(o *unstructured.Unstructured) string {
	return knownSkips[o.GetKind()+" "+o.GetName()]
}

// Parse reads the documents of the files (relative paths are under Dir),
// skipping empty ones and expanding kind: List.
func Parse(files ...string) ([]Doc, error) {
	dir, _ := Dir()
	var docs []Doc
	for _, f := range files {
		path := f
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, f)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for i := 0; ; i++ {
			raw, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", f, i, err)
			}
			j, err := utilyaml.ToJSON(raw)
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", f, i, err)
			}
			if s := string(bytes.TrimSpace(j)); s == "null" || s == "{}" || s == "" {
				continue // only comments, or nothing between two ---
			}
			o := &unstructured.Unstructured{}
			if err := o.UnmarshalJSON(j); err != nil { // keeps integers as int64
				return nil, fmt.Errorf("%s: document %d: %w", f, i, err)
			}
			if !o.IsList() {
				docs = append(docs, Doc{File: f, Obj: o})
				continue
			}
			err = o.EachListItem(func(item runtime.Object) error {
				docs = append(docs, Doc{File: f, Obj: item.(*unstructured.Unstructured)})
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return docs, nil
}

// Load creates the files' objects in the README's order: namespaces, CRDs
// (waiting until established and discoverable), everything else, and the
// webhook configurations last, since from then on they refuse the writes they
// match. Every object is recorded as fixture.Footprint. The error is for
// what stops the load (unreadable files, a CRD never established); objects
// the apiserver refuses for their content are in Loaded.Failed.
func Load(ctx context.Context, s *fixture.Seeder, files ...string) (*Loaded, error) {
	docs, err := Parse(files...)
	if err != nil {
		return nil, err
	}
	l := &Loaded{Docs: docs}
	// The installer applies federated-types.yaml over the kubefed chart with
	// kubectl apply, and both hold some of the same CRDs and
	// FederatedTypeConfigs: a later document naming the same object updates
	// it rather than adding one, so it takes the earlier one's place. (The
	// key uses the release namespace before scopes are known; a
	// cluster-scoped object repeated across releases would show up in Failed
	// as AlreadyExists rather than pass unnoticed.)
	var unique []Doc
	at := map[string]int{}
	for _, d := range docs {
		if why := knownSkip(d.Obj); why != "" {
			l.Skipped = append(l.Skipped, Skip{Doc: d, Reason: why})
			continue
		}
		gvk := d.Obj.GroupVersionKind()
		ns := d.Obj.GetNamespace()
		if ns == "" {
			ns = ReleaseNamespace(d.File)
		}
		key := gvk.Group + "/" + gvk.Kind + " " + ns + "/" + d.Obj.GetName()
		if i, ok := at[key]; ok {
			l.Superseded = append(l.Superseded, Skip{Doc: unique[i], Reason: "applied again by " + d.File})
			unique[i] = d
			continue
		}
		at[key] = len(unique)
		unique = append(unique, d)
	}
	var crds, rest, webhooks []Doc
	for _, d := range unique {
		switch d.Obj.GetKind() {
		case "Namespace":
			// created in the namespace phase below
		case "CustomResourceDefinition":
			crds = append(crds, d)
		case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration":
			webhooks = append(webhooks, d)
		default:
			rest = append(rest, d)
		}
	}

	if err := l.createNamespaces(ctx, s, unique, files); err != nil {
		return l, err
	}

	for _, d := range crds {
		if l.create(ctx, s, d) {
			l.CRDs = append(l.CRDs, d.Obj.GetName())
		}
	}
	if err := waitCRDs(ctx, s, l.CRDs); err != nil {
		return l, err
	}

	for _, group := range [][]Doc{rest, webhooks} {
		for _, d := range group {
			_, namespaced, err := s.GVR(d.Obj)
			if err != nil {
				l.Failed = append(l.Failed, fmt.Errorf("%s: %s: %w", d.File, describe(d.Obj), err))
				continue
			}
			switch {
			case namespaced && d.Obj.GetNamespace() == "":
				d.Obj.SetNamespace(ReleaseNamespace(d.File))
			case !namespaced:
				// Helm renders some cluster-scoped objects with a
				// namespace; the apiserver ignores it, so do the same
				// and keep the recorded Ref exact.
				d.Obj.SetNamespace("")
			}
			l.create(ctx, s, d)
		}
	}
	return l, nil
}

// createNamespaces creates the Namespace documents as written, then every
// other namespace an object or a file's release namespace names, unless it
// exists already (kube-system, default).
func (l *Loaded) createNamespaces(ctx context.Context, s *fixture.Seeder, docs []Doc, files []string) error {
	declared := map[string]bool{}
	for _, d := range docs {
		if d.Obj.GetKind() == "Namespace" {
			declared[d.Obj.GetName()] = true
			l.create(ctx, s, d)
		}
	}
	wanted := map[string]bool{}
	for _, f := range files {
		wanted[ReleaseNamespace(f)] = true
	}
	for _, d := range docs {
		if ns := d.Obj.GetNamespace(); ns != "" {
			wanted[ns] = true
		}
	}
	names := make([]string, 0, len(wanted))
	for ns := range wanted {
		if !declared[ns] {
			names = append(names, ns)
		}
	}
	sort.Strings(names)
	for _, ns := range names {
		_, err := s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		o := &unstructured.Unstructured{}
		o.SetAPIVersion("v1")
		o.SetKind("Namespace")
		o.SetName(ns)
		if _, err := s.Create(ctx, fixture.Footprint, o); err != nil {
			return err
		}
		l.Namespaces = append(l.Namespaces, ns)
	}
	return nil
}

// create creates one document, recording it in Created or Failed.
func (l *Loaded) create(ctx context.Context, s *fixture.Seeder, d Doc) bool {
	out, err := s.Create(ctx, fixture.Footprint, d.Obj)
	if err != nil {
		l.Failed = append(l.Failed, fmt.Errorf("%s: %w", d.File, err))
		return false
	}
	l.Created = append(l.Created, out)
	return true
}

// waitCRDs waits until every CRD is Established and its kind resolves
// through the seeder's discovery mapper: established means served, but the
// discovery document can lag a moment behind, and Seeder.GVR resets its
// cache on every miss, so polling it also refreshes the mapper.
func waitCRDs(ctx context.Context, s *fixture.Seeder, names []string) error {
	for _, n := range names {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			c, err := s.APIExt.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !Established(c) {
				return false, nil
			}
			for _, v := range c.Spec.Versions {
				if !v.Served {
					continue
				}
				probe := &unstructured.Unstructured{}
				probe.SetAPIVersion(c.Spec.Group + "/" + v.Name)
				probe.SetKind(c.Spec.Names.Kind)
				if _, _, err := s.GVR(probe); err != nil {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established and discoverable: %w", n, err)
		}
	}
	return nil
}

// Established reports whether the CRD's Established condition is true.
func Established(c *apiextensionsv1.CustomResourceDefinition) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

func describe(o *unstructured.Unstructured) string {
	return strings.TrimSpace(fmt.Sprintf("%s %s", o.GetKind(), strings.TrimPrefix(o.GetNamespace()+"/"+o.GetName(), "/")))
}

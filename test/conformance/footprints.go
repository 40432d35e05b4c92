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
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/util/retry"

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
	// KS341Files are a full 3.4.1 install with every component on, in the
	// README's order; namespace-labels.yaml is merged into namespaces.
	KS341Files = []string{
		"ks-3.4.1/ks-installer.yaml", "ks-3.4.1/cluster-configuration.yaml", "ks-3.4.1/namespace-labels.yaml",
		"ks-3.4.1/ks-core.yaml", "ks-3.4.1/ks-core-init.yaml", "ks-3.4.1/snapshot-controller.yaml",
		"ks-3.4.1/redis.yaml", "ks-3.4.1/openldap.yaml", "ks-3.4.1/minio.yaml", "ks-3.4.1/opensearch.yaml",
		"ks-3.4.1/elasticsearch-curator.yaml", "ks-3.4.1/fluentbit-operator.yaml", "ks-3.4.1/metrics-server.yaml",
		"ks-3.4.1/ks-monitor.yaml", "ks-3.4.1/notification-manager.yaml", "ks-3.4.1/gpu-monitoring.yaml",
		"ks-3.4.1/alerting.yaml", "ks-3.4.1/logging.yaml", "ks-3.4.1/events.yaml", "ks-3.4.1/auditing.yaml",
		"ks-3.4.1/devops.yaml", "ks-3.4.1/argocd.yaml", "ks-3.4.1/servicemesh.yaml", "ks-3.4.1/openpitrix.yaml",
		"ks-3.4.1/edgeruntime.yaml", "ks-3.4.1/gatekeeper.yaml", "ks-3.4.1/kubefed.yaml",
		"ks-3.4.1/federated-types.yaml", "ks-3.4.1/network-topology.yaml",
	}
	// KS413HostFiles are a 4.1.3 host with four extensions, their agents
	// placed on the host too, and the records KubeSphere's controllers keep
	// for them (README-ks-4.1.x.md, "Which cluster each file goes to").
	KS413HostFiles = []string{
		"ks-4.1.3/ks-core.yaml",
		"ks-4.1.3-extensions/whizard-telemetry.yaml", "ks-4.1.3-extensions/whizard-monitoring.yaml",
		"ks-4.1.3-extensions/network.yaml", "ks-4.1.3-extensions/storage-utils.yaml",
		"ks-4.1.3-extensions/whizard-monitoring-agent.host.yaml", "ks-4.1.3-extensions/network-agent.host.yaml",
		"ks-4.1.3-extensions/storage-utils-agent.host.yaml", "ks-4.1.3-extensions/records.yaml",
	}
	// KS413MemberFiles are a 4.1.3 member: ks-core installed by the host as
	// ks-agent, and the extensions' agents.
	KS413MemberFiles = []string{
		"ks-4.1.3-member/ks-core.yaml", "ks-4.1.3-member/namespace-labels.yaml",
		"ks-4.1.3-extensions/whizard-monitoring-agent.yaml", "ks-4.1.3-extensions/network-agent.yaml",
		"ks-4.1.3-extensions/storage-utils-agent.yaml", "ks-4.1.3-extensions/records-agent.yaml",
	}
)

// labelMerges is the file whose Namespaces only carry labels the installer
// adds to namespaces that exist (kubectl label ns).
const labelMerges = "namespace-labels.yaml"

// EnvDir overrides where the footprints folder is.
const EnvDir = "KS_FOOTPRINTS_DIR"

// EnvRequire, set to 1 (make test sets it), turns a missing footprints
// folder from a skip into a failure: a suite that skips its conformance
// tests for want of their input proves nothing.
const EnvRequire = "KS_REQUIRE_FOOTPRINTS"

// RequireDir returns the footprints folder, or skips t (fails it under
// EnvRequire=1) when there is none.
func RequireDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("loads footprints into a control plane: not in -short")
	}
	dir, ok := Dir()
	switch {
	case ok:
		return dir
	case os.Getenv(EnvRequire) == "1":
		t.Fatalf("footprints folder %s not found, and %s=1: put the footprints there or set %s, or run with %s=0 to skip the conformance tests", dir, EnvRequire, EnvDir, EnvRequire)
	default:
		t.Skipf("footprints folder %s not found (set %s to point elsewhere)", dir, EnvDir)
	}
	return ""
}

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

// fileNamespaces are the README's "objects without namespace go to" column
// (the same for the files 3.3.1 and 3.4.1 share); kubesphere-system for the
// rest.
var fileNamespaces = map[string]string{
	"kubefed.yaml": "kube-federation-system", "federated-types.yaml": "kube-federation-system",
	"snapshot-controller.yaml": "kube-system", "metrics-server.yaml": "kube-system",
	"opensearch.yaml": "kubesphere-logging-system", "elasticsearch-curator.yaml": "kubesphere-logging-system",
	"fluentbit-operator.yaml": "kubesphere-logging-system", "logging.yaml": "kubesphere-logging-system",
	"events.yaml": "kubesphere-logging-system", "auditing.yaml": "kubesphere-logging-system",
	"ks-monitor.yaml": "kubesphere-monitoring-system", "notification-manager.yaml": "kubesphere-monitoring-system",
	"gpu-monitoring.yaml": "kubesphere-monitoring-system", "alerting.yaml": "kubesphere-monitoring-system",
	"devops.yaml": "kubesphere-devops-system", "argocd.yaml": "argocd", "servicemesh.yaml": "istio-system",
	"edgeruntime.yaml": "kubeedge", "gatekeeper.yaml": "gatekeeper-system", "network-topology.yaml": "weave",
	// 4.1.3 extensions: each release's target namespace
	"whizard-telemetry.yaml": "extension-whizard-telemetry", "whizard-monitoring.yaml": "kubesphere-monitoring-system",
	"whizard-monitoring-agent.yaml": "kubesphere-monitoring-system", "whizard-monitoring-agent.host.yaml": "kubesphere-monitoring-system",
	"network.yaml": "extension-network", "network-agent.yaml": "extension-network", "network-agent.host.yaml": "extension-network",
	"storage-utils.yaml": "extension-storage-utils", "storage-utils-agent.yaml": "extension-storage-utils",
	"storage-utils-agent.host.yaml": "extension-storage-utils",
}

// ReleaseNamespace is where a real install puts the objects of file whose
// template leaves metadata.namespace empty (the README's table): the
// installer applies each role's manifests and charts in its namespace.
func ReleaseNamespace(file string) string {
	if ns := fileNamespaces[filepath.Base(file)]; ns != "" {
		return ns
	}
	return "kubesphere-system"
}

// Doc is one object of a manifest file.
type Doc struct {
	File string // as passed to Load
	// Source is the document's "# Source:" comment: a chart's template
	// path for what Helm installed, the installer's file otherwise.
	Source string
	Obj    *unstructured.Unstructured
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
	// Updated are objects that existed before the load (Kubernetes' own)
	// which a document applied over.
	Updated []*unstructured.Unstructured
	// Merged are the namespaces namespace-labels.yaml added labels to.
	Merged []string
	// Releases are the Helm release records written ("namespace/name").
	Releases []string
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

var sourceLine = regexp.MustCompile(`(?m)^# Source: (\S+)`)

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
			var source string
			if m := sourceLine.FindSubmatch(raw); m != nil {
				source = string(m[1])
			}
			if !o.IsList() {
				docs = append(docs, Doc{File: f, Source: source, Obj: o})
				continue
			}
			err = o.EachListItem(func(item runtime.Object) error {
				docs = append(docs, Doc{File: f, Source: source, Obj: item.(*unstructured.Unstructured)})
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
// match. What Helm installed carries Helm's release annotations, and each
// release gets its record (Helm's storage, the manifest it applied), as
// `helm upgrade --install` leaves them. Every object is recorded as
// fixture.Footprint. The error is for what stops the load (unreadable files,
// a CRD never established); objects the apiserver refuses for their content
// are in Loaded.Failed.
func Load(ctx context.Context, s *fixture.Seeder, files ...string) (*Loaded, error) {
	return LoadWith(ctx, s, LoadOptions{}, files...)
}

// LoadStaged is Load with a step run just before the webhook configurations
// are created: what KubeSphere's controllers make at run time is seeded
// there, while the fail-closed webhooks do not refuse it yet.
func LoadStaged(ctx context.Context, s *fixture.Seeder, beforeWebhooks func(context.Context) error, files ...string) (*Loaded, error) {
	return LoadWith(ctx, s, LoadOptions{BeforeWebhooks: beforeWebhooks}, files...)
}

// LoadOptions change how LoadWith loads the files.
type LoadOptions struct {
	// BeforeWebhooks runs just before the webhook configurations are
	// created (see LoadStaged).
	BeforeWebhooks func(context.Context) error
	// NoHelm loads the files as they are: without the marks and release
	// records Helm adds to what it installs. Evidence must then come from
	// the objects alone.
	NoHelm bool
	// Replace names documents the test stands its own object in for (a
	// user's object of the same name): they are not created, and recorded
	// in Skipped, but their release's manifest still lists them, as when
	// two releases render one name.
	Replace func(Doc) bool
}

// LoadWith is Load with options.
func LoadWith(ctx context.Context, s *fixture.Seeder, o LoadOptions, files ...string) (*Loaded, error) {
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
	var unique, merges []Doc
	at := map[string]int{}
	for _, d := range docs {
		if why := knownSkip(d.Obj); why != "" {
			l.Skipped = append(l.Skipped, Skip{Doc: d, Reason: why})
			continue
		}
		if filepath.Base(d.File) == labelMerges {
			merges = append(merges, d)
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
	for _, d := range merges {
		if err := l.mergeLabels(ctx, s, d); err != nil {
			l.Failed = append(l.Failed, fmt.Errorf("%s: labels of namespace %s: %w", d.File, d.Obj.GetName(), err))
		}
	}

	for _, d := range crds {
		if l.create(ctx, s, d) {
			l.CRDs = append(l.CRDs, d.Obj.GetName())
		}
	}
	if err := waitCRDs(ctx, s, l.CRDs); err != nil {
		return l, err
	}

	releases := newReleases()
	var ok [2][]Doc
	for i, group := range [][]Doc{rest, webhooks} {
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
			if !o.NoHelm {
				releases.adopt(d)
			}
			if o.Replace != nil && o.Replace(d) {
				l.Skipped = append(l.Skipped, Skip{Doc: d, Reason: "replaced by the test's own object"})
				continue
			}
			ok[i] = append(ok[i], d)
		}
	}
	for _, d := range ok[0] {
		l.create(ctx, s, d)
	}
	if err := releases.write(ctx, s, l); err != nil {
		return l, err
	}
	if o.BeforeWebhooks != nil {
		if err := o.BeforeWebhooks(ctx); err != nil {
			return l, fmt.Errorf("before webhooks: %w", err)
		}
	}
	for _, d := range ok[1] {
		l.create(ctx, s, d)
	}
	return l, nil
}

// mergeLabels adds a Namespace document's labels, annotations and
// finalizers to the namespace (what hooks and controllers add to namespaces
// that exist), creating it first when nothing else did.
func (l *Loaded) mergeLabels(ctx context.Context, s *fixture.Seeder, d Doc) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ns, err := s.Kube.CoreV1().Namespaces().Get(ctx, d.Obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			bare := &unstructured.Unstructured{}
			bare.SetAPIVersion("v1")
			bare.SetKind("Namespace")
			bare.SetName(d.Obj.GetName())
			if _, err = s.Create(ctx, fixture.Footprint, bare); err != nil {
				return err
			}
			l.Namespaces = append(l.Namespaces, d.Obj.GetName())
			ns, err = s.Kube.CoreV1().Namespaces().Get(ctx, d.Obj.GetName(), metav1.GetOptions{})
		}
		if err != nil {
			return err
		}
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		for k, v := range d.Obj.GetLabels() {
			ns.Labels[k] = v
		}
		for k, v := range d.Obj.GetAnnotations() {
			if ns.Annotations == nil {
				ns.Annotations = map[string]string{}
			}
			ns.Annotations[k] = v
		}
		for _, f := range d.Obj.GetFinalizers() {
			if !slices.Contains(ns.Finalizers, f) {
				ns.Finalizers = append(ns.Finalizers, f)
			}
		}
		_, err = s.Kube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
		if err == nil {
			l.Merged = append(l.Merged, d.Obj.GetName())
		}
		return err
	})
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
	if apierrors.IsAlreadyExists(err) && d.Obj.GetNamespace() == "" {
		// The installer applies over some of Kubernetes' own objects
		// (ClusterRole cluster-admin gets KubeSphere's annotations):
		// kubectl apply updates them, and they stay Kubernetes'.
		if err = l.applyOver(ctx, s, d); err == nil {
			return true
		}
	}
	if err != nil {
		l.Failed = append(l.Failed, fmt.Errorf("%s: %w", d.File, err))
		return false
	}
	l.Created = append(l.Created, out)
	return true
}

// applyOver updates an object that existed before the load with a
// document's fields, as kubectl apply does: labels and annotations are
// merged, the other top-level fields replaced. The object is recorded as
// protected: it is not KubeSphere's.
func (l *Loaded) applyOver(ctx context.Context, s *fixture.Seeder, d Doc) error {
	gvr, _, err := s.GVR(d.Obj)
	if err != nil {
		return err
	}
	ri := s.Dyn.Resource(gvr)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := ri.Get(ctx, d.Obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		for k, v := range d.Obj.Object {
			if k != "metadata" && k != "status" {
				cur.Object[k] = v
			}
		}
		for _, m := range []struct {
			get func() map[string]string
			set func(map[string]string)
			add map[string]string
		}{{cur.GetLabels, cur.SetLabels, d.Obj.GetLabels()}, {cur.GetAnnotations, cur.SetAnnotations, d.Obj.GetAnnotations()}} {
			merged := m.get()
			if merged == nil {
				merged = map[string]string{}
			}
			for k, v := range m.add {
				merged[k] = v
			}
			m.set(merged)
		}
		out, err := ri.Update(ctx, cur, metav1.UpdateOptions{})
		if err == nil {
			s.Record(fixture.Protected, out)
			l.Updated = append(l.Updated, out)
		}
		return err
	})
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

package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/rbac"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
)

const (
	jobManifest = "../../docs/deploy/ks-clean-job.yaml"
)

// manifestDoc is one YAML document of a manifest file.
type manifestDoc struct {
	file string
	raw  []byte
	obj  *unstructured.Unstructured
}

func (d manifestDoc) String() string {
	return fmt.Sprintf("%s: %s %s", filepath.Base(d.file), d.obj.GetKind(), objectName(d.obj))
}

func objectName(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

// readManifest splits a multi-document YAML file and decodes each document
// with sigs.k8s.io/yaml, strictly (a duplicated key is an error). Documents
// that hold only comments are skipped.
func readManifest(t *testing.T, path string) []manifestDoc {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseManifest(t, path, data)
}

func parseManifest(t *testing.T, path string, data []byte) []manifestDoc {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []manifestDoc
	for i := 1; ; i++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		var m map[string]interface{}
		if err := yaml.UnmarshalStrict(raw, &m); err != nil {
			t.Fatalf("%s: document %d: %v", path, i, err)
		}
		if m == nil {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetAPIVersion() == "" || obj.GetKind() == "" || obj.GetName() == "" {
			t.Fatalf("%s: document %d has no apiVersion, kind or metadata.name", path, i)
		}
		docs = append(docs, manifestDoc{file: path, raw: raw, obj: obj})
	}
	if len(docs) == 0 {
		t.Fatalf("%s holds no objects", path)
	}
	return docs
}

// only returns the one document of the given kind, decoded strictly into
// out (a field the Go type does not have is an error).
func only(t *testing.T, docs []manifestDoc, kind string, out interface{}) manifestDoc {
	t.Helper()
	var found []manifestDoc
	for _, d := range docs {
		if d.obj.GetKind() == kind {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: want exactly one %s, found %d", jobManifest, kind, len(found))
	}
	if err := yaml.UnmarshalStrict(found[0].raw, out); err != nil {
		t.Fatalf("%s: %v", found[0], err)
	}
	return found[0]
}

// jobObjects are the typed objects of docs/deploy/ks-clean-job.yaml.
type jobObjects struct {
	ns  corev1.Namespace
	sa  corev1.ServiceAccount
	job batchv1.Job
}

func readJobManifest(t *testing.T) ([]manifestDoc, jobObjects) {
	t.Helper()
	docs := readManifest(t, jobManifest)
	var o jobObjects
	only(t, docs, "Namespace", &o.ns)
	only(t, docs, "ServiceAccount", &o.sa)
	only(t, docs, "Job", &o.job)
	if len(docs) != 3 {
		// Roles are printed per cluster and per plan (ks-clean rbac):
		// a fixed one would grant more than a run needs.
		t.Fatalf("%s: %d objects, want the 3 above and no RBAC", jobManifest, len(docs))
	}
	return docs, o
}

// TestJobManifest checks what the API server does not: that the objects
// point at one another, and that the Job runs as non-root on a read-only
// root file system with a writable /work, a read-only scan by default.
func TestJobManifest(t *testing.T) {
	_, o := readJobManifest(t)

	// The objects name one another.
	if o.sa.Namespace != o.ns.Name || o.job.Namespace != o.ns.Name {
		t.Errorf("ServiceAccount in %q, Job in %q: want both in the manifest's Namespace %q", o.sa.Namespace, o.job.Namespace, o.ns.Name)
	}
	if o.sa.Namespace+":"+o.sa.Name != "ks-clean:ks-clean" {
		t.Errorf("ServiceAccount %s:%s, want ks-clean:ks-clean, the default of ks-clean rbac --serviceaccount", o.sa.Namespace, o.sa.Name)
	}
	if got := o.ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("Namespace label pod-security.kubernetes.io/enforce=%q, want restricted", got)
	}

	// The Job.
	spec := o.job.Spec
	pod := spec.Template.Spec
	if spec.BackoffLimit == nil || *spec.BackoffLimit != 0 {
		t.Errorf("backoffLimit %v, want 0", spec.BackoffLimit)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", pod.RestartPolicy)
	}
	if pod.ServiceAccountName != o.sa.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, o.sa.Name)
	}
	if pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is false: ks-clean uses the in-cluster configuration, which needs the token")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the Pod shares the node's network, PID or IPC namespace")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "ks-clean:latest" {
		t.Errorf("image %q, want ks-clean:latest (the Dockerfile's)", c.Image)
	}
	if len(c.Command) != 0 {
		t.Errorf("command %q overrides the image's entrypoint /ks-clean", c.Command)
	}
	if want := []string{"scan", "-o", "json"}; !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args %q, want the read-only %q by default", c.Args, want)
	}
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		checkNonRoot(t, pod.SecurityContext, c)
		checkWritableWorkDir(t, pod, c)
	}
}

// checkNonRoot checks the container's effective security context: the
// container's fields override the Pod's.
func checkNonRoot(t *testing.T, psc *corev1.PodSecurityContext, c corev1.Container) {
	t.Helper()
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot, user := psc.RunAsNonRoot, psc.RunAsUser
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if sc.RunAsUser != nil {
		user = sc.RunAsUser
	}
	if !ptr.Deref(nonRoot, false) {
		t.Errorf("container %s: runAsNonRoot is not true", c.Name)
	}
	if user == nil || *user == 0 {
		t.Errorf("container %s: runAsUser %v, want a non-zero UID", c.Name, user)
	}
	if ptr.Deref(sc.Privileged, false) {
		t.Errorf("container %s is privileged", c.Name)
	}
	if ptr.Deref(sc.AllowPrivilegeEscalation, true) {
		t.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name)
	}
	if !ptr.Deref(sc.ReadOnlyRootFilesystem, false) {
		t.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name)
	}
	if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container %s: capabilities %+v, want drop ALL and add none", c.Name, sc.Capabilities)
	}
}

// checkWritableWorkDir checks that the working directory, where plans and
// backups go, is an emptyDir volume: the root file system is read-only.
func checkWritableWorkDir(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	if c.WorkingDir == "" {
		t.Errorf("container %s has no workingDir", c.Name)
		return
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath != c.WorkingDir || m.ReadOnly {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.EmptyDir != nil {
				return
			}
		}
	}
	t.Errorf("container %s: workingDir %s is not a writable emptyDir volume", c.Name, c.WorkingDir)
}

// warnings collects the API server's warnings (deprecated APIs, Pod
// Security "warn" violations): any is a failure.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// TestManifestsOnAPIServer creates every object of
// docs/deploy/ks-clean-job.yaml and of `ks-clean rbac scan` with a server-side dry
// run on a real kube-apiserver, with strict field validation: the server's
// own validation, defaulting and admission decide, and any error or warning
// fails. Then the Job's Pod is dry-run created in the manifest's Namespace,
// whose Pod Security admission enforces "restricted".
//
// A dry run persists nothing, and the apiserver's NamespaceLifecycle
// admission refuses any create, dry run included, in a namespace that does
// not exist. So the Namespace, and only it, is created for real once its
// dry run passes; it comes first in the manifest. Everything else stays a
// dry run. envtest's apiserver runs without the ServiceAccount
// admission plugin, so the Pod's dry run does not need the ServiceAccount
// to exist.
func TestManifestsOnAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	jobDocs, o := readJobManifest(t)
	var docs []manifestDoc
	docs = append(docs, jobDocs...)

	// Nothing here needs a controller: no garbage collection, no Job
	// controller making Pods.
	cp := controlplane.StartT(t, controlplane.Options{NoControllerManager: true})
	// The roles `ks-clean rbac scan` prints for this cluster, for the
	// manifest's ServiceAccount.
	admin, err := kube.New(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scan.Run(ctx, []scan.Target{{Clients: admin}}, scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roles, err := rbac.ScanFor(rep.Host(), rbac.ServiceAccount(o.sa.Namespace, o.sa.Name)).YAML()
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, parseManifest(t, "ks-clean rbac scan", roles)...)
	w := &warnings{}
	cfg := rest.CopyConfig(cp.Config)
	cfg.WarningHandler = w
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}

	for _, d := range docs {
		gvk := d.obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			// kubectl apply -f would put an object without a namespace
			// into the user's current one.
			if d.obj.GetNamespace() == "" {
				t.Fatalf("%s is namespaced but names no namespace", d)
			}
			ri = dyn.Resource(m.Resource).Namespace(d.obj.GetNamespace())
		} else if d.obj.GetNamespace() != "" {
			t.Fatalf("%s is cluster-scoped but names namespace %q", d, d.obj.GetNamespace())
		}
		if _, err := ri.Create(ctx, d.obj.DeepCopy(), dryRun); err != nil {
			t.Fatalf("%s: dry-run create: %v", d, err)
		}
		if msgs := w.take(); len(msgs) > 0 {
			t.Errorf("%s: dry-run create warned: %q", d, msgs)
		}
		if d.file == jobManifest && gvk.Kind == "Namespace" {
			if _, err := ri.Create(ctx, d.obj.DeepCopy(), metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}); err != nil {
				t.Fatalf("%s: create: %v", d, err)
			}
		}
		t.Logf("%s: accepted", d)
	}

	// The Pod the Job controller would create, through Pod Security
	// admission.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: o.job.Name + "-dry-run", Namespace: o.job.Namespace, Labels: o.job.Spec.Template.Labels},
		Spec:       *o.job.Spec.Template.Spec.DeepCopy(),
	}
	if _, err := kc.CoreV1().Pods(pod.Namespace).Create(ctx, pod, dryRun); err != nil {
		t.Fatalf("the Job's Pod: dry-run create: %v", err)
	}
	if msgs := w.take(); len(msgs) > 0 {
		t.Errorf("the Job's Pod: dry-run create warned: %q", msgs)
	}

	// Negative control: the same Pod as root is refused, so the check above
	// is Pod Security's, not a server that admits anything.
	root := pod.DeepCopy()
	root.Spec.SecurityContext.RunAsNonRoot = ptr.To(false)
	root.Spec.SecurityContext.RunAsUser = ptr.To[int64](0)
	_, err = kc.CoreV1().Pods(root.Namespace).Create(ctx, root, dryRun)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "restricted") {
		t.Fatalf("the Job's Pod as root: err=%v, want Forbidden by the restricted Pod Security Standard", err)
	}
	w.take()
}

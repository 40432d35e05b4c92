package reinstall_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/ks-clean/ks-clean/reinstall"
	"github.com/ks-clean/ks-clean/uninstall"
)

// hookJob is a post-install hook Job like ks-core's
// ks-core-post-patch-system-ns, whose image cannot be pulled any more.
const hookJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: ks-core-post-patch-system-ns
  annotations:
    "helm.sh/hook": post-install
    "helm.sh/hook-delete-policy": before-hook-creation,hook-succeeded
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: patch
        image: registry.invalid/kubesphere/kubectl:v1.27.16
        command: ["kubectl", "version"]
`

const unpullable = "registry.invalid/kubesphere/kubectl:v1.27.16"

// The install waits on a post-install hook Job whose image cannot be
// pulled: reinstall names the Job, the Pod and the image as soon as the
// kubelet says so (modelled here: no kubelet or job controller runs),
// gives up long before Helm's 10-minute timeout, and leaves the cluster
// uninstalled and clean, users' objects kept.
func TestInstallGivesUpOnUnpullableHook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, s, c := incident(t)
	dir := filepath.Join(t.TempDir(), "ks-core")
	if err := os.CopyFS(dir, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "post-install-job.yaml"), []byte(hookJob), 0o644); err != nil {
		t.Fatal(err)
	}
	// The job controller and kubelet, modelled: a Pod for the Job, which
	// then cannot pull its image.
	kubeletDone := make(chan error, 1)
	go func() {
		kubeletDone <- modelUnpullable(ctx, s.Kube, "kubesphere-system", "ks-core-post-patch-system-ns")
	}()
	var mu sync.Mutex
	var notes []string
	r := &reinstall.Reinstall{Clients: c, Options: reinstall.Options{
		Chart: dir, WorkDir: t.TempDir(), Timeout: 10 * time.Minute,
		Apply:  uninstall.Options{FinalizerTimeout: 20 * time.Second},
		Notify: func(m string) { mu.Lock(); notes = append(notes, m); mu.Unlock() },
	}}
	res, err := r.Run(ctx)
	if kerr := <-kubeletDone; kerr != nil {
		t.Fatalf("modelled kubelet: %v", kerr)
	}
	var stuck *reinstall.InstallStuckError
	if !errors.As(err, &stuck) {
		t.Fatalf("reinstall: %v, want an InstallStuckError", err)
	}
	t.Logf("reinstall: %v; install phase %.1fs", err, res.DurationsSeconds["install"])
	if stuck.Job != "ks-core-post-patch-system-ns" || !strings.Contains(stuck.Cause, unpullable) || !strings.Contains(stuck.Cause, "ImagePullBackOff") || !stuck.Cleaned {
		t.Errorf("stuck: %+v; want the hook Job, the image and ImagePullBackOff named, and the cluster cleaned", stuck)
	}
	if !res.Clean || res.Healthy {
		t.Errorf("result: clean %v, healthy %v", res.Clean, res.Healthy)
	}
	said := strings.Join(notes, "\n")
	if !strings.Contains(said, "waiting on Job kubesphere-system/ks-core-post-patch-system-ns") {
		t.Errorf("progress said %q, want the Job it waits on", said)
	}
	if _, err := s.Kube.CoreV1().Namespaces().Get(ctx, "kubesphere-system", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace kubesphere-system, made by the install given up: %v, want it gone", err)
	}
	if missing, _ := s.Missing(ctx, s.Seeded.Protected); len(missing) > 0 {
		t.Errorf("user objects lost: %v", missing)
	}
}

// modelUnpullable waits for the Job, then does what the job controller and
// a kubelet would: a Pod for it, whose container waits in ImagePullBackOff.
func modelUnpullable(ctx context.Context, k kubernetes.Interface, ns, job string) error {
	var j *batchv1.Job
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		j, err = k.BatchV1().Jobs(ns).Get(ctx, job, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return err
	}
	no := false
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: job + "-x7k2p", Namespace: ns, Labels: map[string]string{"job-name": job},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID}}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "patch", Image: unpullable}}}}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pod, err = k.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err == nil, nil // the default ServiceAccount may not be there yet
	})
	if err != nil {
		return err
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "patch", Image: unpullable,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "` + unpullable + `"`}}}}}
	_, err = k.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

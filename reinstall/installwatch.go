package reinstall

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"
)

// InstallStuckError: the install waited on a Job that cannot finish (a
// Pod that cannot pull its image, or no progress for Options.StuckAfter),
// and was given up early rather than at Helm's timeout.
type InstallStuckError struct {
	Namespace, Job string
	// Cause says why, naming the Pod and image where there is one.
	Cause string
	// Cleaned: the new release and what it created were removed again, and
	// the cluster proven clean.
	Cleaned bool
	// CleanupErr is why it was not.
	CleanupErr error
}

func (e *InstallStuckError) Error() string {
	msg := fmt.Sprintf("the install waits on Job %s/%s, which cannot finish: %s; given up early", e.Namespace, e.Job, e.Cause)
	if e.Cleaned {
		msg += "; the new release and what it created were removed again: the cluster is uninstalled and clean"
	} else if e.CleanupErr != nil {
		msg += fmt.Sprintf("; removing the new release failed (%v): run reinstall again, which removes it first", e.CleanupErr)
	}
	return msg + ". Make what the Job needs available (mirror its image and point the chart at the mirror, e.g. --set global.imageRegistry=<mirror>; or give it a node to run on), then run reinstall again"
}

// pullFailures are the container waiting reasons that say an image cannot
// be pulled; ErrImagePull is the first failed try, the others come after
// retries or need no retry to know.
var pullFailures = map[string]bool{"ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// podCause says why a Pod is not done, and whether that is final; "" when it
// is running or has succeeded.
func podCause(p *corev1.Pod) (cause string, final bool) {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		w := cs.State.Waiting
		if w == nil || w.Reason == "" || w.Reason == "ContainerCreating" || w.Reason == "PodInitializing" {
			continue
		}
		if w.Reason == "ErrImagePull" || pullFailures[w.Reason] {
			return fmt.Sprintf("pod %s cannot pull image %s (%s: %s)", p.Name, cs.Image, w.Reason, w.Message), pullFailures[w.Reason]
		}
		return fmt.Sprintf("pod %s, container %s: %s: %s", p.Name, cs.Name, w.Reason, w.Message), false
	}
	switch p.Status.Phase {
	case corev1.PodRunning, corev1.PodSucceeded:
		return "", false
	case corev1.PodFailed:
		return fmt.Sprintf("pod %s failed: %s %s", p.Name, p.Status.Reason, p.Status.Message), false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return fmt.Sprintf("pod %s Pending, not scheduled: %s: %s", p.Name, c.Reason, c.Message), false
		}
	}
	if p.Spec.NodeName == "" {
		return fmt.Sprintf("pod %s Pending: no scheduler has placed it on a node", p.Name), false
	}
	return fmt.Sprintf("pod %s Pending on node %s", p.Name, p.Spec.NodeName), false
}

// installWatch follows the hook Jobs an install makes in its namespace,
// which Helm waits on, and their Pods.
type installWatch struct {
	kube       kubernetes.Interface
	ns         string
	start      time.Time
	stuckAfter time.Duration
	notify     func(string)
	said       map[string]string    // job -> last cause reported
	since      map[string]time.Time // job -> first seen not progressing
}

func newInstallWatch(k kubernetes.Interface, ns string, stuckAfter time.Duration, notify func(string)) *installWatch {
	return &installWatch{kube: k, ns: ns, start: time.Now(), stuckAfter: stuckAfter, notify: notify, said: map[string]string{}, since: map[string]time.Time{}}
}

// check looks once; it returns an error when a Job cannot finish.
func (w *installWatch) check(ctx context.Context) *InstallStuckError {
	var jobs []batchv1.Job
	err := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return w.kube.BatchV1().Jobs(w.ns).List(ctx, o)
	}).EachListItem(ctx, metav1.ListOptions{}, func(o runtime.Object) error {
		// Helm waits on its hook Jobs (not on the chart's other Jobs:
		// reinstall does not ask it to).
		if j, ok := o.(*batchv1.Job); ok && j.Annotations["helm.sh/hook"] != "" && !j.CreationTimestamp.Time.Before(w.start.Add(-time.Second)) {
			jobs = append(jobs, *j)
		}
		return nil
	})
	if err != nil {
		return nil // a failed read is not a verdict; Helm's own timeout still holds
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Name < jobs[j].Name })
	for i := range jobs {
		j := &jobs[i]
		if finished(j) {
			delete(w.since, j.Name)
			continue
		}
		cause, final := w.jobCause(ctx, j)
		if cause == "" {
			delete(w.since, j.Name)
			continue
		}
		if w.said[j.Name] != cause && w.notify != nil {
			w.notify(fmt.Sprintf("waiting on Job %s/%s: %s", w.ns, j.Name, cause))
		}
		w.said[j.Name] = cause
		if _, ok := w.since[j.Name]; !ok {
			w.since[j.Name] = time.Now()
		}
		if final || time.Since(w.since[j.Name]) >= w.stuckAfter {
			if !final {
				cause += fmt.Sprintf(", for %s", w.stuckAfter)
			}
			return &InstallStuckError{Namespace: w.ns, Job: j.Name, Cause: cause}
		}
	}
	return nil
}

// jobCause is why a Job that has not finished is not progressing, or "".
func (w *installWatch) jobCause(ctx context.Context, j *batchv1.Job) (string, bool) {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return fmt.Sprintf("it failed: %s: %s", c.Reason, c.Message), true
		}
	}
	pods, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + j.Name})
	if err != nil {
		return "", false
	}
	if len(pods.Items) == 0 {
		return "it has no Pod yet (is the job controller running?)", false
	}
	var causes []string
	final := false
	for i := range pods.Items {
		c, f := podCause(&pods.Items[i])
		if c == "" {
			return "", false // one Pod runs: progress
		}
		causes = append(causes, c)
		final = final || f
	}
	return strings.Join(causes, "; "), final
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

package reinstall

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What the install says of a hook Job's Pod, and when that is final.
func TestPodCause(t *testing.T) {
	waiting := func(reason, msg string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "c", Image: "registry.invalid/x:1", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}}}
	}
	unschedulable := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available"}}}}
	for _, c := range []struct {
		name  string
		pod   *corev1.Pod
		says  string
		final bool
	}{
		{"back-off pulling", waiting("ImagePullBackOff", "Back-off"), "cannot pull image registry.invalid/x:1 (ImagePullBackOff", true},
		{"first failed pull", waiting("ErrImagePull", "not found"), "cannot pull image registry.invalid/x:1 (ErrImagePull", false},
		{"config error", waiting("CreateContainerConfigError", `secret "s" not found`), "CreateContainerConfigError", false},
		{"creating", waiting("ContainerCreating", ""), "no scheduler", false},
		{"unschedulable", unschedulable, "not scheduled: Unschedulable: 0/3 nodes are available", false},
		{"no scheduler", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}, "no scheduler has placed it", false},
		{"running", &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, "", false},
	} {
		says, final := podCause(c.pod)
		if (c.says == "") != (says == "") || !strings.Contains(says, c.says) || final != c.final {
			t.Errorf("%s: %q (final %v), want %q (final %v)", c.name, says, final, c.says, c.final)
		}
	}
}

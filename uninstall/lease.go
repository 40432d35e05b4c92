package uninstall

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	kubeclients "github.com/ks-clean/ks-clean/kube"
)

const (
	leaseName      = "ks-clean"
	leaseNamespace = "kube-system"
	leaseDuration  = 60 * time.Second
)

// lease makes one apply at a time per cluster: a coordination Lease in
// kube-system, renewed while running, released at the end. A holder that
// died stops renewing; its lease expires and the next apply takes it over.
type lease struct {
	kube   kubernetes.Interface
	holder string
	stop   chan struct{}
	done   chan struct{}
}

func acquireLease(ctx context.Context, kube kubernetes.Interface) (*lease, error) {
	host, _ := os.Hostname()
	l := &lease{kube: kube, holder: fmt.Sprintf("%s/%d", host, os.Getpid())}
	leases := kube.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(leaseDuration / time.Second)
	spec := coordinationv1.LeaseSpec{HolderIdentity: &l.holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}
	err := kubeclients.Retry(func() error {
		_, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaseName}, Spec: spec}, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		var cur *coordinationv1.Lease
		gerr := kubeclients.Retry(func() (err error) {
			cur, err = leases.Get(ctx, leaseName, metav1.GetOptions{})
			return err
		})
		if gerr != nil {
			return nil, gerr
		}
		if h := deref(cur.Spec.HolderIdentity); held(cur) && h != l.holder && !deadLocalHolder(h) {
			return nil, fmt.Errorf("another ks-clean apply holds the cluster (Lease %s/%s, holder %s, renewed %s ago): wait for it to finish; if it died, the lease expires %s after its last renewal",
				leaseNamespace, leaseName, deref(cur.Spec.HolderIdentity), time.Since(cur.Spec.RenewTime.Time).Round(time.Second), leaseDuration)
		}
		cur.Spec = spec
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{}) // resourceVersion guards the takeover
	}
	if err != nil {
		return nil, fmt.Errorf("take Lease %s/%s: %w", leaseNamespace, leaseName, err)
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.renew()
	return l, nil
}

// deadLocalHolder: the holder ran on this host and its process is gone (a
// crash or SIGKILL); waiting for its lease to expire would only delay the
// resume.
func deadLocalHolder(holder string) bool {
	host, _ := os.Hostname()
	h, pidStr, ok := strings.Cut(holder, "/")
	if !ok || h != host {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

func held(l *coordinationv1.Lease) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	return time.Since(l.Spec.RenewTime.Time) < time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second
}

func (l *lease) renew() {
	defer close(l.done)
	t := time.NewTicker(leaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if cur, err := l.kube.CoordinationV1().Leases(leaseNamespace).Get(ctx, leaseName, metav1.GetOptions{}); err == nil && deref(cur.Spec.HolderIdentity) == l.holder {
				now := metav1.NewMicroTime(time.Now())
				cur.Spec.RenewTime = &now
				l.kube.CoordinationV1().Leases(leaseNamespace).Update(ctx, cur, metav1.UpdateOptions{})
			}
			cancel()
		}
	}
}

// release stops renewing and deletes the lease if it is still ours.
func (l *lease) release() {
	if l == nil {
		return
	}
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases := l.kube.CoordinationV1().Leases(leaseNamespace)
	_ = kubeclients.Retry(func() error {
		cur, err := leases.Get(ctx, leaseName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && deref(cur.Spec.HolderIdentity) != l.holder) {
			return nil // gone, or taken over after ours expired
		}
		if err != nil {
			return err
		}
		uid := cur.UID
		err = leases.Delete(ctx, leaseName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

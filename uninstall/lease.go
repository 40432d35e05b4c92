package uninstall

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
)

const (
	leaseName      = "ks-clean"
	leaseNamespace = "kube-system"
)

// LeaseLostError says an apply lost the cluster's Lease while it ran. It
// issued no write after At.
type LeaseLostError struct {
	// Holder is who holds the Lease now ("" when it is gone or could not be
	// read).
	Holder string
	// At is when the loss was noticed.
	At  time.Time
	Why string
}

func (e *LeaseLostError) Error() string {
	who := "another holder"
	if e.Holder != "" {
		who = e.Holder
	}
	return fmt.Sprintf("%v (Lease %s/%s: %s; now held by %s)", api.ErrLeaseLost, leaseNamespace, leaseName, e.Why, who)
}

func (e *LeaseLostError) Unwrap() error { return api.ErrLeaseLost }

// lease makes one apply at a time per cluster: a coordination Lease in
// kube-system, renewed while running, released at the end. A holder that
// died stops renewing; its lease expires and the next apply takes it over.
//
// client-go's leaderelection is not used: it waits to acquire where apply
// must refuse at once, and after another holder takes over it goes on
// leading until its renew deadline, while apply must stop writing as soon
// as it notices. Here the Lease is read every check interval and renewed
// every third of its duration; ctx is cancelled the moment the Lease is
// seen held by another, or could not be renewed before it expired.
type lease struct {
	kube     kubernetes.Interface
	holder   string
	duration time.Duration
	check    time.Duration

	// ctx is cancelled when the lease is lost or released: every write
	// runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	lost *LeaseLostError
	// halted is why writes stopped while the Lease is still held (the
	// guard's tripwire).
	halted error
}

func acquireLease(ctx context.Context, kc kubernetes.Interface, duration, check time.Duration) (*lease, error) {
	host, _ := os.Hostname()
	l := &lease{kube: kc, holder: fmt.Sprintf("%s/%d", host, os.Getpid()), duration: duration, check: check}
	leases := kc.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(duration / time.Second)
	spec := coordinationv1.LeaseSpec{HolderIdentity: &l.holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}
	err := kube.Retry(ctx, func() error {
		_, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: leaseName}, Spec: spec}, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		var cur *coordinationv1.Lease
		gerr := kube.Retry(ctx, func() (err error) {
			cur, err = leases.Get(ctx, leaseName, metav1.GetOptions{})
			return err
		})
		if gerr != nil {
			return nil, gerr
		}
		if h := deref(cur.Spec.HolderIdentity); held(cur) && h != l.holder && !deadLocalHolder(h) {
			return nil, api.Refuse(api.FixWait, "another ks-clean apply holds the cluster (Lease %s/%s, holder %s, renewed %s ago): wait for it to finish; if it died, the lease expires %s after its last renewal",
				leaseNamespace, leaseName, h, time.Since(cur.Spec.RenewTime.Time).Round(time.Second), time.Duration(deref32(cur.Spec.LeaseDurationSeconds))*time.Second)
		}
		cur.Spec = spec
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{}) // resourceVersion guards the takeover
		if apierrors.IsConflict(err) {
			return nil, api.Refuse(api.FixWait, "another ks-clean apply took Lease %s/%s at the same moment: wait for it to finish", leaseNamespace, leaseName)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("take Lease %s/%s: %w", leaseNamespace, leaseName, err)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.done = make(chan struct{})
	go l.keep(now.Time)
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
	return processGone(pid)
}

func held(l *coordinationv1.Lease) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	return time.Since(l.Spec.RenewTime.Time) < time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second
}

// keep checks the Lease every check interval and renews it every third of
// its duration, until it is released or lost.
func (l *lease) keep(renewed time.Time) {
	defer close(l.done)
	leases := l.kube.CoordinationV1().Leases(leaseNamespace)
	wait.UntilWithContext(l.ctx, func(ctx context.Context) {
		rctx, cancel := context.WithTimeout(ctx, l.check+5*time.Second)
		defer cancel()
		cur, err := leases.Get(rctx, leaseName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			l.lose("", "it was deleted")
			return
		case err == nil && deref(cur.Spec.HolderIdentity) != l.holder:
			l.lose(deref(cur.Spec.HolderIdentity), "another holder took it")
			return
		case err == nil && time.Since(renewed) >= l.duration/3:
			now := metav1.NewMicroTime(time.Now())
			cur.Spec.RenewTime = &now
			if _, err = leases.Update(rctx, cur, metav1.UpdateOptions{}); err == nil {
				renewed = now.Time
				return
			}
			if apierrors.IsConflict(err) {
				return // changed since read: the next check says by whom
			}
		}
		// Not renewed: once it may have expired, another apply may take it.
		if time.Since(renewed) > l.duration-l.check {
			l.lose("", fmt.Sprintf("not renewed for %s (%v)", time.Since(renewed).Round(time.Second), err))
		}
	}, l.check)
}

func (l *lease) lose(holder, why string) {
	l.cancel() // first: no write starts once the loss is recorded
	l.mu.Lock()
	if l.lost == nil {
		l.lost = &LeaseLostError{Holder: holder, At: time.Now(), Why: why}
	}
	l.mu.Unlock()
}

// halt stops every write, as a lost Lease does, for another reason; the
// Lease stays this apply's and is released as usual.
func (l *lease) halt(err error) {
	l.cancel()
	l.mu.Lock()
	if l.halted == nil {
		l.halted = err
	}
	l.mu.Unlock()
}

// Stopped returns why writes stopped (the Lease lost, or a halt), or nil.
func (l *lease) Stopped() error {
	if err := l.Lost(); err != nil {
		return err
	}
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.halted
}

// Lost returns the loss, or nil while the lease is held.
func (l *lease) Lost() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		return nil
	}
	return l.lost
}

// release stops renewing and deletes the lease if it is still ours.
func (l *lease) release() {
	if l == nil {
		return
	}
	lost := l.Lost() != nil
	l.cancel()
	<-l.done
	if lost {
		return // not ours any more
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases := l.kube.CoordinationV1().Leases(leaseNamespace)
	_ = kube.Retry(ctx, func() error {
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

func deref32(n *int32) int32 {
	if n == nil {
		return 0
	}
	return *n
}

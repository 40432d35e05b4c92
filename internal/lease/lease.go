// Package lease makes one ks-clean run at a time write to a cluster: a
// coordination Lease in kube-system, taken before the first write, renewed
// while the run lasts and released at its end. apply, restore, reinstall and
// tenancy import share it, and a run takes it once for all it does on a
// cluster (every stage of a plan, uninstall through import).
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
)

const (
	// Name and Namespace of the Lease.
	Name      = "ks-clean"
	Namespace = "kube-system"
)

// Defaults of Options.
const (
	DefaultDuration = 60 * time.Second
	DefaultCheck    = 2 * time.Second
)

// Options of a Lease.
type Options struct {
	// Duration is how long the Lease lasts unrenewed; Check how often it
	// is read to notice a loss. Zero: the defaults.
	Duration, Check time.Duration
}

// LostError says a run lost the cluster's Lease while it ran. It issued no
// write after At.
type LostError struct {
	// Holder is who holds the Lease now ("" when it is gone or could not be
	// read).
	Holder string
	// At is when the loss was noticed.
	At  time.Time
	Why string
}

func (e *LostError) Error() string {
	who := "another holder"
	if e.Holder != "" {
		who = e.Holder
	}
	return fmt.Sprintf("%v (Lease %s/%s: %s; now held by %s)", api.ErrLeaseLost, Namespace, Name, e.Why, who)
}

func (e *LostError) Unwrap() error { return api.ErrLeaseLost }

// Lease is the cluster's Lease, held by this process.
//
// client-go's leaderelection is not used: it waits to acquire where a run
// must refuse at once, and after another holder takes over it goes on
// leading until its renew deadline, while a run must stop writing as soon
// as it notices. Here the Lease is read every check interval and renewed
// every third of its duration; the context is cancelled the moment the
// Lease is seen held by another, or could not be renewed before it expired.
type Lease struct {
	kube     kubernetes.Interface
	holder   string
	duration time.Duration
	check    time.Duration

	// ctx is cancelled when the lease is lost, halted or released: every
	// write runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	local  *localMark

	mu   sync.Mutex
	lost *LostError
	// halted is why writes stopped while the Lease is still held (the
	// deletion guard's tripwire).
	halted error
}

// Holder is this process's identity in the Lease: host, pid and a random
// part, so that two processes never share one (another machine of the same
// host name, a pid reused after a crash, two containers with pid 1).
var Holder = func() string {
	host, _ := os.Hostname()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}()

// Acquire takes the cluster's Lease, or refuses at once (an api.Refusal,
// FixWait) while another run holds it. A Lease whose holder was a process
// of this machine and user that died (a crash or SIGKILL: its local mark is
// no longer locked) is taken over without waiting for it to expire.
func Acquire(ctx context.Context, kc kubernetes.Interface, o Options) (*Lease, error) {
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Check <= 0 {
		o.Check = DefaultCheck
	}
	l := &Lease{kube: kc, holder: Holder, duration: o.Duration, check: o.Check}
	leases := kc.CoordinationV1().Leases(Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(o.Duration / time.Second)
	spec := coordinationv1.LeaseSpec{HolderIdentity: &l.holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}
	err := kube.Retry(ctx, func() error {
		_, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: Name}, Spec: spec}, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		var cur *coordinationv1.Lease
		gerr := kube.Retry(ctx, func() (err error) {
			cur, err = leases.Get(ctx, Name, metav1.GetOptions{})
			return err
		})
		if gerr != nil {
			return nil, fmt.Errorf("read Lease %s/%s: %w", Namespace, Name, gerr)
		}
		// This process's own Lease is left by a run of it that ended
		// without releasing it (tests run many); taking it over is safe.
		if h := ptr.Deref(cur.Spec.HolderIdentity, ""); held(cur) && h != l.holder && !deadLocalHolder(h) {
			return nil, api.Refuse(api.FixWait, "another ks-clean run holds the cluster (Lease %s/%s, holder %s, renewed %s ago): wait for it to finish; if it died, the lease expires %s after its last renewal",
				Namespace, Name, h, time.Since(cur.Spec.RenewTime.Time).Round(time.Second), time.Duration(ptr.Deref(cur.Spec.LeaseDurationSeconds, 0))*time.Second)
		}
		cur.Spec = spec
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{}) // resourceVersion guards the takeover
		if apierrors.IsConflict(err) {
			return nil, api.Refuse(api.FixWait, "another ks-clean run took Lease %s/%s at the same moment: wait for it to finish", Namespace, Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("take Lease %s/%s: %w", Namespace, Name, err)
	}
	l.local = markLocal(nonce(l.holder))
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.done = make(chan struct{})
	go l.keep(now.Time)
	return l, nil
}

// deadLocalHolder: the holder was a process of this machine and user that
// is gone; waiting for its lease to expire would only delay the resume.
func deadLocalHolder(holder string) bool {
	n := nonce(holder)
	return n != "" && localHolderDead(n)
}

// nonce is the random part of a holder identity; "" for an older
// ks-clean's or another program's (those are waited for until they expire).
func nonce(holder string) string {
	parts := strings.Split(holder, "/")
	if len(parts) != 3 {
		return ""
	}
	return parts[2]
}

func held(l *coordinationv1.Lease) bool {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	return time.Since(l.Spec.RenewTime.Time) < time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second
}

// keep checks the Lease every check interval and renews it every third of
// its duration, until it is released or lost.
func (l *Lease) keep(renewed time.Time) {
	defer close(l.done)
	leases := l.kube.CoordinationV1().Leases(Namespace)
	wait.UntilWithContext(l.ctx, func(ctx context.Context) {
		rctx, cancel := context.WithTimeout(ctx, l.check+5*time.Second)
		defer cancel()
		cur, err := leases.Get(rctx, Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			l.lose("", "it was deleted")
			return
		case err == nil && ptr.Deref(cur.Spec.HolderIdentity, "") != l.holder:
			l.lose(ptr.Deref(cur.Spec.HolderIdentity, ""), "another holder took it")
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
		// Not renewed: once it may have expired, another run may take it.
		if time.Since(renewed) > l.duration-l.check {
			l.lose("", fmt.Sprintf("not renewed for %s (%v)", time.Since(renewed).Round(time.Second), err))
		}
	}, l.check)
}

func (l *Lease) lose(holder, why string) {
	l.cancel() // first: no write starts once the loss is recorded
	l.mu.Lock()
	if l.lost == nil {
		l.lost = &LostError{Holder: holder, At: time.Now(), Why: why}
	}
	l.mu.Unlock()
}

// Context is cancelled the moment the Lease is lost or writes are halted:
// every write runs under it.
func (l *Lease) Context() context.Context { return l.ctx }

// Halt stops every write, as a lost Lease does, for another reason; the
// Lease stays this run's and is released as usual.
func (l *Lease) Halt(err error) {
	l.cancel()
	l.mu.Lock()
	if l.halted == nil {
		l.halted = err
	}
	l.mu.Unlock()
}

// Stopped returns why writes stopped (the Lease lost, or a halt), or nil.
// A nil Lease (a dry run holds none) never stops.
func (l *Lease) Stopped() error {
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

// Lost returns the loss (a *LostError), or nil while the lease is held.
func (l *Lease) Lost() error {
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

// Release stops renewing and deletes the lease if it is still ours.
func (l *Lease) Release() {
	if l == nil {
		return
	}
	lost := l.Lost() != nil
	l.cancel()
	<-l.done
	defer l.local.release()
	if lost {
		return // not ours any more
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases := l.kube.CoordinationV1().Leases(Namespace)
	_ = kube.Retry(ctx, func() error {
		cur, err := leases.Get(ctx, Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && ptr.Deref(cur.Spec.HolderIdentity, "") != l.holder) {
			return nil // gone, or taken over after ours expired
		}
		if err != nil {
			return err
		}
		uid := cur.UID
		err = leases.Delete(ctx, Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

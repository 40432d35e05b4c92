package kube

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/pager"
)

// Backoff for transient API failures: about 10 s in all.
var Backoff = wait.Backoff{Steps: 6, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Cap: 5 * time.Second}

// Retriable: throttling, server trouble, timeouts, dropped connections.
// Refusals by a webhook without a backend are not: they will not pass by
// themselves. Neither is the end of the caller's context.
func Retriable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "failed calling webhook") {
		return false
	}
	var ne net.Error
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		errors.As(err, &ne) || utilnet.IsConnectionReset(err) || utilnet.IsConnectionRefused(err) || utilnet.IsProbableEOF(err)
}

// Retry runs fn until it succeeds, fails for good, Backoff runs out or ctx
// ends (then ctx's error is returned: a Ctrl-C is not waited out).
func Retry(ctx context.Context, fn func() error) error { return RetryIf(ctx, Retriable, fn) }

// RetryIf is Retry with its own test of what is worth another try. Unlike
// client-go's retry.OnError, it never turns a failure into success: OnError
// returns nil when fn's first error is a context error (wait.Interrupted
// takes it for its own timeout), which would count a write cancelled by a
// lost Lease as done.
func RetryIf(ctx context.Context, retriable func(error) bool, fn func() error) error {
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, Backoff, func(context.Context) (bool, error) {
		last = fn()
		switch {
		case last == nil:
			return true, nil
		case retriable(last):
			return false, nil
		}
		return false, last
	})
	if wait.Interrupted(err) && last != nil && ctx.Err() == nil {
		return last // Backoff ran out: the last failure says why
	}
	return err
}

// Pager pages through a list, each page retried on transient failures
// (Retry), so one dropped page does not fail a whole inventory.
func Pager(list func(context.Context, metav1.ListOptions) (runtime.Object, error)) *pager.ListPager {
	return pager.New(func(ctx context.Context, opts metav1.ListOptions) (obj runtime.Object, err error) {
		err = Retry(ctx, func() error { obj, err = list(ctx, opts); return err })
		return obj, err
	})
}

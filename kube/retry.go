package kube

import (
	"errors"
	"net"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// Backoff for transient API failures: about 10 s in all.
var Backoff = wait.Backoff{Steps: 6, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Cap: 5 * time.Second}

// Retriable: throttling, server trouble, timeouts, dropped connections.
// Refusals by a webhook without a backend are not: they will not pass by
// themselves.
func Retriable(err error) bool {
	if err == nil || strings.Contains(err.Error(), "failed calling webhook") {
		return false
	}
	var ne net.Error
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		errors.As(err, &ne) || strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
}

// Retry runs fn until it succeeds, fails for good, or Backoff runs out.
func Retry(fn func() error) error { return retry.OnError(Backoff, Retriable, fn) }

package kube

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
)

// A write cancelled by its context is a failure, never a success: client-go's
// retry.OnError returns nil for it (found by the lost-Lease test).
func TestRetryKeepsAContextError(t *testing.T) {
	canceled := &url.Error{Op: "Patch", URL: "https://x", Err: context.Canceled}
	calls := 0
	err := Retry(context.Background(), func() error { calls++; return canceled })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("Retry of a cancelled request: %v after %d calls, want the cancellation after 1", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Retry(ctx, func() error { return fmt.Errorf("wrapped: %w", canceled) }); err == nil {
		t.Fatal("Retry with an ended context returned nil")
	}
	calls = 0
	err = RetryIf(context.Background(), func(error) bool { return true }, func() error {
		calls++
		if calls < 3 {
			return errors.New("transient")
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("transient failures: %v after %d calls", err, calls)
	}
}

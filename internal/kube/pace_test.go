package kube

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// The bound halves when the server throttles (once per burst of 429s),
// grows back by one per bound's worth of good answers, never passes its
// ceiling, and Acquire waits under it.
func TestPaceAdapts(t *testing.T) {
	p := NewPace(32)
	too := &http.Response{StatusCode: http.StatusTooManyRequests}
	ok := &http.Response{StatusCode: http.StatusOK}
	for range 10 { // one burst: the in-flight requests all see it
		p.observe(too)
	}
	if got := p.Limit(); got != 16 {
		t.Fatalf("after a burst of 429s: bound %d, want 16", got)
	}
	p.cutAt = time.Now().Add(-time.Second) // the next burst, later
	p.observe(&http.Response{StatusCode: http.StatusServiceUnavailable})
	if got := p.Limit(); got != 8 {
		t.Fatalf("after a 503 a second later: bound %d, want 8", got)
	}
	for range 8 {
		p.observe(ok)
	}
	if got := p.Limit(); got != 9 {
		t.Fatalf("after 8 good answers at bound 8: %d, want 9", got)
	}
	for range 10000 {
		p.observe(ok)
	}
	if got := p.Limit(); got != 32 {
		t.Fatalf("recovered to %d, want the ceiling 32", got)
	}
	if th, low := p.Stats(); th != 11 || low != 8 {
		t.Fatalf("stats: %d throttles, low %d; want 11 and 8", th, low)
	}

	f := NewPace(4)
	f.Fix()
	f.observe(too)
	if f.Limit() != 4 {
		t.Fatalf("a fixed pace moved to %d", f.Limit())
	}

	// Acquire blocks at the bound and honours its context.
	q := NewPace(1)
	if err := q.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Acquire(ctx); err == nil {
		t.Fatal("a second Acquire at bound 1 did not wait")
	}
	q.Release()
	if err := q.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
}

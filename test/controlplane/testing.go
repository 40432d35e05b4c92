package controlplane

import (
	"context"
	"testing"
)

// StartT starts a control plane for a test and stops it when the test ends.
// Missing binaries fail the test: a suite that skips for want of its control
// plane proves nothing.
func StartT(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if testing.Short() {
		// make test-short: the fast tier (unit, golden and recorded
		// tests) runs; everything that needs a cluster is make test's.
		t.Skip("needs a control plane: not in -short")
	}
	cp, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Logf("stopping control plane: %v", err)
		}
	})
	return cp
}

// NoWritesSince fails t if user's requests after mark changed stored state,
// and if the instrument cannot tell: the audit log unreadable, or holding no
// request of user's at all (audit off, or the wrong user name), which would
// pass any check of "no writes".
func (cp *ControlPlane) NoWritesSince(t testing.TB, mark int, user, what string) {
	t.Helper()
	events, err := cp.EventsSince(mark, user)
	if err != nil {
		t.Fatalf("%s: read the audit log: %v", what, err)
	}
	if len(events) == 0 {
		t.Fatalf("%s: the audit log holds no request of %s since the mark: the no-write check cannot see anything", what, user)
	}
	writes, err := cp.PersistedWritesSince(mark, user)
	if err != nil {
		t.Fatalf("%s: read the audit log: %v", what, err)
	}
	for i, w := range writes {
		if i == 5 {
			t.Errorf("%s: and %d more writes", what, len(writes)-5)
			break
		}
		t.Errorf("%s wrote: %s %s", what, w.Verb, w.RequestURI)
	}
}

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
// and if the instrument cannot tell: a control plane without its audit log,
// or a log that cannot be read, would pass any check of "no writes". (No
// request at all is fine: a plan refused before connecting makes none.)
func (cp *ControlPlane) NoWritesSince(t testing.TB, mark int, user, what string) {
	t.Helper()
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

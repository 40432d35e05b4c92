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

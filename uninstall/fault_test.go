package uninstall_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/test/faultproxy"
	"github.com/ks-clean/ks-clean/uninstall"
)

// Property: with the API answering 429/500/503, resetting connections and
// slowing down on a seeded schedule, apply either converges or stops with a
// resumable journal; once the faults stop, a second apply converges; and in
// every run no user object is lost. KS_FAULT_SEEDS sets how many seeds
// (default 3, make test's; make test-long runs 100).
func TestApplyUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("needs control planes: not in -short")
	}
	seeds := 3
	if v, err := strconv.Atoi(os.Getenv("KS_FAULT_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	converged, ran, survivedDrops := 0, 0, 0
	for seed := int64(1); seed <= int64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			ran++
			e := setup(t, "incident")
			px, err := faultproxy.Start(e.cfg, seed, 0.15)
			if err != nil {
				t.Fatal(err)
			}
			defer px.Close()
			c, err := kube.New(px.Config())
			if err != nil {
				t.Fatal(err)
			}
			a := &uninstall.Apply{Clients: clientsFor(e.plan, c), Plan: e.plan, PlanPath: e.dir + "/plan.json"}
			first, faultErr := a.Run(context.Background())
			e.assertNothingLost(t)
			if faultErr == nil && first.Verification != nil && first.Verification.OK {
				converged++
			}

			px.Enable(false)
			res, err := e.apply(t, e.plan, uninstall.Options{})
			if err != nil || !res.Verification.OK {
				t.Fatalf("after the faults stopped, apply did not converge: %v %+v", err, failed(res))
			}
			e.assertNothingLost(t)
			t.Logf("faults %+v; first run: %v", px.Faults(), faultErr)
			f := px.Faults()
			if f.TooMany+f.Internal+f.Unavailable+f.Reset+f.Slow == 0 {
				t.Fatalf("no fault was injected: the test proves nothing")
			}
			// The proxy drops every watch stream. apply's waits watch, and
			// poll a type whose watch failed: a dropped stream must not
			// stall them, so the runs that converged prove the fallback.
			if f.WatchDropped > 0 && faultErr == nil && first.Verification != nil && first.Verification.OK {
				survivedDrops++
			}
		})
	}
	if survivedDrops == 0 {
		t.Fatalf("no run converged with its watch streams dropped: the waits' fallback to polling is not proven")
	}
	// Retries must carry most runs through: a run that only ever stopped
	// at the first fault would pass the checks above without proving them.
	if converged*2 < ran {
		t.Fatalf("only %d of %d runs converged under faults", converged, ran)
	}
	t.Logf("%d of %d runs converged under faults, %d of them with their watch streams dropped", converged, ran, survivedDrops)
}

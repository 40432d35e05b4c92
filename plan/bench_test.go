package plan_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// BenchmarkPlan scans and plans a KubeSphere 3.3 host with many workspace
// namespaces (KS_BENCH_NAMESPACES, default 2000: about 20,000 objects) on a
// real control plane, and reports API requests and allocations per plan.
func BenchmarkPlan(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("KS_BENCH_NAMESPACES")); err == nil && v > 0 {
		n = v
	}
	// Seeded once: a parent benchmark with sub-benchmarks runs once, while
	// each sub-benchmark body runs again for every b.N tried.
	ctx := context.Background()
	cp := controlplane.StartT(b, controlplane.Options{NoControllerManager: true})
	s, err := fixture.NewSeeder(cp.Config)
	if err != nil {
		b.Fatal(err)
	}
	perWS := 100
	start := time.Now()
	if err := fixture.KS33Host(ctx, s, fixture.Options{Workspaces: (n + perWS - 1) / perWS, NamespacesPerWorkspace: perWS}); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d KubeSphere/KubeFed objects and %d user objects in %s",
		len(s.Seeded.Footprint), len(s.Seeded.Protected), time.Since(start).Round(time.Second))

	b.Run(fmt.Sprintf("namespaces=%d", n), func(b *testing.B) {
		var requests, objects, steps int
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c, err := kube.New(cp.Config)
			if err != nil {
				b.Fatal(err)
			}
			rep, err := scan.Run(ctx, []scan.Target{{Clients: c}}, scan.Options{})
			if err != nil {
				b.Fatal(err)
			}
			res := rep.Host()
			p, err := plan.Build(rep, plan.Options{})
			if err != nil {
				b.Fatal(err)
			}
			requests += c.Requests.Total()
			objects, steps = len(res.Footprint.Inv.Objects), len(p.Stages[0].Steps)
			if i == 0 {
				b.Logf("requests by verb: %s", c.Requests)
			}
		}
		b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
		b.ReportMetric(float64(objects), "objects")
		b.ReportMetric(float64(steps), "steps")
	})
}

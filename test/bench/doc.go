// Package bench holds `make bench`'s teardown benchmark (bench_test.go): on
// identically seeded real control planes it measures ks-clean's plan and
// apply against the floor (the plan's own writes issued directly with
// client-go) and a baseline in the official 3.x script's style (one kubectl
// process per object, sequential). docs/benchmarks.md has the results.
package bench

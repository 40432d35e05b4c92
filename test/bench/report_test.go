package bench

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// renderTables is the markdown docs/benchmarks.md quotes.
func renderTables(rows []*row) string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	secs := func(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	perObj := func(d time.Duration, r *row) float64 { return float64(d.Microseconds()) / float64(r.objects()) }
	first := rows[0]

	w("**Time** (seconds, wall; µs/object = time ÷ seeded objects; scaling = µs/object ÷ the same at %d namespaces)\n\n", first.N)
	w("| namespaces | objects | plan s | plan µs/obj | plan scaling | apply s | apply µs/obj | apply scaling | floor s | apply ÷ floor | baseline s | baseline ÷ apply |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		base, baseRatio := "not run", "–"
		if r.Baseline != nil {
			base, baseRatio = secs(r.BaselineTime), ratio(r.BaselineTime.Seconds(), r.Apply.Wall.Seconds())
		}
		w("| %d | %d | %s | %.0f | %s | %s | %.0f | %s | %s | %s | %s | %s |\n",
			r.N, r.objects(), secs(r.Plan.Wall), perObj(r.Plan.Wall, r), ratio(perObj(r.Plan.Wall, r), perObj(first.Plan.Wall, first)),
			secs(r.Apply.Wall), perObj(r.Apply.Wall, r), ratio(perObj(r.Apply.Wall, r), perObj(first.Apply.Wall, first)),
			secs(r.Floor), ratio(r.Apply.Wall.Seconds(), r.Floor.Seconds()), base, baseRatio)
	}

	for _, r := range rows {
		var tried []string
		for _, c := range sortedKeys(r.FloorTried) {
			tried = append(tried, fmt.Sprintf("%d: %s s", c, secs(r.FloorTried[c])))
		}
		w("\nFloor at %d namespaces: %d writes in flight, no client-side rate limit (tried %s).\n", r.N, r.FloorConcurrency, strings.Join(tried, ", "))
	}

	w("\n**Persisted writes** (audit log, the contender's own user; least needed as defined below)\n\n")
	w("| namespaces | least needed (scale + detach + delete + finalizer) | ks-clean | ks-clean ÷ least | ks-clean by verb | floor | baseline |\n")
	w("|---:|---|---:|---:|---|---:|---:|\n")
	for _, r := range rows {
		l := r.Least
		base := "not run"
		if r.Baseline != nil {
			base = fmt.Sprint(r.BaselineWrites)
		}
		w("| %d | %d (%d + %d + %d + %d) | %d | %s | %s | %d | %s |\n", r.N, l.Total(), l.Scale, l.Detach, l.Delete, l.Finalizer,
			sum(r.Writes), ratio(float64(sum(r.Writes)), float64(l.Total())), verbs(r.Writes), r.FloorWrites, base)
	}

	w("\n**API requests by verb** (audit log, completed requests; object GETs = GETs of one named object)\n\n")
	w("| namespaces | plan | plan object GETs | apply | apply object GETs | floor |\n")
	w("|---:|---|---:|---|---:|---|\n")
	for _, r := range rows {
		w("| %d | %s | %d | %s | %d | %s |\n", r.N, verbs(r.PlanVerbs), r.PlanGets, verbs(r.ApplyVerbs), r.ApplyGets, verbs(r.FloorVerbs))
	}

	w("\n**Peak RSS and outcome**\n\n")
	w("| namespaces | plan steps | ks-clean plan RSS MiB | ks-clean apply RSS MiB | kubectl RSS MiB (max of processes) | kubectl processes (failed) | users' objects lost: ks-clean / floor / baseline | footprint left: ks-clean / floor / baseline | 1-min load at end of plan / apply / floor / baseline |\n")
	w("|---:|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, r := range rows {
		krss, kproc := "not run", "not run"
		bl, bf := "–", "–"
		if r.Baseline != nil {
			krss = fmt.Sprint(r.Baseline.MaxRSSKiB / 1024)
			kproc = fmt.Sprintf("%d (%d)", r.Baseline.Processes, r.Baseline.Failed)
			bl, bf = fmt.Sprint(r.BaselineOutcome.Lost), fmt.Sprint(r.BaselineOutcome.Left)
		}
		load := strings.Join(r.Load[:], " / ")
		if r.Baseline == nil {
			load = strings.Join(r.Load[:3], " / ") + " / –"
		}
		w("| %d | %d | %d | %d | %s | %s | %d / %d / %s | %d / %d / %s | %s |\n", r.N, r.Steps, r.Plan.MaxRSSKiB/1024, r.Apply.MaxRSSKiB/1024,
			krss, kproc, r.Outcome.Lost, r.FloorOutcome.Lost, bl, r.Outcome.Left, r.FloorOutcome.Left, bf, load)
	}
	return sb.String()
}

// verbs is e.g. "get 12, list 90".
func verbs(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[int]time.Duration) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

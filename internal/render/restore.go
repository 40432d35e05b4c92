package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/restore"
)

// RestorePlan summarizes a restore plan: per stage, what each tier
// creates or scales, the conflicts left alone and what stays as apply left
// it.
func RestorePlan(p *api.RestorePlan) string {
	var lines []string
	for _, st := range p.Stages {
		n := map[api.Tier]int{}
		for _, s := range st.Steps {
			n[s.Tier]++
		}
		var parts []string
		for _, t := range api.Tiers {
			if n[t] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", t, n[t]))
			}
		}
		lines = append(lines, fmt.Sprintf("Restore %s (%s) from %s: %d steps (%s); %d conflicts left alone; %d kept as apply left them.",
			st.Name, st.Cluster.Context, st.Dir, len(st.Steps), strings.Join(parts, ", "), len(st.Conflicts), len(st.Kept)))
		for _, c := range st.Conflicts {
			lines = append(lines, fmt.Sprintf("  conflict: %s: %s", c.Object, c.Reason))
		}
		for _, k := range st.Kept {
			lines = append(lines, fmt.Sprintf("  kept: %s: %s", k.Object, k.Reason))
		}
	}
	return strings.Join(lines, "\n")
}

// Restore prints a restore's outcome.
func Restore(w io.Writer, res *restore.Result, p *api.RestorePlan) {
	fmt.Fprintln(w, RestorePlan(p))
	for _, st := range res.Stages {
		for _, s := range st.Steps {
			if s.Status == restore.StatusFailed || s.Status == restore.StatusConflict {
				fmt.Fprintf(w, "  %s %s %s: %s\n", s.Status, s.Action, s.Target, s.Detail)
			}
		}
	}
	verb := "restored"
	if res.DryRun {
		verb = "dry run: would restore"
	}
	fmt.Fprintf(w, "%s: %d created or scaled, %d present already, %d conflicts, %d failed, in %.1fs\n", verb, res.Created, res.Skipped, res.Conflicts, res.Failed, res.DurationSeconds)
	if v := res.Verification; v != nil {
		if v.OK {
			fmt.Fprintln(w, "verified: every object restored is there, every object apply kept has its UID")
		} else {
			for _, p := range v.Problems {
				fmt.Fprintf(w, "  problem: %s\n", p)
			}
		}
	}
}

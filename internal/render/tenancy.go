package render

import (
	"fmt"
	"io"
	"sort"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/tenancy"
)

// TenancySummary is one line on what an export holds.
func TenancySummary(t *api.Tenancy) string {
	n := map[string]int{}
	for _, o := range t.Objects {
		n[o.GetKind()]++
	}
	kinds := make([]string, 0, len(n))
	for k := range n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	s := fmt.Sprintf("KubeSphere %s.x tenancy: %d objects (", t.KubeSphere, len(t.Objects))
	for i, k := range kinds {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, n[k])
	}
	pw := "without password hashes"
	if t.Passwords {
		pw = "with password hashes"
	}
	return s + fmt.Sprintf("), %d namespaces in workspaces, %s.", len(t.Namespaces), pw)
}

// TenancyImport prints an import's outcome: counts, then every conflict and
// missing namespace.
func TenancyImport(w io.Writer, r *tenancy.ImportResult) {
	verb := "Imported"
	if r.DryRun {
		verb = "Dry run (nothing stored)"
	}
	fmt.Fprintf(w, "%s: %d objects created, %d present already, %d conflicts left alone, %d not created (namespace missing); namespaces: %d put back in their workspaces.\n", verb,
		r.Counts[tenancy.StatusCreated]+r.Counts[tenancy.StatusWouldCreate], r.Counts[tenancy.StatusPresent], r.Counts[tenancy.StatusConflict], r.Counts[tenancy.StatusMissing],
		r.NamespaceCounts[tenancy.StatusCreated]+r.NamespaceCounts[tenancy.StatusWouldCreate])
	for _, o := range r.Objects {
		if o.Status == tenancy.StatusConflict || o.Detail != "" {
			fmt.Fprintf(w, "  %s: %s %s: %s\n", o.Status, o.Object.Kind, o.Object.Name, o.Detail)
		}
	}
	for _, n := range r.Namespaces {
		if n.Status == tenancy.StatusConflict || n.Status == tenancy.StatusMissing {
			fmt.Fprintf(w, "  %s: namespace %s (workspace %s): %s\n", n.Status, n.Namespace, n.Workspace, n.Detail)
		}
	}
	if r.Note != "" {
		fmt.Fprintln(w, r.Note)
	}
}

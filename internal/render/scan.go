package render

import (
	"fmt"
	"io"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan"
)

// Scan prints a scan: each cluster's header, findings, notes and summary,
// then, for a host with members, the findings across the clusters.
func (s Style) Scan(w io.Writer, rep *scan.Report) {
	multi := len(rep.Clusters) > 1
	for i, res := range rep.Clusters {
		if i > 0 {
			fmt.Fprintln(w)
		}
		s.Header(w, res.Cluster, res.KubeSphere)
		findings := res.Findings
		if !multi {
			// A host scanned alone still reports its records of other
			// clusters.
			findings = append(append([]api.Finding(nil), findings...), rep.Findings...)
		}
		s.Findings(w, findings)
		for _, note := range res.Warnings {
			fmt.Fprintf(w, "note: %s\n", note)
		}
		if !multi {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s\n", scanSummary(res))
	}
	if multi {
		fmt.Fprintf(w, "\nAcross the clusters:")
		s.Findings(w, rep.Findings)
	}
}

func scanSummary(res *scan.Result) string {
	n := res.ClusterReport.Footprint
	if res.Footprint.Empty() {
		return "Nothing of KubeSphere or KubeFed found."
	}
	kept := ""
	if n.Volumes > 0 {
		kept += fmt.Sprintf("; %d PersistentVolumes to retain", n.Volumes)
	}
	if n.Kept > 0 {
		kept += fmt.Sprintf("; %d kept although they look like KubeSphere's (kept-* findings)", n.Kept)
	}
	return fmt.Sprintf("Footprint: %d KubeSphere/KubeFed objects, %d system namespaces, %d Helm releases; %d user objects tied to it (to detach)%s. Next: ks-clean plan --out plan.json",
		n.Objects, n.SystemNamespaces, n.HelmReleases, n.Detach, kept)
}

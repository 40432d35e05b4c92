package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/reinstall"
	"github.com/ks-clean/ks-clean/uninstall"
)

// Apply prints an apply's result: failed and skipped steps, a line a stage,
// and the verification.
func Apply(w io.Writer, r *uninstall.Result, p *api.Plan) {
	if r == nil {
		return
	}
	mode := "Applied"
	if r.DryRun {
		mode = "Dry run"
	}
	multi := len(p.Stages) > 1
	for i, st := range r.Stages {
		if multi {
			fmt.Fprintf(w, "Stage %s (context %s):\n", st.Name, st.Context)
		}
		var retained []string
		for _, s := range st.Steps {
			if s.Status == uninstall.StatusFailed || (s.Status == uninstall.StatusSkipped && s.Action != api.ActionWait && s.Detail != "done in an earlier run") {
				fmt.Fprintf(w, "  %-7s %s %s: %s\n", s.Status, s.Action, s.Target, s.Detail)
			}
			if s.Action == api.ActionRetain && s.Status == uninstall.StatusDone {
				retained = append(retained, s.Target.Name+" ("+s.Detail+")")
			}
		}
		if len(retained) > 0 {
			fmt.Fprintf(w, "Retained PersistentVolumes (their data outlives the claims; see docs/safety-model.md to bind them again): %s\n", strings.Join(retained, "; "))
		}
		dur := ""
		if !multi {
			dur = " in " + r.Duration().String()
		}
		fmt.Fprintf(w, "%s: %d steps done, %d skipped, %d failed%s; backup of %d objects in %s\n",
			mode, st.Done, st.Skipped, st.Failed, dur, st.BackedUp, st.BackupDir)
		switch {
		case st.GuardKept:
			fmt.Fprintf(w, "Guard kept: the admission policy %s still refuses deleting the protected namespaces and retained volumes, because the garbage collector would delete those still owned by what was deleted (%s). Run 'ks-clean plan' again and apply the new plan: it detaches them and removes the guard.\n", uninstall.GuardName, strings.Join(st.Verification.AtRisk, ", "))
		case st.Guard == uninstall.GuardPolicy:
			fmt.Fprintf(w, "Guarded: while it ran, an admission policy (%s) refused any deletion of the protected namespaces and retained volumes, the garbage collector's included.\n", uninstall.GuardName)
		case st.Guard == uninstall.GuardTripwire:
			fmt.Fprintf(w, "Guarded by a tripwire: this server has no ValidatingAdmissionPolicy API (Kubernetes 1.30+) to refuse deletes, so apply watched the protected namespaces and retained volumes, ready to stop every write the moment one was being deleted.\n")
		case st.Guard == uninstall.GuardNone:
			fmt.Fprintf(w, "Not guarded: nothing was protected.\n")
		}
		if v := st.Verification; v != nil {
			verification(w, v, &p.Stages[i])
		}
	}
	if multi {
		fmt.Fprintf(w, "%s: %d stages, %d steps done, %d skipped, %d failed in %s\n", mode, len(r.Stages), r.Done, r.Skipped, r.Failed, r.Duration())
	}
}

func verification(w io.Writer, v *uninstall.Verification, st *api.Stage) {
	if !v.OK {
		fmt.Fprintf(w, "Verification failed (%d remaining):\n", v.Remaining)
		for _, p := range v.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
		return
	}
	fmt.Fprintf(w, "Verified: nothing of KubeSphere/KubeFed remains; all %d protected objects present with their UIDs.\n", v.ProtectedChecked)
	var kept []string
	for _, r := range st.Protected {
		if r.Kind == "Namespace" {
			kept = append(kept, r.Name)
		}
	}
	if len(kept) > 20 {
		kept = append(kept[:20], fmt.Sprintf("and %d more", len(kept)-20))
	}
	fmt.Fprintf(w, "Namespaces kept: %s\n", strings.Join(kept, ", "))
}

// Reinstall prints a reinstall's result.
func Reinstall(w io.Writer, res *reinstall.Result, dryRun bool) {
	if res == nil {
		return
	}
	if res.PlanPath != "" {
		fmt.Fprintf(w, "Uninstall plan: %s (%d steps)\n", res.PlanPath, res.Steps)
	}
	if res.TenancyFile != "" {
		fmt.Fprintf(w, "Tenancy export: %s\n", res.TenancyFile)
	}
	if c := res.Chart; c != nil {
		prov := "provenance not verified (--verify)"
		if c.Verified {
			prov = "provenance verified"
			if len(c.SignedBy) > 0 {
				prov += ", signed by " + strings.Join(c.SignedBy, ", ")
			}
		}
		fmt.Fprintf(w, "Chart: %s %s from %s, %s (of the %s); %s\n", c.Name, c.Version, c.Reference, c.Digest, c.DigestOf, prov)
	}
	if dryRun {
		if res.Manifest != "" {
			fmt.Fprintf(w, "Dry run: nothing changed. The install would create:\n%s\n", res.Manifest)
		}
		return
	}
	if u := res.Uninstall; u != nil {
		for _, st := range u.Stages {
			name := ""
			if len(u.Stages) > 1 {
				name = fmt.Sprintf(" stage %s (context %s)", st.Name, st.Context)
			}
			fmt.Fprintf(w, "Uninstall%s: %d steps done, %d skipped, %d failed; backup in %s\n", name, st.Done, st.Skipped, st.Failed, st.BackupDir)
		}
	}
	fmt.Fprintf(w, "Clean: %v\n", res.Clean)
	if r := res.Release; r != nil {
		fmt.Fprintf(w, "Installed: %s/%s revision %d, chart %s %s (app %s), %s\n", r.Namespace, r.Name, r.Revision, r.Chart, r.ChartVersion, r.AppVersion, r.Status)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	if res.Healthy {
		fmt.Fprintln(w, "Healthy: release deployed, no critical finding, one record per cluster.")
	}
	if res.Tenancy != nil {
		TenancyImport(w, res.Tenancy)
	}
}

// Package render prints scans and plans for people: findings first, then the
// plan phase by phase, then a one-line summary, the way `terraform plan`
// reads. Colour only on a terminal, never with NO_COLOR.
package render

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ks-clean/ks-clean/api"
)

// Style decides colour and how many objects each phase lists.
type Style struct {
	Color bool
	// PerPhase is how many steps a phase lists before "… and N more"
	// (0: all).
	PerPhase int
}

// StyleFor picks colour for a writer: only a terminal (not TERM=dumb), and
// not with NO_COLOR.
func StyleFor(w io.Writer) Style {
	st := Style{PerPhase: 40}
	if _, ok := isTerminal(w); ok {
		st.Color = os.Getenv("NO_COLOR") == "" // no-color.org: set and not empty
	}
	return st
}

func (s Style) paint(code, text string) string {
	if !s.Color {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s Style) red(t string) string    { return s.paint("31", t) }
func (s Style) yellow(t string) string { return s.paint("33", t) }
func (s Style) green(t string) string  { return s.paint("32", t) }
func (s Style) bold(t string) string   { return s.paint("1", t) }
func (s Style) dim(t string) string    { return s.paint("2", t) }

// Header prints the cluster and what was detected.
func (s Style) Header(w io.Writer, c api.Cluster, ks api.KubeSphere) {
	ctx := c.Context
	if ctx == "" {
		ctx = "(none)"
	}
	fmt.Fprintf(w, "%s %s  context %s  kube-system %s\n", s.bold("Cluster"), c.Server, ctx, c.UID)
	switch ks.Role {
	case api.RoleAbsent:
		fmt.Fprintf(w, "%s not found\n", s.bold("KubeSphere"))
	case api.RoleLeftovers:
		fmt.Fprintf(w, "%s not installed, but pieces of KubeSphere/KubeFed remain\n", s.bold("KubeSphere"))
	default:
		fmt.Fprintf(w, "%s %s, multi-cluster role %s\n", s.bold("KubeSphere"), orUnknown(ks.Version), ks.Role)
	}
}

func orUnknown(v string) string {
	if v == "" {
		return "(version unknown)"
	}
	return v
}

// Findings prints the findings, most severe first.
func (s Style) Findings(w io.Writer, fs []api.Finding) {
	if len(fs) == 0 {
		fmt.Fprintf(w, "\n%s\n", s.green("No hazards found."))
		return
	}
	counts := map[api.Severity]int{}
	for _, f := range fs {
		counts[f.Severity]++
	}
	fmt.Fprintf(w, "\n%s (%d critical, %d warning, %d info)\n", s.bold("Findings"), counts[api.Critical], counts[api.Warning], counts[api.Info])
	for _, f := range fs {
		mark := s.dim("i info    ")
		switch f.Severity {
		case api.Critical:
			mark = s.red("✗ critical")
		case api.Warning:
			mark = s.yellow("! warning ")
		}
		fmt.Fprintf(w, "  %s  %s\n      %s\n", mark, s.bold(f.ID), f.Message)
		for i, o := range f.Objects {
			if i == 5 && len(f.Objects) > 6 {
				fmt.Fprintf(w, "      %s\n", s.dim(fmt.Sprintf("… and %d more objects", len(f.Objects)-5)))
				break
			}
			fmt.Fprintf(w, "      %s %s\n", s.dim("-"), o)
		}
	}
}

// Plan prints a plan: for each stage its cluster, findings, phases with
// their steps, protected namespaces with what they hold and a summary line;
// a plan of several stages starts with the findings across clusters and ends
// with a line per stage. holds maps a context to what each of its
// namespaces holds.
func (s Style) Plan(w io.Writer, p *api.Plan, holds map[string]map[string]string) {
	if st := p.Single(); st != nil {
		one := *st
		one.Findings = append(append([]api.Finding(nil), st.Findings...), p.Findings...)
		s.stage(w, &one, p.CreatedAt, holds[st.Cluster.Context])
		return
	}
	var members []string
	host := ""
	for _, st := range p.Stages {
		switch st.Kind {
		case api.StageMember:
			members = append(members, st.Cluster.Context)
		case api.StageHost:
			host = st.Cluster.Context
		}
	}
	fmt.Fprintf(w, "%s host context %s, members %s\n", s.bold("Multi-cluster teardown"), host, strings.Join(members, ", "))
	s.Findings(w, p.Findings)
	for i := range p.Stages {
		st := &p.Stages[i]
		fmt.Fprintf(w, "\n%s\n", s.bold(fmt.Sprintf("=== Stage %d/%d: %s (context %s) ===", i+1, len(p.Stages), st.Name, st.Cluster.Context)))
		s.stage(w, st, p.CreatedAt, holds[st.Cluster.Context])
	}
	fmt.Fprintf(w, "\n%s\n", Summary(p))
}

func (s Style) stage(w io.Writer, p *api.Stage, created time.Time, holds map[string]string) {
	s.Header(w, p.Cluster, p.KubeSphere)
	s.Findings(w, p.Findings)
	fmt.Fprintf(w, "\n%s (created %s)\n", s.bold("Teardown plan"), created.Format("2006-01-02 15:04:05 MST"))
	byPhase := map[api.Phase][]api.Step{}
	for _, st := range p.Steps {
		byPhase[st.Phase] = append(byPhase[st.Phase], st)
	}
	for _, ph := range api.Phases {
		steps := byPhase[ph]
		if len(steps) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n  %s %s\n", s.bold(string(ph)), s.dim(fmt.Sprintf("(%d steps)", len(steps))))
		for i, st := range steps {
			if s.PerPhase > 0 && i == s.PerPhase && len(steps) > s.PerPhase+1 {
				fmt.Fprintf(w, "    %s\n", s.dim(fmt.Sprintf("… and %d more steps (all of them: -v, or -o json)", len(steps)-i)))
				break
			}
			fmt.Fprintf(w, "    %s %s\n", s.mark(st.Action), s.describe(st))
		}
	}
	var nsProtected []api.ObjectRef
	for _, r := range p.Protected {
		if r.Kind == "Namespace" && r.Group() == "" {
			nsProtected = append(nsProtected, r)
		}
	}
	if len(nsProtected) > 0 {
		fmt.Fprintf(w, "\n  %s\n", s.bold("protected namespaces (kept, with everything in them)"))
		for i, r := range nsProtected {
			if s.PerPhase > 0 && i == s.PerPhase && len(nsProtected) > s.PerPhase+1 {
				fmt.Fprintf(w, "    %s\n", s.dim(fmt.Sprintf("… and %d more", len(nsProtected)-i)))
				break
			}
			fmt.Fprintf(w, "    %s %-40s %s\n", s.green("="), r.Name, s.dim(holds[r.Name]))
		}
	}
	fmt.Fprintf(w, "\n%s\n", stageSummary(p))
}

// Summary sums a plan up: one line for a single cluster, else a line per
// stage.
func Summary(p *api.Plan) string {
	if st := p.Single(); st != nil {
		return stageSummary(st)
	}
	lines := []string{fmt.Sprintf("Multi-cluster plan: %d stages, run in order; a stage that fails stops the rest.", len(p.Stages))}
	for i := range p.Stages {
		st := &p.Stages[i]
		lines = append(lines, fmt.Sprintf("  %d. %s on %s: %s", i+1, st.Name, st.Cluster.Context, stageSummary(st)))
	}
	return strings.Join(lines, "\n")
}

func stageSummary(p *api.Stage) string {
	n := map[api.Action]int{}
	for _, st := range p.Steps {
		n[st.Action]++
	}
	ns := 0
	for _, r := range p.Protected {
		if r.Kind == "Namespace" {
			ns++
		}
	}
	retained := ""
	if n[api.ActionRetain] > 0 {
		retained = fmt.Sprintf("%d PersistentVolumes to retain, ", n[api.ActionRetain])
	}
	if n[api.ActionFinalize] > 0 {
		retained += fmt.Sprintf("%d namespace finalizers to put back, ", n[api.ActionFinalize])
	}
	return fmt.Sprintf("Plan: %s%d to scale, %d to patch, %d to delete, %d Helm releases to uninstall; %d namespaces and %d other objects protected.",
		retained, n[api.ActionScale], n[api.ActionPatch], n[api.ActionDelete], n[api.ActionHelmUninstall], ns, len(p.Protected)-ns)
}

func (s Style) mark(a api.Action) string {
	switch a {
	case api.ActionDelete, api.ActionHelmUninstall:
		return s.red("-")
	case api.ActionPatch, api.ActionScale:
		return s.yellow("~")
	case api.ActionRetain, api.ActionFinalize:
		return s.green("+")
	}
	return s.dim("·")
}

func (s Style) describe(st api.Step) string {
	what := st.Target.String()
	switch st.Action {
	case api.ActionWait:
		return s.dim("wait: " + st.Reason)
	case api.ActionVerify:
		return s.dim("verify: " + st.Reason)
	case api.ActionHelmUninstall:
		what = fmt.Sprintf("helm release %s/%s (revision %s)", st.Target.Namespace, st.Target.Name, st.Target.ResourceVersion)
	}
	detail := st.Reason
	if st.Remove != nil || len(st.Annotate) > 0 {
		var parts []string
		for k, v := range st.Annotate {
			parts = append(parts, "set "+k+"="+v)
		}
		if rm := st.Remove; rm != nil {
			if len(rm.OwnerReferences) > 0 {
				parts = append(parts, fmt.Sprintf("remove %d ownerReferences", len(rm.OwnerReferences)))
			}
			if len(rm.Finalizers) > 0 {
				parts = append(parts, "remove finalizers "+strings.Join(rm.Finalizers, ","))
			}
			if len(rm.Labels) > 0 {
				parts = append(parts, "remove labels "+strings.Join(rm.Labels, ","))
			}
		}
		detail = strings.Join(parts, ", ") + " — " + st.Reason
	}
	if c := st.Cascade; c != nil && c.Objects > 0 {
		detail += fmt.Sprintf(" — cascades to %d objects", c.Objects)
		if len(c.To) > 0 {
			detail += fmt.Sprintf(" (%d outside deleted namespaces, e.g. %s)", len(c.To), c.To[0])
		}
	}
	return fmt.Sprintf("%-8s %s  %s", st.Action, what, s.dim(detail))
}

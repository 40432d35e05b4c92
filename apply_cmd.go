package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/briandowns/spinner"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ks-clean/ks-clean/exitcode"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/render"
	"github.com/ks-clean/ks-clean/uninstall"
)

// stdin is where the confirmation is read from (tests replace it).
var stdin io.Reader = os.Stdin

func runApply(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return exitcode.New(exitcode.Usage, errors.New("apply takes one argument, the plan file: ks-clean apply PLAN (make one with 'ks-clean plan --out PLAN')"))
	}
	if err := checkConcurrency(c); err != nil {
		return err
	}
	path := c.Args().First()
	f, err := plan.ReadFile(path)
	if err != nil {
		return exitcode.New(exitcode.Usage, err)
	}
	if f.Multi != nil {
		return runApplyMulti(c, format, path, f.Multi)
	}
	p := f.Single
	cl, clients, err := connect(c)
	if err != nil {
		return err
	}
	if !c.Bool("confirm") && !c.Bool("dry-run") {
		if err := confirm(c, render.Summary(p), cl.Context, cl.Server); err != nil {
			return err
		}
	}

	log := c.App.ErrWriter
	prog := newProgress(log)
	a := &uninstall.Apply{Clients: clients, Plan: p, PlanPath: path, Options: applyOptions(c, prog)}
	res, runErr := a.Run(c.Context)
	prog.stop()
	return reportApply(c, format, res, func(w io.Writer) { printApply(w, res, p) }, runErr, cl.Server)
}

// reportApply prints an apply's result, as JSON or as text, and returns its
// error explained.
func reportApply(c *cli.Context, format string, res any, text func(io.Writer), runErr error, server string) error {
	if format == "json" {
		if err := writeJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else {
		text(c.App.Writer)
	}
	return explain(runErr, server)
}

func applyOptions(c *cli.Context, prog *progress) uninstall.Options {
	return uninstall.Options{
		DryRun: c.Bool("dry-run"), BackupDir: c.String("backup-dir"),
		MaxAge: c.Duration("max-age"), AllowStale: c.Bool("allow-stale"),
		Concurrency: c.Int("concurrency"), FinalizerTimeout: c.Duration("finalizer-timeout"),
		PhaseTimeout: c.Duration("phase-timeout"), HelmHooks: c.Bool("helm-hooks"),
		Progress: prog.event,
	}
}

// confirm asks for the context name (or server) on a terminal; without one,
// it refuses: an unattended apply must say --confirm.
func confirm(c *cli.Context, summary, context, server string) error {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return exitcode.New(exitcode.Usage, errors.New("refusing to apply without --confirm when not on a terminal (nothing was changed); review the plan, then pass --confirm"))
	}
	w := c.App.ErrWriter
	fmt.Fprintf(w, "%s\n%s\n", summary, "This changes the cluster "+server+" (context "+context+").")
	want := context
	if want == "" {
		want = server
	}
	fmt.Fprintf(w, "Type %q to apply: ", want)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	if strings.TrimSpace(line) != want {
		return exitcode.New(exitcode.Usage, errors.New("not confirmed; nothing was changed"))
	}
	return nil
}

// progress: a spinner per phase with done/total on a terminal, plain lines
// otherwise (one per phase and one per failed step).
type progress struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	stage string
	phase plan.Phase
	sp    *spinner.Spinner
	start time.Time
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	return &progress{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (p *progress) event(e uninstall.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Stage != p.stage {
		p.finishPhase()
		p.stage, p.phase = e.Stage, ""
		fmt.Fprintf(p.w, "stage %s\n", e.Stage)
	}
	if e.Phase != p.phase {
		p.finishPhase()
		p.phase, p.start = e.Phase, time.Now()
		if p.tty {
			p.sp = spinner.New(spinner.CharSets[14], 100*time.Millisecond, spinner.WithWriter(p.w))
			p.sp.Start()
		}
	}
	if p.sp != nil {
		p.sp.Suffix = fmt.Sprintf(" %s %d/%d", e.Phase, e.Done, e.Total)
	}
	if e.Status == uninstall.StatusFailed {
		if p.sp != nil {
			p.sp.Stop()
		}
		fmt.Fprintf(p.w, "  failed: %s\n", e.Detail)
		if p.sp != nil {
			p.sp.Start()
		}
	}
	if e.Done == e.Total && !p.tty {
		fmt.Fprintf(p.w, "%-11s %d/%d steps in %s\n", e.Phase, e.Done, e.Total, time.Since(p.start).Round(time.Millisecond))
	}
}

func (p *progress) finishPhase() {
	if p.sp != nil {
		p.sp.Stop()
		fmt.Fprintf(p.w, "%-11s done in %s\n", p.phase, time.Since(p.start).Round(time.Millisecond))
		p.sp = nil
	}
}

func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishPhase()
}

func printApply(w io.Writer, r *uninstall.Result, p *plan.Plan) {
	if r == nil {
		return
	}
	mode := "Applied"
	if r.DryRun {
		mode = "Dry run"
	}
	for _, s := range r.Steps {
		if s.Status == uninstall.StatusFailed || (s.Status == uninstall.StatusSkipped && s.Action != plan.ActionWait && s.Detail != "done in an earlier run") {
			fmt.Fprintf(w, "  %-7s %s %s: %s\n", s.Status, s.Action, s.Target, s.Detail)
		}
	}
	fmt.Fprintf(w, "%s: %d steps done, %d skipped, %d failed in %s; backup of %d objects in %s\n",
		mode, r.Done, r.Skipped, r.Failed, r.Duration, r.BackedUp, r.BackupDir)
	if v := r.Verification; v != nil {
		if v.OK {
			fmt.Fprintf(w, "Verified: nothing of KubeSphere/KubeFed remains; all %d protected objects present with their UIDs.\n", v.ProtectedChecked)
			var kept []string
			for _, r := range p.Protected {
				if r.Kind == "Namespace" {
					kept = append(kept, r.Name)
				}
			}
			if len(kept) > 20 {
				kept = append(kept[:20], fmt.Sprintf("and %d more", len(kept)-20))
			}
			fmt.Fprintf(w, "Namespaces kept: %s\n", strings.Join(kept, ", "))
		} else {
			fmt.Fprintf(w, "Verification failed (%d remaining):\n", v.Remaining)
			for _, p := range v.Problems {
				fmt.Fprintf(w, "  - %s\n", p)
			}
		}
	}
}

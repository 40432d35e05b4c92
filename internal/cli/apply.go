package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/exitcode"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/render"
	"github.com/ks-clean/ks-clean/uninstall"
)

// stdin is where the confirmation is read from (tests replace it).
var stdin io.Reader = os.Stdin

func applyCommand() *cli.Command {
	o := uninstall.DefaultOptions()
	var output string
	var confirmed bool
	var expectDigest string
	limit := &rateLimit{}
	return &cli.Command{
		Name:      "apply",
		Usage:     "execute a saved plan: backup first, preconditions on every write, verified at the end",
		ArgsUsage: "PLAN",
		Description: `Executes exactly the steps of PLAN (from 'ks-clean plan --out PLAN').

Before the first write it refuses (exit 2, nothing changed) a plan that was
edited, made for another cluster, older than --max-age, or that needs
permissions this user lacks, and waits for no one: a second apply on the same
cluster is refused while the first holds its Lease. If the Lease is lost
while it runs (another apply took it), it stops writing at once.

Every object a step changes or deletes, and everything in the namespaces it
deletes, is saved under --backup-dir first (0700; Secrets saved, never
printed; a dry run's backup goes to --backup-dir/dry-run and is never reused).
Deletes carry the UID the plan recorded: an object re-created since is left
alone. Progress is journaled: after a crash or Ctrl-C, the same command
resumes. At the end a rescan must find nothing of KubeSphere/KubeFed and every
protected object with its UID.

Without --confirm, on a terminal you are asked to type the context name; with
no terminal, apply refuses. --dry-run sends every write with dryRun=All.

It goes at the server's pace, with no fixed rate: up to --concurrency
requests in flight, halved while the server answers 429 or 503 (API Priority
and Fairness) and grown back as it answers again, each Retry-After waited
out. --qps (and --burst) set a hard client-side cap for those who want one.

A multi-cluster plan (plan --member-context) connects to each stage's
context in the same kubeconfig, checks every stage before the first write,
then runs the stages in order (backup and journal of each under
--backup-dir/NN-STAGE); one confirmation, the host's context name, covers all.

A plan file is not trusted: before the first write apply scans the cluster
again and refuses any step whose target a fresh scan does not find to be
KubeSphere's or KubeFed's for that kind of reason, and protects every user's
namespace the fresh scan finds, whatever the plan lists. The plan's digest
only catches accidental edits (anyone who can write the file can seal it
again): a runbook that reviews a plan and applies it later pins the
reviewed plan with --expect-digest (the digest 'ks-clean plan' prints).

Examples:
   # rehearse: every write sent with dryRun=All, nothing stored
   ks-clean apply plan.json --dry-run

   # apply, typing the context name to confirm
   ks-clean apply plan.json

   # unattended (CI, a Job), result as JSON
   ks-clean apply plan.json --yes -o json > result.json

   # after Ctrl-C, a crash or a lost Lease: the same command resumes
   ks-clean apply plan.json --yes

   # apply only the plan that was reviewed
   ks-clean apply plan.json --yes --expect-digest sha256:3f5c…`,
		Flags: []cli.Flag{
			outputFlag(&output),
			confirmFlag(&confirmed, "do not ask: apply the plan"),
			serverDryRunFlag(&o.DryRun),
			&cli.StringFlag{Name: "expect-digest", Destination: &expectDigest, Usage: "refuse the plan unless its digest is this one (sha256:…, as 'ks-clean plan' prints it)"},
			&cli.StringFlag{Name: "backup-dir", Destination: &o.BackupDir, Usage: "backup and journal directory (default: PLAN.apply)"},
			&cli.DurationFlag{Name: "max-age", Value: o.MaxAge, Destination: &o.MaxAge, Usage: "refuse plans older than this"},
			&cli.BoolFlag{Name: "allow-stale", Destination: &o.AllowStale, Usage: "apply a plan older than --max-age"},
			&cli.IntFlag{Name: "concurrency", Value: o.Concurrency, Destination: &o.Concurrency, Usage: "most writes in flight at once within a phase (1-64); fewer while the server answers 429 or 503"},
			&cli.DurationFlag{Name: "finalizer-timeout", Value: o.FinalizerTimeout, Destination: &o.FinalizerTimeout, Usage: "after this, footprint objects still present lose their finalizers"},
			&cli.DurationFlag{Name: "phase-timeout", Value: o.PhaseTimeout, Destination: &o.PhaseTimeout, Usage: "give up waiting for a phase's deletions after this"},
			&cli.BoolFlag{Name: "helm-hooks", Destination: &o.HelmHooks, Usage: "run Helm uninstall hooks (off: they need images a broken cluster may not pull)"},
			&cli.Float64Flag{Name: "qps", Destination: &limit.qps, Usage: "a hard client-side cap in requests per second (default: none; the server's answers pace apply)"},
			&cli.IntFlag{Name: "burst", Destination: &limit.burst, Usage: "the cap's burst (with --qps; default: twice --qps)"},
		},
		Action: func(c *cli.Context) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitcode.New(exitcode.Usage, errors.New("apply takes one argument, the plan file: ks-clean apply PLAN (make one with 'ks-clean plan --out PLAN')"))
			}
			if err := checkConcurrency(o.Concurrency); err != nil {
				return err
			}
			limit.set = c.IsSet("qps") || c.IsSet("burst")
			if err := limit.check(); err != nil {
				return err
			}
			path := c.Args().First()
			p, err := api.Read(path)
			if err != nil {
				return err
			}
			if expectDigest != "" && p.Digest != expectDigest {
				return api.Refuse(api.FixNewPlan, "plan %s has digest %s, not the %s expected (--expect-digest): it is not the plan that was reviewed; review this one, or find the reviewed one", path, p.Digest, expectDigest)
			}
			clients, host, err := connectPlan(c, p, path, limit)
			if err != nil {
				return err
			}
			if !confirmed && !o.DryRun {
				if err := confirm(c, render.Summary(p), host.Context, host.Server); err != nil {
					return err
				}
			}
			prog := render.NewProgress(c.App.ErrWriter)
			opts := o
			opts.Progress = prog.Event
			a := &uninstall.Apply{Plan: p, Clients: clients, PlanPath: path, Options: opts}
			res, runErr := a.Run(c.Context)
			prog.Stop()
			if _, refused := api.AsRefusal(runErr); refused {
				return explain(runErr, host.Server) // nothing changed: no result to print
			}
			if err := emit(c, output, res, func(w io.Writer) { render.Apply(w, res, p) }); err != nil {
				return err
			}
			return explain(runErr, host.Server)
		},
	}
}

// connectPlan connects to the clusters of a plan. A single-cluster plan runs
// where --context points (its kube-system UID is checked before any write);
// a plan of several stages runs on the contexts it names, from the same
// kubeconfig. It returns the clients by the plan's contexts, and the
// connection of the first stage (the host).
func connectPlan(c *cli.Context, p *api.Plan, path string, limit *rateLimit) (map[string]*kube.Clients, *connection, error) {
	g := readGlobals(c)
	if st := p.Single(); st != nil {
		conn, err := connect(c, g.context, "--context", limit)
		if err != nil {
			return nil, nil, err
		}
		return map[string]*kube.Clients{st.Cluster.Context: conn.Clients}, conn, nil
	}
	hostCtx := p.Stages[0].Cluster.Context
	if g.context != "" && g.context != hostCtx {
		return nil, nil, exitcode.New(exitcode.Usage, fmt.Errorf("plan %s is for host context %q and its members, not --context %q: drop --context, or make a plan for that context", path, hostCtx, g.context))
	}
	clients := map[string]*kube.Clients{}
	var host *connection
	for _, st := range p.Stages {
		if clients[st.Cluster.Context] != nil {
			continue
		}
		conn, err := connect(c, st.Cluster.Context, "stage "+st.Name+" of the plan runs there: use a kubeconfig that defines it (--kubeconfig, or KUBECONFIG=host.yaml:member.yaml)", limit)
		if err != nil {
			return nil, nil, err
		}
		clients[st.Cluster.Context] = conn.Clients
		if host == nil {
			host = conn
		}
	}
	return clients, host, nil
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

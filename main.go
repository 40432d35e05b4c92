// Command ks-clean finds and safely removes KubeSphere 3.x/4.x and KubeFed
// from a Kubernetes cluster without losing users' namespaces. The CLI is a
// thin layer: each command parses flags and calls a library package.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/briandowns/spinner"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ks-clean/ks-clean/exitcode"
	"github.com/ks-clean/ks-clean/footprint"
	"github.com/ks-clean/ks-clean/hazard"
	"github.com/ks-clean/ks-clean/inventory"
	"github.com/ks-clean/ks-clean/kube"
	"github.com/ks-clean/ks-clean/kubeconfig"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/render"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/teardown"
)

// Set by -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C cancels ctx so apply stops between steps (its journal
	// resumes); a second one kills at once.
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const description = `ks-clean finds everything KubeSphere (3.x with KubeFed multi-cluster, or 4.x)
left in a cluster and removes it without losing users' data.

The hazard it exists for: KubeSphere 3.x makes every workspace namespace a
dependent (controller ownerReference) of its Workspace. When two KubeFed
cluster records point at one cluster, KubeFed deletes and re-creates
Workspaces, and the garbage collector deletes the namespaces they own.

Workflow:
   ks-clean scan                  read-only: footprint and hazards (exit 3 if critical)
   ks-clean plan --out plan.json  read-only: the ordered teardown, saved for review
   ks-clean apply plan.json       executes exactly that plan: backup first, then phase by phase
   ks-clean reinstall --chart C   uninstall safely, prove clean, install with Helm, prove healthy

The cluster is chosen like kubectl: --kubeconfig, else KUBECONFIG (files
merged), else ~/.kube/config, else the in-cluster config of a Pod. Global
options may come before or after the command: ks-clean scan --context prod.

Exit codes: 0 ok, 1 error, 2 bad usage or refused input (nothing changed),
3 critical hazard found.`

func app(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:                 "ks-clean",
		Usage:                "uninstall and reinstall KubeSphere without losing anyone's data",
		Description:          description,
		Version:              version,
		HideVersion:          true,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		Flags:                globalFlags(""),
		Commands:             withGlobals(commands()),
		OnUsageError:         usageError,
		CommandNotFound: func(c *cli.Context, name string) {
			// Reported by run, which also sets the exit code.
			c.App.Metadata["notFound"] = name
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run decides exit codes
	}
}

// globalFlags are kubectl's connection flags plus --verbose. Each call
// returns new flags: urfave/cli keeps parse state in them.
func globalFlags(category string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "kubeconfig", Category: category, Usage: "kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then the in-cluster config)"},
		&cli.StringFlag{Name: "context", Category: category, Usage: "kubeconfig context to use (default: the current context)"},
		&cli.DurationFlag{Name: "request-timeout", Category: category, Value: 30 * time.Second, Usage: "timeout of each API request (0: none)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Category: category, Usage: "list every object and step, and say which cluster is used"},
	}
}

// withGlobals lets every command take the global flags after its name too
// (ks-clean scan --context prod), as kubectl does, turns flag errors into
// exit 2 without a page of help, and refuses arguments a command does not
// take, so a flag written after a stray word is never silently ignored.
// Commands added to commands() get all this without doing anything.
func withGlobals(cmds []*cli.Command) []*cli.Command {
	for _, cmd := range cmds {
		cmd.Flags = append(cmd.Flags, globalFlags("Global (also accepted before the command)")...)
		cmd.HideHelpCommand = true
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = usageError
		}
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if c.Command.ArgsUsage == "" && c.Args().Present() {
				return exitcode.New(exitcode.Usage, fmt.Errorf("%s takes no arguments, got %q: run '%s --help'", c.Command.HelpName, c.Args().First(), c.Command.HelpName))
			}
			if err := shareGlobals(c); err != nil {
				return err
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
	return cmds
}

// shareGlobals makes each global flag read the same on the command's and the
// app's context, wherever it was given (after the command wins), so
// c.String("context") is right in any command.
func shareGlobals(c *cli.Context) error {
	parent := c.Lineage()[1]
	for _, f := range globalFlags("") {
		name := f.Names()[0]
		var err error
		switch {
		case c.IsSet(name):
			err = parent.Set(name, fmt.Sprint(c.Value(name)))
		case parent.IsSet(name):
			err = c.Set(name, fmt.Sprint(parent.Value(name)))
		}
		if err != nil {
			return fmt.Errorf("flag --%s: %w", name, err)
		}
	}
	return nil
}

// usageError reports a flag error in one line with exit code 2, instead of
// urfave/cli's page of help.
func usageError(c *cli.Context, err error, _ bool) error {
	name := c.App.Name
	if c.Command != nil && c.Command.HelpName != "" {
		name = c.Command.HelpName
	}
	return exitcode.New(exitcode.Usage, fmt.Errorf("%w: run '%s --help'", err, name))
}

func commands() []*cli.Command {
	output := &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"}
	scanFlags := []cli.Flag{
		output,
		&cli.IntFlag{Name: "concurrency", Value: 8, Usage: "API lists in flight at once (1-64)"},
		&cli.DurationFlag{Name: "cluster-timeout", Value: 5 * time.Second, Usage: "timeout to reach each multi-cluster record's API server with its own credentials"},
		&cli.StringSliceFlag{Name: "member-context", Usage: "kubeconfig context of a member cluster of the host (--context); repeat for each member: host and members are scanned and planned together"},
	}
	return []*cli.Command{
		{
			Name:  "version",
			Usage: "print the version",
			Flags: []cli.Flag{output},
			Action: func(c *cli.Context) error {
				format, err := outputFormat(c)
				if err != nil {
					return err
				}
				if format == "json" {
					return writeJSON(c.App.Writer, map[string]string{"version": version, "commit": commit, "go": runtime.Version()})
				}
				fmt.Fprintf(c.App.Writer, "ks-clean %s (%s) %s\n", version, commit, runtime.Version())
				return nil
			},
		},
		{
			Name:  "scan",
			Usage: "find the KubeSphere/KubeFed footprint and its hazards (read-only)",
			Description: `Lists everything in the cluster by discovery (paginated, never writing) and
reports the hazards: aliased cluster records (verified by each record's
kube-system UID), namespaces a KubeSphere object owns, fail-closed webhooks
without a backend, stuck namespaces, KubeFed leftovers.

With --member-context (once per member), the host (--context) and its members
are scanned together and matched by kube-system UID: a member the host has no
record of (registered in another host), or has several records of, is a
critical finding.

Exit 0: no critical hazard. Exit 3: at least one critical hazard. Exit 1: error.`,
			Flags:  scanFlags,
			Action: runScan,
		},
		{
			Name:  "plan",
			Usage: "write the ordered teardown plan (read-only)",
			Description: `Scans, then orders every KubeSphere/KubeFed object into a teardown:
preflight, quiesce, disarm, detach, kubefed, kubesphere, helm, namespaces,
crds, rbac, verify. Users' namespaces and every object tied to the footprint
are protected: they are detached, never deleted. The plan is checked against
its safety rules before it is written.

--out FILE saves it (mode 0600) for review and for 'ks-clean apply'.

Multi-cluster: --context HOST --member-context M1 --member-context M2 makes one
plan in stages, each a whole plan for one cluster whose steps name it:
  1. unjoin (on the host): stop the host's controllers, delete the members'
     Cluster and KubeFedCluster records and their token Secrets;
  2. each member's teardown (its join ServiceAccount and RBAC included);
  3. the host's teardown.
A member registered in another host is refused (exit 2).`,
			Flags: append(scanFlags,
				&cli.StringFlag{Name: "out", Usage: "save the plan to this file (JSON, mode 0600)"},
				&cli.StringSliceFlag{Name: "protect", Usage: "namespace that must survive (repeatable): refuse to plan if it does not exist or the plan would delete it"},
				&cli.BoolFlag{Name: "keep-workspace-labels", Usage: "keep kubesphere.io/workspace on namespaces so a new install re-binds them (on 3.x this re-creates the ownerReference hazard)"},
			),
			Action: runPlan,
		},
		{
			Name:      "apply",
			Usage:     "execute a saved plan: backup first, preconditions on every write, verified at the end",
			ArgsUsage: "PLAN",
			Description: `Executes exactly the steps of PLAN (from 'ks-clean plan --out PLAN').

Before the first write it refuses (exit 2, nothing changed) a plan that was
edited, made for another cluster, older than --max-age, or that needs
permissions this user lacks, and waits for no one: a second apply on the same
cluster is refused while the first holds its Lease.

Every object a step changes or deletes, and everything in the namespaces it
deletes, is saved under --backup-dir first (0700; Secrets saved, never
printed). Deletes carry the UID the plan recorded: an object re-created since
is left alone. Progress is journaled: after a crash or Ctrl-C, the same
command resumes. At the end a rescan must find nothing of KubeSphere/KubeFed
and every protected object with its UID.

Without --confirm, on a terminal you are asked to type the context name; with
no terminal, apply refuses. --dry-run sends every write with dryRun=All.

A multi-cluster plan (plan --member-context) connects to each stage's
context in the same kubeconfig, checks every stage before the first write,
then runs the stages in order (backup and journal of each under
--backup-dir/NN-STAGE); one confirmation, the host's context name, covers all.`,
			Flags: []cli.Flag{
				output,
				&cli.BoolFlag{Name: "confirm", Usage: "do not ask: apply the plan"},
				&cli.BoolFlag{Name: "dry-run", Usage: "send every write with dryRun=All: nothing is stored"},
				&cli.StringFlag{Name: "backup-dir", Usage: "backup and journal directory (default: PLAN.apply)"},
				&cli.DurationFlag{Name: "max-age", Value: 24 * time.Hour, Usage: "refuse plans older than this"},
				&cli.BoolFlag{Name: "allow-stale", Usage: "apply a plan older than --max-age"},
				&cli.IntFlag{Name: "concurrency", Value: 8, Usage: "writes in flight at once within a phase (1-64)"},
				&cli.DurationFlag{Name: "finalizer-timeout", Value: 60 * time.Second, Usage: "after this, footprint objects still present lose their finalizers"},
				&cli.DurationFlag{Name: "phase-timeout", Value: 10 * time.Minute, Usage: "give up waiting for a phase's deletions after this"},
				&cli.BoolFlag{Name: "helm-hooks", Usage: "run Helm uninstall hooks (off: they need images a broken cluster may not pull)"},
				&cli.Float64Flag{Name: "qps", Value: 50, Usage: "client-side requests per second"},
				&cli.IntFlag{Name: "burst", Value: 100, Usage: "client-side burst"},
			},
			Action: runApply,
		},
		reinstallCommand(output),
	}
}

// run is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := app(stdout, stderr)
	a.Metadata = map[string]any{}
	err := a.RunContext(ctx, flagsFirst(a, args))
	if name, ok := a.Metadata["notFound"].(string); ok {
		err = exitcode.New(exitcode.Error, fmt.Errorf("unknown command %q: run 'ks-clean --help' for the commands", name))
	}
	if err != nil && err.Error() != "" { // exitcode.New(code, nil): already explained
		fmt.Fprintf(stderr, "ks-clean: %v\n", err)
	}
	return exitcode.Of(err)
}

// flagsFirst moves a command's flags before its positional arguments:
// urfave/cli v2 stops parsing flags at the first argument, and
// `ks-clean apply plan.json --confirm` is how people write it.
func flagsFirst(a *cli.App, args []string) []string {
	globalValue := takesValue(a.Flags)
	for i := 1; i < len(args); i++ {
		cmd := a.Command(args[i])
		if cmd == nil {
			name := strings.TrimLeft(args[i], "-")
			if !strings.HasPrefix(args[i], "-") {
				return args // not a command: let cli report it
			}
			if !strings.Contains(name, "=") && globalValue[name] {
				i++ // the global flag's value
			}
			continue
		}
		cmdValue := takesValue(cmd.Flags)
		var flags, pos []string
		rest := args[i+1:]
		for j := 0; j < len(rest); j++ {
			x := rest[j]
			if x == "--" {
				pos = append(pos, rest[j+1:]...)
				break
			}
			if !strings.HasPrefix(x, "-") || x == "-" {
				pos = append(pos, x)
				continue
			}
			flags = append(flags, x)
			if name := strings.TrimLeft(x, "-"); !strings.Contains(name, "=") && cmdValue[name] && j+1 < len(rest) {
				j++
				flags = append(flags, rest[j])
			}
		}
		out := append(append([]string{}, args[:i+1]...), flags...)
		return append(out, pos...)
	}
	return args
}

// explain adds the way out to the errors a cluster connection commonly
// ends in.
func explain(err error, server string) error {
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: %s rejected the credentials (expired or invalid token or certificate); refresh them in your kubeconfig and run again", err, server)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w: bind this user to docs/rbac/ks-clean-scan.yaml (scan, plan) or docs/rbac/ks-clean-apply.yaml (apply, reinstall)", err)
	case errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("%w: cannot reach %s; check --context/--kubeconfig and that the API server is up", err, server)
	}
	return err
}

// takesValue maps each flag name to whether it takes a value.
func takesValue(fs []cli.Flag) map[string]bool {
	out := map[string]bool{}
	for _, f := range fs {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			out[n] = !isBool
		}
	}
	return out
}

// loadCluster resolves the cluster from the global flags, as kubectl would.
func loadCluster(c *cli.Context) (*kubeconfig.Cluster, error) {
	return loadContext(c, c.String("context"), "--context")
}

// loadContext resolves a named context ("" for the current one), given by
// flag, from the kubeconfig the global flags select.
func loadContext(c *cli.Context, context, flag string) (*kubeconfig.Cluster, error) {
	timeout := c.Duration("request-timeout")
	if timeout < 0 {
		return nil, exitcode.New(exitcode.Usage, fmt.Errorf("--request-timeout %s: use 0 (no timeout) or a positive duration such as 30s", timeout))
	}
	cl, err := kubeconfig.Load(kubeconfig.Options{
		Kubeconfig:     c.String("kubeconfig"),
		Context:        context,
		ContextFlag:    flag,
		RequestTimeout: timeout,
		UserAgent:      "ks-clean/" + version,
	})
	if err != nil {
		return nil, exitcode.New(exitcode.Usage, err) // a kubeconfig problem: nothing was tried
	}
	if c.Bool("verbose") {
		if cl.Context == "" {
			fmt.Fprintf(c.App.ErrWriter, "using the in-cluster config: %s\n", cl.Server)
		} else {
			fmt.Fprintf(c.App.ErrWriter, "using context %q from %s: %s\n", cl.Context, cl.Source, cl.Server)
		}
	}
	return cl, nil
}

// connect resolves the cluster from the global flags and builds clients.
func connect(c *cli.Context) (*kubeconfig.Cluster, *kube.Clients, error) {
	return connectContext(c, c.String("context"), "--context")
}

// connectContext builds clients for a context given by flag.
func connectContext(c *cli.Context, context, flag string) (*kubeconfig.Cluster, *kube.Clients, error) {
	cl, err := loadContext(c, context, flag)
	if err != nil {
		return nil, nil, err
	}
	if c.IsSet("qps") {
		cl.Config.QPS, cl.Config.Burst = float32(c.Float64("qps")), c.Int("burst")
	}
	clients, err := kube.New(cl.Config)
	return cl, clients, err
}

func outputFormat(c *cli.Context) (string, error) {
	switch o := c.String("output"); o {
	case "text", "json":
		return o, nil
	default:
		return "", exitcode.New(exitcode.Usage, fmt.Errorf("--output %q: use text or json", o))
	}
}

func doScan(c *cli.Context) (*scan.Result, *kube.Clients, error) {
	if err := checkConcurrency(c); err != nil {
		return nil, nil, err
	}
	cl, clients, err := connect(c)
	if err != nil {
		return nil, nil, err
	}
	stop := spin(c.App.ErrWriter, "scanning "+cl.Server)
	o := scanOptions(c)
	o.Context = cl.Context
	res, err := scan.Run(c.Context, clients, o)
	stop()
	if err != nil {
		return nil, nil, explain(fmt.Errorf("scan %s: %w", cl.Server, err), cl.Server)
	}
	if c.Bool("verbose") {
		fmt.Fprintf(c.App.ErrWriter, "scanned in %s with %d API requests (%s)\n", res.Duration.Round(time.Millisecond), clients.Requests.Total(), clients.Requests)
	}
	return res, clients, nil
}

func scanOptions(c *cli.Context) scan.Options {
	return scan.Options{
		Inventory: inventory.Options{Concurrency: c.Int("concurrency")},
		Footprint: footprint.Options{KeepWorkspaceLabels: c.Bool("keep-workspace-labels")},
		Hazard:    hazard.Options{Timeout: c.Duration("cluster-timeout"), Concurrency: c.Int("concurrency")},
	}
}

func checkConcurrency(c *cli.Context) error {
	if n := c.Int("concurrency"); n < 1 || n > 64 {
		return exitcode.New(exitcode.Usage, fmt.Errorf("--concurrency %d: use a number from 1 to 64", n))
	}
	return nil
}

func runScan(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	if len(c.StringSlice("member-context")) > 0 {
		return runScanMulti(c, format)
	}
	res, _, err := doScan(c)
	if err != nil {
		return err
	}
	if format == "json" {
		err = writeJSON(c.App.Writer, res.Report)
	} else {
		st := style(c)
		st.Header(c.App.Writer, res.Cluster, res.KubeSphere)
		st.Findings(c.App.Writer, res.Findings)
		for _, w := range res.Warnings {
			fmt.Fprintf(c.App.Writer, "note: %s\n", w)
		}
		fmt.Fprintf(c.App.Writer, "\n%s\n", scanSummary(res))
	}
	if err != nil {
		return err
	}
	return criticalExit(res.Critical())
}

func criticalExit(critical bool) error {
	if critical {
		return exitcode.New(exitcode.Critical, errors.New("critical hazards found: read them above before changing anything"))
	}
	return nil
}

func scanSummary(res *scan.Result) string {
	fp := res.Footprint
	if fp.Empty() {
		return "Nothing of KubeSphere or KubeFed found."
	}
	return fmt.Sprintf("Footprint: %d KubeSphere/KubeFed objects, %d system namespaces, %d Helm releases; %d user objects tied to it (to detach). Next: ks-clean plan --out plan.json",
		len(fp.Members), len(fp.SystemNamespaces), len(fp.Releases), len(fp.Detach))
}

func runPlan(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	if len(c.StringSlice("member-context")) > 0 {
		return runPlanMulti(c, format)
	}
	res, _, err := doScan(c)
	if err != nil {
		return err
	}
	if err := teardown.RequireKept([]*scan.Result{res}, c.StringSlice("protect")); err != nil {
		return err
	}
	p, err := teardown.Build(res, time.Now())
	if err != nil {
		return err
	}
	if out := c.String("out"); out != "" {
		if err := plan.Write(out, p); err != nil {
			return err
		}
		defer fmt.Fprintf(c.App.ErrWriter, "plan saved to %s (%s)\n", out, p.Digest)
	}
	if format == "json" {
		return writeJSON(c.App.Writer, p)
	}
	style(c).Plan(c.App.Writer, p, holdsOf(res))
	return nil
}

// holdsOf says, for each namespace, what it holds.
func holdsOf(res *scan.Result) map[string]string {
	holds := map[string]string{}
	for ns, t := range res.Footprint.Inv.Holds() {
		holds[ns] = t.String()
	}
	return holds
}

func style(c *cli.Context) render.Style {
	st := render.StyleFor(c.App.Writer)
	if c.Bool("verbose") {
		st.PerPhase = 0
	}
	return st
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// spin shows a spinner on a terminal; elsewhere it prints nothing, so
// logs and pipes stay clean.
func spin(w io.Writer, msg string) func() {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	s := spinner.New(spinner.CharSets[14], 100*time.Millisecond, spinner.WithWriter(f))
	s.Suffix = " " + msg
	s.Start()
	return s.Stop
}

// Package cli is ks-clean's command line: one file per command, each binding
// its flags to the options of one library call (scan.Run, plan.Build,
// uninstall.Apply, reinstall.Reinstall) and validating them before any
// cluster call. Only this package maps errors to exit codes and flag advice.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/exitcode"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/internal/kubeconfig"
	"github.com/ks-clean/ks-clean/internal/render"
)

// Set by -ldflags "-X github.com/ks-clean/ks-clean/internal/cli.version=…".
var (
	version = "dev"
	commit  = "unknown"
)

// Main runs ks-clean with the process's arguments and returns its exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C cancels ctx so apply stops between steps (its journal
	// resumes); a second one kills at once.
	go func() { <-ctx.Done(); stop() }()
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	return code
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
	return []*cli.Command{versionCommand(), scanCommand(), planCommand(), applyCommand(), reinstallCommand()}
}

// outputFlag is -o/--output, bound to dst.
func outputFlag(dst *string) cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json", Destination: dst}
}

// run is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := app(stdout, stderr)
	a.Metadata = map[string]any{}
	err := a.RunContext(ctx, flagsFirst(a, args))
	if name, ok := a.Metadata["notFound"].(string); ok {
		err = exitcode.New(exitcode.Error, fmt.Errorf("unknown command %q: run 'ks-clean --help' for the commands", name))
	}
	err = advise(err)
	if err != nil && err.Error() != "" { // exitcode.New(code, nil): already explained
		fmt.Fprintf(stderr, "ks-clean: %v\n", err)
	}
	return exitCode(err)
}

// exitCode maps an error to ks-clean's exit codes: 2 for a refusal (nothing
// was changed), else the code it carries, else 1.
func exitCode(err error) int {
	if _, ok := api.AsRefusal(err); ok && exitcode.Of(err) == exitcode.Error {
		return exitcode.Usage
	}
	return exitcode.Of(err)
}

// advice turns a library's way out of a refusal into flags.
var advice = map[api.Fix]string{
	api.FixNewPlan:    "make a new plan with 'ks-clean plan --out PLAN'",
	api.FixCluster:    "check --context and --kubeconfig, or make a plan for this cluster",
	api.FixAllowStale: "make a new plan, or pass --allow-stale",
	api.FixBackupDir:  "choose another with --backup-dir",
	api.FixProtect:    "(--protect)",
	api.FixMembers:    "pass the host with --context and each member once with --member-context",
}

// advise adds the flag advice to a refusal.
func advise(err error) error {
	r, ok := api.AsRefusal(err)
	if !ok {
		return err
	}
	a := advice[r.Fix]
	if a == "" || strings.Contains(err.Error(), "make a new plan") && r.Fix == api.FixNewPlan {
		return exitcode.New(exitcode.Usage, err)
	}
	return exitcode.New(exitcode.Usage, fmt.Errorf("%w: %s", err, a))
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

// globals are the connection flags, read once per command.
type globals struct {
	kubeconfig, context string
	requestTimeout      time.Duration
	verbose             bool
}

func readGlobals(c *cli.Context) globals {
	return globals{kubeconfig: c.String("kubeconfig"), context: c.String("context"), requestTimeout: c.Duration("request-timeout"), verbose: c.Bool("verbose")}
}

// connection is a resolved kubeconfig context with its clients.
type connection struct {
	*kubeconfig.Cluster
	Clients *kube.Clients
}

// connect resolves a context ("" for the current one), named by flag in
// errors, from the kubeconfig the global flags select, as kubectl would,
// and builds its clients.
func connect(c *cli.Context, context, flag string, limit *rateLimit) (*connection, error) {
	cl, err := load(c, context, flag)
	if err != nil {
		return nil, err
	}
	if limit != nil && limit.set {
		cl.Config.QPS, cl.Config.Burst = float32(limit.qps), limit.burst
	}
	clients, err := kube.New(cl.Config)
	if err != nil {
		return nil, err
	}
	return &connection{Cluster: cl, Clients: clients}, nil
}

// load resolves a context from the kubeconfig the global flags select.
func load(c *cli.Context, context, flag string) (*kubeconfig.Cluster, error) {
	g := readGlobals(c)
	if g.requestTimeout < 0 {
		return nil, exitcode.New(exitcode.Usage, fmt.Errorf("--request-timeout %s: use 0 (no timeout) or a positive duration such as 30s", g.requestTimeout))
	}
	cl, err := kubeconfig.Load(kubeconfig.Options{
		Kubeconfig:     g.kubeconfig,
		Context:        context,
		ContextFlag:    flag,
		RequestTimeout: g.requestTimeout,
		UserAgent:      "ks-clean/" + version,
	})
	if err != nil {
		return nil, exitcode.New(exitcode.Usage, err) // a kubeconfig problem: nothing was tried
	}
	if g.verbose {
		if cl.Context == "" {
			fmt.Fprintf(c.App.ErrWriter, "using the in-cluster config: %s\n", cl.Server)
		} else {
			fmt.Fprintf(c.App.ErrWriter, "using context %q from %s: %s\n", cl.Context, cl.Source, cl.Server)
		}
	}
	return cl, nil
}

// rateLimit is a client-side limit set by --qps/--burst.
type rateLimit struct {
	qps   float64
	burst int
	set   bool
}

func checkOutput(o string) error {
	switch o {
	case "text", "json":
		return nil
	default:
		return exitcode.New(exitcode.Usage, fmt.Errorf("--output %q: use text or json", o))
	}
}

func checkConcurrency(n int) error {
	if n < 1 || n > 64 {
		return exitcode.New(exitcode.Usage, fmt.Errorf("--concurrency %d: use a number from 1 to 64", n))
	}
	return nil
}

// emit writes v as JSON for -o json, else text.
func emit(c *cli.Context, output string, v any, text func(io.Writer)) error {
	if output == "json" {
		return writeJSON(c.App.Writer, v)
	}
	text(c.App.Writer)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func style(c *cli.Context) render.Style {
	st := render.StyleFor(c.App.Writer)
	if readGlobals(c).verbose {
		st.PerPhase = 0
	}
	return st
}

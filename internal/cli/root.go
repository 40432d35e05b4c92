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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

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
	defer stop()
	done := make(chan int, 1)
	go func() { done <- run(ctx, os.Args, os.Stdout, os.Stderr) }()
	select {
	case code := <-done:
		return code
	case <-ctx.Done():
	}
	// The first Ctrl-C: a read-only command ends now (a request to a dead
	// server may not notice its context for seconds); apply and reinstall
	// stop between steps, their writes in flight finished and journaled, so
	// the same command resumes. A second Ctrl-C kills at once.
	stop()
	if readOnly(os.Args) {
		fmt.Fprintln(os.Stderr, "ks-clean: interrupted")
		return exitcode.Interrupted
	}
	return <-done
}

// readOnly: the command in args never writes to a cluster.
func readOnly(args []string) bool {
	switch commandOf(args) {
	case "apply", "restore", "reinstall":
		return false
	}
	return true
}

// commandOf is the command named in args ("" for none): the first word
// that is not a global flag or its value.
func commandOf(args []string) string {
	a := app(io.Discard, io.Discard)
	globalValue := takesValue(a.Flags)
	for i := 1; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			return args[i]
		}
		if name := strings.TrimLeft(args[i], "-"); !strings.Contains(name, "=") && globalValue[name] {
			i++
		}
	}
	return ""
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
   ks-clean restore plan.json.apply  puts back what that apply deleted, from its backup
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
		Suggest:              true,
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

// globalFlags are kubectl's connection flags plus --verbose and -v. Each
// call returns new flags: urfave/cli keeps parse state in them.
func globalFlags(category string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "kubeconfig", Category: category, Usage: "kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then the in-cluster config)"},
		&cli.StringFlag{Name: "context", Category: category, Usage: "kubeconfig context to use (default: the current context)"},
		&cli.StringFlag{Name: "request-timeout", Category: category, Value: "30s", Usage: "timeout of each API request: a duration (30s, 2m) or, as kubectl takes it, a number of seconds; 0: none"},
		&cli.BoolFlag{Name: "verbose", Category: category, Usage: "list every object and step, and say which cluster is used (same as -v=1)"},
		&cli.IntFlag{Name: "v", Category: category, Usage: "log level, as kubectl's: 1 is --verbose; 6 logs each API request with its timing, 7 its headers, 9 a curl command line; bodies are never logged (they may hold Secrets)"},
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
		if len(cmd.Subcommands) > 0 {
			cmd.Subcommands = withGlobals(cmd.Subcommands)
		}
		cmd.Before = func(c *cli.Context) error {
			if len(c.Command.Subcommands) > 0 {
				// A command group: its argument is a subcommand.
				if first := c.Args().First(); first != "" && c.Command.Command(first) == nil {
					return exitcode.New(exitcode.Usage, fmt.Errorf("%s has no subcommand %q: run '%s --help'", c.Command.HelpName, first, c.Command.HelpName))
				}
			} else if c.Command.ArgsUsage == "" && c.Args().Present() {
				return exitcode.New(exitcode.Usage, fmt.Errorf("%s takes no arguments, got %q: run '%s --help'", c.Command.HelpName, c.Args().First(), c.Command.HelpName))
			}
			if err := shareGlobals(c); err != nil {
				return err
			}
			if _, err := readGlobals(c).timeout(); err != nil {
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
	return []*cli.Command{versionCommand(), scanCommand(), planCommand(), applyCommand(), restoreCommand(), reinstallCommand(), tenancyCommand(), rbacCommand(), completionCommand()}
}

// confirmFlag is --confirm (--yes, -y): do not ask for the context name.
func confirmFlag(dst *bool, usage string) cli.Flag {
	return &cli.BoolFlag{Name: "confirm", Aliases: []string{"yes", "y"}, Destination: dst, Usage: usage}
}

// serverDryRunFlag is --dry-run of the commands that write: every write
// sent with dryRun=All (normalize takes --dry-run=server for it).
func serverDryRunFlag(dst *bool) cli.Flag {
	return &cli.BoolFlag{Name: "dry-run", Destination: dst, Usage: "send every write with dryRun=All: nothing is stored (--dry-run=server is the same)"}
}

// outputFlag is -o/--output, bound to dst.
func outputFlag(dst *string) cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text, json or yaml (also -ojson, -o=yaml)", Destination: dst}
}

// run is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := app(stdout, stderr)
	a.Metadata = map[string]any{}
	if n := len(args); n > 0 && args[n-1] == completeFlag {
		complete(a, args[:n-1], stdout)
		return exitcode.OK
	}
	args, err := normalize(args)
	if err == nil {
		err = a.RunContext(ctx, flagsFirst(a, args))
	}
	if name, ok := a.Metadata["notFound"].(string); ok {
		hint := ""
		if s := suggest(a.Commands, name); s != "" {
			hint = fmt.Sprintf("did you mean %q? ", s)
		}
		err = exitcode.New(exitcode.Usage, fmt.Errorf("unknown command %q: %srun 'ks-clean --help' for the commands", name, hint))
	}
	if err != nil && ctx.Err() != nil && (errors.Is(err, api.ErrInterrupted) || errors.Is(err, context.Canceled)) {
		err = exitcode.New(exitcode.Interrupted, err)
	}
	err = advise(err)
	if err != nil && err.Error() != "" { // exitcode.New(code, nil): already explained
		fmt.Fprintf(stderr, "ks-clean: %v\n", err)
	}
	return exitCode(err)
}

// normalize rewrites kubectl's spellings that urfave/cli does not parse:
// -ojson, --dry-run=server, a bare -v.
func normalize(args []string) ([]string, error) {
	out := make([]string, 0, len(args)+1)
	for i, x := range args {
		switch {
		case i == 0:
		case x == "-ojson" || x == "-oyaml" || x == "-otext":
			out = append(out, "-o", x[2:])
			continue
		case strings.HasPrefix(x, "--dry-run=") || strings.HasPrefix(x, "-dry-run="):
			switch v := x[strings.Index(x, "=")+1:]; v {
			case "server", "true":
				x = "--dry-run"
			case "none", "false":
				x = "--dry-run=false"
			default:
				return nil, exitcode.New(exitcode.Usage, fmt.Errorf("--dry-run=%s: ks-clean's dry run is always the server's (every write sent with dryRun=All); use --dry-run or --dry-run=server", v))
			}
		case x == "-v" || x == "--v":
			// kubectl needs a level; ks-clean's -v used to be --verbose.
			if i+1 == len(args) || !isNumber(args[i+1]) {
				x = "-v=1"
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// suggest returns the command a mistyped name is closest to, if it is
// close: at most two edits (a swap counts as one), or one for short names.
func suggest(cmds []*cli.Command, name string) string {
	best, bestDist := "", 3
	if len(name) <= 4 {
		bestDist = 2
	}
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		if d := editDistance(name, c.Name); d < bestDist {
			best, bestDist = c.Name, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
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
	api.FixBackup:     "give the backup directory apply printed (default PLAN.apply), as apply left it",
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
		// A command group (tenancy export|import): its subcommand's flags.
		for i+1 < len(args) && cmd.Command(args[i+1]) != nil {
			i++
			cmd = cmd.Command(args[i])
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
		return fmt.Errorf("%w: bind this user to the roles `ks-clean rbac scan` prints (scan, plan) and, for one apply, `ks-clean rbac apply PLAN` (docs/rbac)", err)
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
	requestTimeout      string
	verbose             bool
	level               int // -v
}

func readGlobals(c *cli.Context) globals {
	g := globals{kubeconfig: c.String("kubeconfig"), context: c.String("context"), requestTimeout: c.String("request-timeout"), level: c.Int("v")}
	if c.Bool("verbose") && g.level < 1 {
		g.level = 1
	}
	g.verbose = g.level >= 1
	return g
}

// timeout parses --request-timeout as kubectl does: a duration, or a bare
// number of seconds.
func (g globals) timeout() (time.Duration, error) {
	if d, err := clientcmd.ParseTimeout(g.requestTimeout); err == nil && d >= 0 {
		return d, nil
	}
	return 0, exitcode.New(exitcode.Usage, fmt.Errorf("--request-timeout %q: use 0 (no timeout), a positive duration such as 30s, or a number of seconds", g.requestTimeout))
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
		burst := limit.burst
		if burst <= 0 {
			burst = int(2 * limit.qps)
		}
		cl.Config.QPS, cl.Config.Burst = float32(limit.qps), max(1, burst)
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
	timeout, err := g.timeout()
	if err != nil {
		return nil, err
	}
	logLevel(g.level, c.App.ErrWriter)
	cl, err := kubeconfig.Load(kubeconfig.Options{
		Kubeconfig:     g.kubeconfig,
		Context:        context,
		ContextFlag:    flag,
		RequestTimeout: timeout,
		UserAgent:      "ks-clean/" + buildVersion().Version,
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

func (l *rateLimit) check() error {
	if l.set && l.qps <= 0 {
		return exitcode.New(exitcode.Usage, fmt.Errorf("--qps %v: give a positive number of requests per second (with --burst), or leave both out: by default apply goes at the pace the server's answers allow", l.qps))
	}
	return nil
}

func checkOutput(o string) error {
	switch o {
	case "text", "json", "yaml":
		return nil
	default:
		return exitcode.New(exitcode.Usage, fmt.Errorf("--output %q: use text, json or yaml", o))
	}
}

func checkConcurrency(n int) error {
	if n < 1 || n > 64 {
		return exitcode.New(exitcode.Usage, fmt.Errorf("--concurrency %d: use a number from 1 to 64", n))
	}
	return nil
}

// emit writes v as JSON or YAML for -o json|yaml, else text.
func emit(c *cli.Context, output string, v any, text func(io.Writer)) error {
	switch output {
	case "json":
		return writeJSON(c.App.Writer, v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = c.App.Writer.Write(b)
		return err
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

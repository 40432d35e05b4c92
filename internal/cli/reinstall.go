package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/internal/exitcode"
	"github.com/ks-clean/ks-clean/internal/render"
	"github.com/ks-clean/ks-clean/reinstall"
	"github.com/ks-clean/ks-clean/scan"
)

func reinstallCommand() *cli.Command {
	o := reinstall.DefaultOptions()
	var output string
	var confirmed bool
	var values, set, members cli.StringSlice
	return &cli.Command{
		Name:  "reinstall",
		Usage: "uninstall safely, prove the cluster clean, install KubeSphere with Helm, prove it healthy",
		Description: `1. plans and applies the uninstall with every safety of 'apply' (one confirmation
   for the whole; the plan and backup are kept under --work-dir, by default a
   private directory of this user: $XDG_STATE_HOME/ks-clean, else
   ~/.local/state/ks-clean, mode 0700);
2. rescans: any KubeSphere/KubeFed object left, or any critical finding, stops
   here, before anything is installed;
3. installs (or upgrades) --release in --namespace from --chart with the Helm
   SDK: a chart directory or .tgz on this machine, an https:// URL to a
   .tgz, or oci://REGISTRY/REPO; the last two need the exact --version
   (checked against the chart for all). Plain http:// is refused unless
   --insecure-http. --verify checks the .tgz against its provenance file
   (.prov beside it) with --keyring, as 'helm install --verify' does. A
   chart's dependencies must be in it: none is downloaded. The result names
   the chart and its sha256 digest (of the archive; of a directory, over its
   files);
4. proves the new install healthy: release deployed, no critical finding, one
   cluster record per cluster.

With --member-context (once per member), the members are torn down with the
host in one multi-cluster plan (unjoined on the host first, see 'ks-clean plan
--help') and each is proven clean; the install is on the host only: join the
members again from the new KubeSphere.

--dry-run stops after planning the uninstall and rendering the install.
--keep-tenancy exports KubeSphere's users (without password hashes unless
--keep-passwords), workspaces, roles, role bindings and which namespace is in
which workspace before the uninstall (to a file beside the plan), and imports
them after step 4, once the new install is proven healthy with one cluster
record per cluster ('ks-clean tenancy --help'). It carries 3.x to 3.x and 4.x
to 4.x; a chart of another major version is refused before anything changes.
On 3.x the namespaces put back in their workspaces become owned by their
Workspaces again, the normal state of a healthy 3.x install.

--keep-workspace-labels keeps kubesphere.io/workspace on namespaces so the new
install re-binds them to their workspaces (on 3.x that re-creates the
ownerReference from each namespace to its Workspace: the hazard this tool
removes).

Examples:
   # what would happen: plan the uninstall, render the install
   ks-clean reinstall --chart ./ks-core-1.1.3.tgz --dry-run

   # do it, asking for the context name first
   ks-clean reinstall --chart ./ks-core-1.1.3.tgz -f values.yaml --wait

   # keep users, workspaces and role bindings (3.x to 3.x, 4.x to 4.x)
   ks-clean reinstall --chart ./ks-core-1.1.3.tgz --keep-tenancy

   # unattended, a host and its member, result as JSON
   ks-clean reinstall --chart ./ks-core --context host --member-context member1 --confirm -o json`,
		Flags: []cli.Flag{
			outputFlag(&output),
			&cli.StringFlag{Name: "chart", Destination: &o.Chart, Usage: "chart directory, .tgz, https:// URL to a .tgz, or oci:// reference"},
			&cli.StringFlag{Name: "version", Destination: &o.Version, Usage: "exact chart version (required for https:// and oci:// charts)"},
			&cli.BoolFlag{Name: "verify", Destination: &o.Verify, Usage: "verify the chart archive against its provenance file (.prov) before using it"},
			&cli.StringFlag{Name: "keyring", Destination: &o.Keyring, Usage: "keyring of public keys for --verify (default: ~/.gnupg/pubring.gpg, or $GNUPGHOME/pubring.gpg)"},
			&cli.BoolFlag{Name: "insecure-http", Destination: &o.InsecureHTTP, Usage: "allow an http:// chart or values file (anyone on the path can change it)"},
			&cli.StringFlag{Name: "namespace", Value: o.Namespace, Destination: &o.Namespace, Usage: "release namespace"},
			&cli.StringFlag{Name: "release", Value: o.Release, Destination: &o.Release, Usage: "release name"},
			&cli.StringSliceFlag{Name: "values", Aliases: []string{"f"}, Destination: &values, Usage: "values file (repeatable)"},
			&cli.StringSliceFlag{Name: "set", Destination: &set, Usage: "value key=v (repeatable)"},
			&cli.BoolFlag{Name: "keep-tenancy", Destination: &o.KeepTenancy, Usage: "carry users, workspaces, roles and role bindings over the reinstall (see above)"},
			&cli.BoolFlag{Name: "keep-passwords", Destination: &o.KeepPasswords, Usage: "with --keep-tenancy: keep users' password hashes"},
			&cli.BoolFlag{Name: "keep-workspace-labels", Destination: &o.KeepWorkspaceLabels, Usage: "keep kubesphere.io/workspace on namespaces (see above)"},
			&cli.BoolFlag{Name: "wait", Destination: &o.Wait, Usage: "wait for the release's resources to be ready"},
			&cli.DurationFlag{Name: "timeout", Value: o.Timeout, Destination: &o.Timeout, Usage: "Helm install timeout"},
			&cli.DurationFlag{Name: "install-stuck-after", Value: o.StuckAfter, Destination: &o.StuckAfter, Usage: "give the install up early (and remove it again) when a Job it waits on has not progressed for this long; an image that cannot be pulled gives it up at once"},
			&cli.BoolFlag{Name: "dry-run", Destination: &o.DryRun, Usage: "plan the uninstall and render the install; change nothing"},
			confirmFlag(&confirmed, "do not ask"),
			&cli.StringFlag{Name: "work-dir", Destination: &o.WorkDir, Usage: "where the uninstall plan and its backup are written (default: a private directory of this user, see above)"},
			&cli.DurationFlag{Name: "finalizer-timeout", Value: o.Apply.FinalizerTimeout, Destination: &o.Apply.FinalizerTimeout, Usage: "see apply"},
			&cli.BoolFlag{Name: "helm-hooks", Destination: &o.Apply.HelmHooks, Usage: "run Helm hooks when uninstalling old releases"},
			&cli.StringSliceFlag{Name: "member-context", Destination: &members, Usage: "kubeconfig context of a member cluster to tear down with the host (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if o.Chart == "" {
				return exitcode.New(exitcode.Usage, errors.New("reinstall needs --chart: the ks-core chart to install (a directory, a .tgz, an https:// URL to one, or an oci:// reference with --version); see 'ks-clean reinstall --help'"))
			}
			o.ValueFiles, o.Set = values.Value(), set.Value()
			// Before connecting or asking: a chart that will be refused
			// must not cost a confirmation.
			if err := o.CheckChart(); err != nil {
				return err
			}
			host, err := connect(c, readGlobals(c).context, "--context", nil)
			if err != nil {
				return err
			}
			o.Context = host.Context
			for _, name := range members.Value() {
				m, err := connect(c, name, "--member-context", nil)
				if err != nil {
					return err
				}
				o.Members = append(o.Members, scan.Target{Context: name, Clients: m.Clients})
			}
			r := &reinstall.Reinstall{Clients: host.Clients, Options: o}
			if !r.DryRun && !confirmed {
				summary := fmt.Sprintf("Reinstall: uninstall everything of KubeSphere/KubeFed (users' namespaces are kept), then install %s as %s/%s.", r.Chart, r.Namespace, r.Release)
				if len(o.Members) > 0 {
					summary += fmt.Sprintf(" Members %v are torn down too (not reinstalled).", members.Value())
				}
				if err := confirm(c, summary, host.Context, host.Server); err != nil {
					return err
				}
			}
			prog := render.NewProgress(c.App.ErrWriter)
			r.Apply.Progress = prog.Event
			r.Notify = func(m string) { fmt.Fprintf(c.App.ErrWriter, "install: %s\n", m) }
			res, runErr := r.Run(c.Context)
			prog.Stop()
			if runErr != nil && res.Uninstall == nil {
				// Nothing was changed: the error alone says what stopped it,
				// with no half-printed plan or install before it.
				return explain(runErr, host.Server)
			}
			if err := emit(c, output, res, func(w io.Writer) { render.Reinstall(w, res, r.DryRun) }); err != nil {
				return err
			}
			return explain(runErr, host.Server)
		},
	}
}

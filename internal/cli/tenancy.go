package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/exitcode"
	"github.com/ks-clean/ks-clean/internal/render"
	"github.com/ks-clean/ks-clean/tenancy"
)

func tenancyCommand() *cli.Command {
	return &cli.Command{
		Name:  "tenancy",
		Usage: "export or import KubeSphere's users, workspaces, roles and role bindings",
		Description: `What an uninstall removes and an install does not bring back: KubeSphere's
users, workspaces (templates), global, workspace and namespace roles and role
bindings, groups, and which namespace is in which workspace. 'reinstall
--keep-tenancy' exports and imports them around the reinstall; these two
commands do each half by hand, with a file you can read and edit between.

Examples:
   # before an uninstall: save the tenancy (users without password hashes)
   ks-clean tenancy export --out tenancy.yaml

   # after the new install is healthy: see what would be created, then do it
   ks-clean tenancy import tenancy.yaml --dry-run
   ks-clean tenancy import tenancy.yaml --yes`,
		Subcommands: []*cli.Command{tenancyExportCommand(), tenancyImportCommand()},
	}
}

func tenancyExportCommand() *cli.Command {
	var o tenancy.ExportOptions
	var out, output string
	return &cli.Command{
		Name:  "export",
		Usage: "write the cluster's KubeSphere tenancy to a file (read-only)",
		Description: `Writes users, workspaces, roles, role bindings, groups and the namespace →
workspace map as YAML (JSON when --out ends in .json or with -o json), mode
0600: a new file renamed over --out, which must not be a symlink or other
non-regular file. Objects carry no server-set fields, status or finalizers; users carry
no password hash unless --keep-passwords (then the file is as secret as the
cluster's users). What a Helm chart installed is left out: the chart brings
it back; so is what is in Kubernetes' or KubeSphere's own namespaces, and
Kubernetes' namespaces in the namespace map (the installer puts them in
system-workspace; import refuses them without --allow-privileged).

Examples:
   ks-clean tenancy export --out tenancy.yaml
   ks-clean tenancy export --keep-passwords --out tenancy.yaml
   ks-clean tenancy export -o json | jq '.namespaces'`,
		Flags: []cli.Flag{
			outputFlag(&output),
			&cli.StringFlag{Name: "out", Destination: &out, Usage: "file to write (default: standard output)"},
			&cli.BoolFlag{Name: "keep-passwords", Destination: &o.KeepPasswords, Usage: "keep users' password hashes"},
		},
		Action: func(c *cli.Context) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if c.NArg() > 0 {
				return exitcode.New(exitcode.Usage, fmt.Errorf("tenancy export takes no arguments, got %q: use --out FILE", c.Args().First()))
			}
			host, err := connect(c, readGlobals(c).context, "--context", nil)
			if err != nil {
				return err
			}
			t, err := (&tenancy.Export{Clients: host.Clients, Options: o}).Run(c.Context)
			if err != nil {
				return explain(err, host.Server)
			}
			if out != "" {
				if err := api.WriteTenancy(out, t); err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "%s\nWritten to %s.\n", render.TenancySummary(t), out)
				return nil
			}
			b, err := api.MarshalTenancy(t, output == "json")
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(b)
			return err
		},
	}
}

func tenancyImportCommand() *cli.Command {
	var o tenancy.ImportOptions
	var output string
	var confirmed bool
	return &cli.Command{
		Name:      "import",
		Usage:     "create a tenancy file's missing objects and put namespaces back in their workspaces",
		ArgsUsage: "FILE",
		Description: `Creates what the file holds and the cluster lacks, in order (roles, users and
groups, workspaces, then bindings), owner references pointing at the owners
as they are now, and labels each namespace of the map that is in no
workspace with kubesphere.io/workspace. It never changes what exists: an
object that is there and differs is a conflict, and a namespace in another
workspace stays there; both are listed.

Before any write it refuses (exit 2, nothing changed):
  - a file that is not a tenancy export, or holds anything but KubeSphere's
    tenancy kinds, or carries what its header denies (password hashes in a
    file that says passwords: false, objects of another KubeSphere version);
  - a file that grants more than tenancy, unless --allow-privileged: bindings
    to Kubernetes' built-in or system: roles or to platform-admin, bindings
    of ServiceAccounts or system: principals, cluster-wide roles that reach
    every resource, Secrets or RBAC, anything in Kubernetes' or KubeSphere's
    own namespaces, and namespace-map entries for Kubernetes' own namespaces
    (objects already in the cluster are never changed, so they pass);
  - a cluster that does not serve the file's versions (KubeSphere not
    installed, or another major version: see docs/runbook-keep-tenancy.md);
  - a cluster with a critical hazard, such as two cluster records for one API
    server: on KubeSphere 3.x the namespaces put back in their workspaces
    become owned by Workspaces again, which such a cluster deletes and
    re-creates;
  - a cluster whose Lease another ks-clean holds (wait for it to finish).
Importing again is safe: what is there is skipped.

Examples:
   ks-clean tenancy import tenancy.yaml --dry-run
   ks-clean tenancy import tenancy.yaml            # asks for the context name
   ks-clean tenancy import tenancy.yaml --yes -o json
   ks-clean tenancy import tenancy.yaml --allow-privileged --dry-run   # platform admins too`,
		Flags: []cli.Flag{
			outputFlag(&output),
			confirmFlag(&confirmed, "do not ask: import"),
			serverDryRunFlag(&o.DryRun),
			&cli.BoolFlag{Name: "allow-privileged", Destination: &o.AllowPrivileged, Usage: "also create what grants more than tenancy (platform admins, Kubernetes' roles, system namespaces); read the file first"},
		},
		Action: func(c *cli.Context) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitcode.New(exitcode.Usage, errors.New("tenancy import takes one argument, the file 'ks-clean tenancy export' wrote: ks-clean tenancy import FILE"))
			}
			t, err := api.ReadTenancy(c.Args().First())
			if errors.Is(err, os.ErrNotExist) {
				return exitcode.New(exitcode.Usage, fmt.Errorf("%w: give the file 'ks-clean tenancy export' (or 'reinstall --keep-tenancy') wrote", err))
			}
			if err != nil {
				return err
			}
			host, err := connect(c, readGlobals(c).context, "--context", nil)
			if err != nil {
				return err
			}
			if !confirmed && !o.DryRun {
				if err := confirm(c, "Import: "+render.TenancySummary(t), host.Context, host.Server); err != nil {
					return err
				}
			}
			res, runErr := (&tenancy.Import{Clients: host.Clients, Tenancy: t, Options: o}).Run(c.Context)
			if errors.Is(runErr, tenancy.ErrPrivileged) {
				return fmt.Errorf("%w; if you mean to grant it, pass --allow-privileged", runErr)
			}
			if runErr != nil && len(res.Objects) == 0 {
				return explain(runErr, host.Server)
			}
			if err := emit(c, output, res, func(w io.Writer) { render.TenancyImport(w, res) }); err != nil {
				return err
			}
			return explain(runErr, host.Server)
		},
	}
}

package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/exitcode"
	"github.com/ks-clean/ks-clean/multicluster"
	"github.com/ks-clean/ks-clean/reinstall"
	"github.com/ks-clean/ks-clean/uninstall"
)

func reinstallCommand(output cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "reinstall",
		Usage: "uninstall safely, prove the cluster clean, install KubeSphere with Helm, prove it healthy",
		Description: `1. plans and applies the uninstall with every safety of 'apply' (one confirmation
   for the whole; the plan and backup are kept under --work-dir);
2. rescans: any KubeSphere/KubeFed object left, or any critical finding, stops
   here, before anything is installed;
3. installs (or upgrades) --release in --namespace from --chart with the Helm
   SDK: a chart directory, a .tgz, a URL to one, or oci://REGISTRY/REPO;
4. proves the new install healthy: release deployed, no critical finding, one
   cluster record per cluster.

With --member-context (once per member), the members are torn down with the
host in one multi-cluster plan (unjoined on the host first, see 'ks-clean plan
--help') and each is proven clean; the install is on the host only: join the
members again from the new KubeSphere.

--dry-run stops after planning the uninstall and rendering the install.
--keep-workspace-labels keeps kubesphere.io/workspace on namespaces so the new
install re-binds them to their workspaces (on 3.x that re-creates the
ownerReference from each namespace to its Workspace: the hazard this tool
removes).`,
		Flags: []cli.Flag{
			output,
			&cli.StringFlag{Name: "chart", Required: true, Usage: "chart directory, .tgz, URL, or oci:// reference"},
			&cli.StringFlag{Name: "version", Usage: "chart version (repository and oci charts)"},
			&cli.StringFlag{Name: "namespace", Value: "kubesphere-system", Usage: "release namespace"},
			&cli.StringFlag{Name: "release", Value: "ks-core", Usage: "release name"},
			&cli.StringSliceFlag{Name: "values", Aliases: []string{"f"}, Usage: "values file (repeatable)"},
			&cli.StringSliceFlag{Name: "set", Usage: "value key=v (repeatable)"},
			&cli.BoolFlag{Name: "keep-workspace-labels", Usage: "keep kubesphere.io/workspace on namespaces (see above)"},
			&cli.BoolFlag{Name: "wait", Usage: "wait for the release's resources to be ready"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "Helm install timeout"},
			&cli.BoolFlag{Name: "dry-run", Usage: "plan the uninstall and render the install; change nothing"},
			&cli.BoolFlag{Name: "confirm", Usage: "do not ask"},
			&cli.StringFlag{Name: "work-dir", Value: ".", Usage: "where the uninstall plan and its backup are written"},
			&cli.DurationFlag{Name: "finalizer-timeout", Value: 60 * time.Second, Usage: "see apply"},
			&cli.BoolFlag{Name: "helm-hooks", Usage: "run Helm hooks when uninstalling old releases"},
			&cli.StringSliceFlag{Name: "member-context", Usage: "kubeconfig context of a member cluster to tear down with the host (repeatable)"},
		},
		Action: runReinstall,
	}
}

func runReinstall(c *cli.Context) error {
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	cl, clients, err := connect(c)
	if err != nil {
		return err
	}
	var members []multicluster.Target
	for _, name := range c.StringSlice("member-context") {
		_, mc, err := connectContext(c, name, "--member-context")
		if err != nil {
			return err
		}
		members = append(members, multicluster.Target{Context: name, Clients: mc})
	}
	planPath := filepath.Join(c.String("work-dir"), fmt.Sprintf("ks-clean-reinstall-%s.json", time.Now().UTC().Format("20060102-150405")))
	r := &reinstall.Reinstall{Clients: clients, Options: reinstall.Options{
		Chart: c.String("chart"), Version: c.String("version"), Namespace: c.String("namespace"), Release: c.String("release"),
		ValueFiles: c.StringSlice("values"), Set: c.StringSlice("set"),
		KeepWorkspaceLabels: c.Bool("keep-workspace-labels"), Wait: c.Bool("wait"), Timeout: c.Duration("timeout"),
		DryRun: c.Bool("dry-run"), PlanPath: planPath, Context: cl.Context, Members: members,
		Apply: uninstall.Options{FinalizerTimeout: c.Duration("finalizer-timeout"), HelmHooks: c.Bool("helm-hooks")},
	}}
	if !r.DryRun && !c.Bool("confirm") {
		summary := fmt.Sprintf("Reinstall: uninstall everything of KubeSphere/KubeFed (users' namespaces are kept), then install %s as %s/%s.", r.Chart, r.Namespace, r.Release)
		if len(members) > 0 {
			summary += fmt.Sprintf(" Members %v are torn down too (not reinstalled).", c.StringSlice("member-context"))
		}
		if err := confirm(c, summary, cl.Context, cl.Server); err != nil {
			return err
		}
	}
	prog := newProgress(c.App.ErrWriter)
	r.Apply.Progress = prog.event
	res, runErr := r.Run(c.Context)
	prog.stop()
	if format == "json" {
		if err := writeJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else {
		printReinstall(c.App.Writer, res, r.DryRun)
	}
	if runErr != nil {
		return exitcode.New(exitcode.Error, runErr)
	}
	return nil
}

func printReinstall(w io.Writer, res *reinstall.Result, dryRun bool) {
	if res == nil {
		return
	}
	fmt.Fprintf(w, "Uninstall plan: %s (%d steps)\n", res.PlanPath, res.Steps)
	if dryRun {
		fmt.Fprintf(w, "Dry run: nothing changed. The install would create:\n%s\n", res.Manifest)
		return
	}
	if u := res.Uninstall; u != nil {
		fmt.Fprintf(w, "Uninstall: %d steps done, %d skipped, %d failed; backup in %s\n", u.Done, u.Skipped, u.Failed, u.BackupDir)
	}
	if m := res.UninstallStages; m != nil {
		for _, st := range m.Stages {
			u := st.Result
			fmt.Fprintf(w, "Uninstall stage %s (context %s): %d steps done, %d skipped, %d failed; backup in %s\n", st.Name, st.Context, u.Done, u.Skipped, u.Failed, u.BackupDir)
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
}

package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/exitcode"
	"github.com/ks-clean/ks-clean/internal/render"
	"github.com/ks-clean/ks-clean/restore"
)

func restoreCommand() *cli.Command {
	o := restore.DefaultOptions()
	var output string
	var confirmed bool
	return &cli.Command{
		Name:      "restore",
		Usage:     "put back what an apply deleted, from its backup",
		ArgsUsage: "BACKUP",
		Description: `Recreates what the apply whose backup is BACKUP deleted (BACKUP is the
directory apply printed, by default PLAN.apply), in dependency order:
namespaces; CustomResourceDefinitions, each waited until Established;
cluster-scoped objects, then namespaced ones (owners first, their owner
references pointing at the owners' new UIDs); workloads scaled back to the
replicas apply found; webhooks and APIServices last. A restored claim gets
its retained volume back.

Nothing that exists is overwritten: an object that is there and differs from
the backup is a conflict, listed and left alone. Users' namespaces stay
detached from the Workspaces that owned them unless --reattach (on
KubeSphere 3.x that brings back the hazard the detach removed; 'ks-clean
scan' then names it again). Retained volumes keep the Retain policy.

Before any write it refuses (exit 2, nothing changed) a backup that is
incomplete, edited since apply wrote it, another cluster's, or of an apply
that changed nothing; that holds a link, a special file, a path leaving the
directory or a file too large; or whose index lists what apply would never
have backed up. It creates only what the apply's journal says it deleted.

A backup is a file anyone who could write it may have made. Objects that
grant or intercept access are created only for the kinds named with
--allow-kind (repeatable): ClusterRole, ClusterRoleBinding, Role,
RoleBinding, admission webhooks and policies, APIService, and Secrets
outside the namespaces the apply deleted. Without it, restore lists them
and refuses; check them in the backup, then name their kinds. Restoring
KubeSphere needs its RBAC and webhooks back: see docs/runbook-restore.md.

The plan it runs is saved as BACKUP/restore-plan.json
and its progress journaled beside it: after a crash or Ctrl-C the same
command resumes. It holds the cluster's Lease, as apply does, and ends with a
check that every object it created is there and every object apply kept
still has its UID.

Examples:
   # what would come back, every write sent with dryRun=All
   ks-clean restore plan.json.apply --dry-run

   # KubeSphere's own RBAC and webhooks too, once the list is checked
   ks-clean restore plan.json.apply --dry-run --allow-kind ClusterRole \
     --allow-kind ClusterRoleBinding --allow-kind Role --allow-kind RoleBinding \
     --allow-kind ValidatingWebhookConfiguration --allow-kind MutatingWebhookConfiguration

   # restore with the same flags, typing the context name to confirm
   ks-clean restore plan.json.apply --allow-kind ClusterRole ...

   # unattended, result as JSON
   ks-clean restore plan.json.apply --allow-kind ClusterRole ... --yes -o json > restored.json`,
		Flags: []cli.Flag{
			outputFlag(&output),
			confirmFlag(&confirmed, "do not ask: restore"),
			serverDryRunFlag(&o.DryRun),
			&cli.BoolFlag{Name: "reattach", Destination: &o.Reattach, Usage: "give users' namespaces back the owner references and labels apply's detach removed"},
			&cli.IntFlag{Name: "concurrency", Value: o.Concurrency, Destination: &o.Concurrency, Usage: "most writes in flight at once (1-64)"},
			&cli.StringSliceFlag{Name: "allow-kind", Usage: "create objects of this kind from the backup (repeatable): " + strings.Join(restore.SensitiveKinds, ", ")},
		},
		Action: func(c *cli.Context) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitcode.New(exitcode.Usage, errors.New("restore takes one argument, the backup directory of an apply: ks-clean restore PLAN.apply"))
			}
			if err := checkConcurrency(o.Concurrency); err != nil {
				return err
			}
			o.AllowKinds = c.StringSlice("allow-kind")
			for _, k := range o.AllowKinds {
				if !slices.Contains(restore.SensitiveKinds, k) {
					return exitcode.New(exitcode.Usage, fmt.Errorf("--allow-kind %q: not a kind restore asks for; one of %s", k, strings.Join(restore.SensitiveKinds, ", ")))
				}
			}
			dir := c.Args().First()
			srcs, err := restore.Load(dir)
			if err != nil {
				return err
			}
			stages := &api.Plan{}
			for _, s := range srcs {
				stages.Stages = append(stages.Stages, *s.Stage)
			}
			clients, host, err := connectPlan(c, stages, dir, nil)
			if err != nil {
				return err
			}
			// A real run resumes the plan it saved; a dry run plans anew
			// and saves nothing: the cluster may change before the real run.
			planPath := filepath.Join(dir, restore.PlanFile)
			var p *api.RestorePlan
			if _, serr := os.Lstat(planPath); serr == nil && !o.DryRun {
				if p, err = api.ReadRestorePlan(planPath); err != nil {
					return err
				}
				// Saved by an earlier run, or by anyone: it may do only
				// what the backup and the flags allow.
				if err := restore.Check(p, srcs, o); err != nil {
					return err
				}
			} else {
				if p, err = restore.Build(c.Context, srcs, clients, dir, o); err != nil {
					return explain(err, host.Server)
				}
				if !o.DryRun {
					if err := api.WriteRestorePlan(planPath, p); err != nil {
						return err
					}
				}
			}
			if !confirmed && !o.DryRun {
				if err := confirm(c, render.RestorePlan(p), host.Context, host.Server); err != nil {
					return err
				}
			}
			r := &restore.Restore{Plan: p, Clients: clients, PlanPath: planPath, Options: o}
			res, runErr := r.Run(c.Context)
			if _, refused := api.AsRefusal(runErr); refused {
				return explain(runErr, host.Server)
			}
			if err := emit(c, output, res, func(w io.Writer) { render.Restore(w, res, p) }); err != nil {
				return err
			}
			if runErr != nil {
				return explain(fmt.Errorf("restore: %w", runErr), host.Server)
			}
			return nil
		},
	}
}

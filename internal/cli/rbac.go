package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/exitcode"
	"github.com/ks-clean/ks-clean/internal/render"
	"github.com/ks-clean/ks-clean/rbac"
	"github.com/ks-clean/ks-clean/scan"
)

func rbacCommand() *cli.Command {
	return &cli.Command{
		Name:  "rbac",
		Usage: "print the least RBAC a scan, or the apply of one plan, needs (read-only)",
		Description: `ks-clean's own account need not be cluster-admin. Run these as an
administrator; they scan the cluster and print roles and bindings for
'kubectl apply -f -':

  scan   reads every type the cluster serves, and Secrets only where a scan
         needs them: KubeSphere's and KubeFed's Helm release records, KubeFed's
         cluster tokens, the namespaces the teardown deletes. Bind it to run
         scan and plan; elsewhere a scan sees no Secret, and says so.
  apply  the writes of one plan, by name: each step's verb on its target,
         the Lease and the deletion guard, reads and finalizer patches inside
         the namespaces the plan deletes, and what its Helm releases install.
         Bind it, with the scan role, just for that apply, then delete it:
         it is named after the plan's digest.

Examples:
   # a Job's service account may scan and plan
   ks-clean rbac scan --serviceaccount ks-clean:ks-clean | kubectl apply -f -

   # after review, let it apply exactly this plan; remove the grant after
   ks-clean rbac apply plan.json --serviceaccount ks-clean:ks-clean > apply-rbac.yaml
   kubectl apply -f apply-rbac.yaml
   kubectl delete -f apply-rbac.yaml

   # a person's account instead of a service account
   ks-clean rbac scan --user alice`,
		Subcommands: []*cli.Command{rbacScanCommand(), rbacApplyCommand()},
	}
}

// subjectFlags are kubectl create rolebinding's --serviceaccount and --user.
type subjectFlags struct{ serviceAccount, user, output string }

func (f *subjectFlags) flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "yaml", Destination: &f.output, Usage: "yaml (documents for kubectl apply -f -) or json (a v1 List)"},
		&cli.StringFlag{Name: "serviceaccount", Destination: &f.serviceAccount, Usage: "bind to this service account, NAMESPACE:NAME (default ks-clean:ks-clean, that of docs/deploy)"},
		&cli.StringFlag{Name: "user", Destination: &f.user, Usage: "bind to this user name instead"},
	}
}

func (f *subjectFlags) subject() (rbac.Subject, error) {
	if f.output != "yaml" && f.output != "json" {
		return rbac.Subject{}, exitcode.New(exitcode.Usage, fmt.Errorf("--output %q: use yaml or json", f.output))
	}
	switch {
	case f.user != "" && f.serviceAccount != "":
		return rbac.Subject{}, exitcode.New(exitcode.Usage, fmt.Errorf("--user and --serviceaccount: give one"))
	case f.user != "":
		return rbac.User(f.user), nil
	case f.serviceAccount == "":
		return rbac.ServiceAccount("ks-clean", "ks-clean"), nil
	}
	ns, name, ok := strings.Cut(f.serviceAccount, ":")
	if !ok || ns == "" || name == "" {
		return rbac.Subject{}, exitcode.New(exitcode.Usage, fmt.Errorf("--serviceaccount %q: use NAMESPACE:NAME, as kubectl does", f.serviceAccount))
	}
	return rbac.ServiceAccount(ns, name), nil
}

func (f *subjectFlags) emit(c *cli.Context, r *rbac.Roles) error {
	objs := r.Objects()
	if f.output == "json" {
		return writeJSON(c.App.Writer, map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
	}
	b, err := r.YAML()
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(b)
	return err
}

// scanOne scans the cluster of --context (or context, when given).
func scanOne(c *cli.Context, context, flag string) (*scan.Result, error) {
	conn, err := connect(c, context, flag, nil)
	if err != nil {
		return nil, err
	}
	stop := render.Spin(c.App.ErrWriter, "scanning "+conn.Server)
	rep, err := scan.Run(c.Context, []scan.Target{{Context: conn.Context, Clients: conn.Clients}}, scan.Options{})
	stop()
	if err != nil {
		return nil, explain(err, conn.Server)
	}
	return rep.Host(), nil
}

func rbacScanCommand() *cli.Command {
	f := &subjectFlags{}
	return &cli.Command{
		Name:  "scan",
		Usage: "print the scan role for this cluster",
		Description: `Scans the cluster (--context) and prints the ClusterRole ks-clean-scan, its
binding, and a Role and RoleBinding ks-clean-scan in each namespace where a
scan reads Secrets. Make it again after KubeSphere or an extension is
installed in other namespaces.

Examples:
   ks-clean rbac scan | kubectl apply -f -
   ks-clean rbac scan --context prod --user alice -o json`,
		Flags: f.flags(),
		Action: func(c *cli.Context) error {
			subject, err := f.subject()
			if err != nil {
				return err
			}
			if c.NArg() > 0 {
				return exitcode.New(exitcode.Usage, fmt.Errorf("rbac scan takes no arguments, got %q", c.Args().First()))
			}
			res, err := scanOne(c, readGlobals(c).context, "--context")
			if err != nil {
				return err
			}
			return f.emit(c, rbac.ScanFor(res, subject))
		},
	}
}

func rbacApplyCommand() *cli.Command {
	f := &subjectFlags{}
	return &cli.Command{
		Name:      "apply",
		Usage:     "print the roles that let one plan be applied",
		ArgsUsage: "PLAN",
		Description: `Reads the plan, scans the cluster it is for, and prints a ClusterRole, Roles
and bindings named ks-clean-apply-DIGEST with exactly the writes of the
plan's steps on that cluster. Bind the scan role too: apply scans again
before its first write. A plan of several clusters: one cluster at a time,
chosen with --context (default: the plan's host).

Examples:
   ks-clean rbac apply plan.json | kubectl apply -f -
   ks-clean rbac apply fleet.json --context member1 | kubectl --context member1 apply -f -`,
		Flags: f.flags(),
		Action: func(c *cli.Context) error {
			subject, err := f.subject()
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitcode.New(exitcode.Usage, fmt.Errorf("rbac apply takes one plan file, e.g. ks-clean rbac apply plan.json"))
			}
			path := c.Args().First()
			p, err := api.Read(path)
			if err != nil {
				return err
			}
			context := readGlobals(c).context
			st := stageOn(p, context)
			if st == nil {
				return exitcode.New(exitcode.Usage, fmt.Errorf("plan %s has no stage on context %q: use one of %v", path, context, p.Contexts()))
			}
			flag := "--context"
			if p.Single() == nil {
				context = st.Cluster.Context
				flag = "stage " + st.Name + " of the plan runs there"
			}
			res, err := scanOne(c, context, flag)
			if err != nil {
				return err
			}
			if res.Cluster.UID != st.Cluster.UID {
				return api.Refuse(api.FixNone, "plan %s is for the cluster whose kube-system UID is %s, but this context reaches %s (UID %s): use the context the plan was made with", path, st.Cluster.UID, res.Cluster.Server, res.Cluster.UID)
			}
			roles, err := rbac.ApplyFor(p, st.Cluster.Context, res, subject)
			if err != nil {
				return err
			}
			return f.emit(c, roles)
		},
	}
}

// stageOn is the stage rbac apply prints roles for: a single-cluster plan's
// one stage, else the first stage on context (the host's when none is
// given); nil when no stage runs there.
func stageOn(p *api.Plan, context string) *api.Stage {
	if st := p.Single(); st != nil {
		return st
	}
	if context == "" {
		return &p.Stages[0]
	}
	for i := range p.Stages {
		if p.Stages[i].Cluster.Context == context {
			return &p.Stages[i]
		}
	}
	return nil
}

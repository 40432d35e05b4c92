package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/internal/exitcode"
	"github.com/ks-clean/ks-clean/internal/render"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/scan/hazard"
)

// scanOptions are the flags scan and plan share.
type scanOptions struct {
	output         string
	concurrency    int
	clusterTimeout time.Duration
	members        cli.StringSlice
	keepLabels     bool
	removeAPI      cli.StringSlice
}

func (o *scanOptions) flags() []cli.Flag {
	d := hazard.DefaultOptions()
	return []cli.Flag{
		outputFlag(&o.output),
		&cli.IntFlag{Name: "concurrency", Value: d.Concurrency, Destination: &o.concurrency, Usage: "API lists in flight at once (1-64)"},
		&cli.DurationFlag{Name: "cluster-timeout", Value: d.Timeout, Destination: &o.clusterTimeout, Usage: "timeout to reach each multi-cluster record's API server with its own credentials"},
		&cli.StringSliceFlag{Name: "member-context", Destination: &o.members, Usage: "kubeconfig context of a member cluster of the host (--context); repeat for each member: host and members are scanned and planned together"},
	}
}

func (o *scanOptions) validate() error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	return checkConcurrency(o.concurrency)
}

func (o *scanOptions) options() scan.Options {
	so := scan.Options{}
	so.Inventory.Concurrency = o.concurrency
	so.Footprint.KeepWorkspaceLabels = o.keepLabels
	so.Footprint.RemoveAPIServices = o.removeAPI.Value()
	so.Hazard = hazard.Options{Timeout: o.clusterTimeout, Concurrency: o.concurrency}
	return so
}

// run validates the flags, then connects to the host (--context) and each
// member, and scans them.
func (o *scanOptions) run(c *cli.Context) (*scan.Report, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	g := readGlobals(c)
	host, err := connect(c, g.context, "--context", nil)
	if err != nil {
		return nil, err
	}
	targets := []scan.Target{{Context: host.Context, Clients: host.Clients}}
	for _, name := range o.members.Value() {
		m, err := connect(c, name, "--member-context", nil)
		if err != nil {
			return nil, err
		}
		targets = append(targets, scan.Target{Context: m.Context, Clients: m.Clients})
	}
	msg := "scanning " + host.Server
	if len(targets) > 1 {
		msg = fmt.Sprintf("scanning the host and %d members", len(targets)-1)
	}
	stop := render.Spin(c.App.ErrWriter, msg)
	rep, err := scan.Run(c.Context, targets, o.options())
	stop()
	if err != nil {
		return nil, explain(err, host.Server)
	}
	if g.verbose {
		for _, r := range rep.Clusters {
			fmt.Fprintf(c.App.ErrWriter, "scanned %s in %s\n", r.Cluster.Server, r.Duration.Round(time.Millisecond))
		}
		fmt.Fprintf(c.App.ErrWriter, "API requests to %s: %d (%s)\n", host.Server, host.Clients.Requests.Total(), host.Clients.Requests)
	}
	return rep, nil
}

func scanCommand() *cli.Command {
	o := &scanOptions{}
	return &cli.Command{
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

Exit 0: no critical hazard. Exit 3: at least one critical hazard. Exit 1: error.

Examples:
   # the current context
   ks-clean scan

   # another context, every object listed
   ks-clean scan --context prod -v

   # for scripts: the verdict is the exit code, the details are JSON
   ks-clean scan -o json > scan.json; echo $?

   # a host with its members
   ks-clean scan --context host --member-context member1 --member-context member2`,
		Flags: o.flags(),
		Action: func(c *cli.Context) error {
			rep, err := o.run(c)
			if err != nil {
				return err
			}
			if err := emit(c, o.output, rep.JSON(), func(w io.Writer) { style(c).Scan(w, rep) }); err != nil {
				return err
			}
			if rep.Critical() {
				if o.output != "text" {
					// The document says it (.critical), and a Job's log, which
					// merges stderr into stdout, stays one document for jq.
					return exitcode.New(exitcode.Critical, nil)
				}
				return exitcode.New(exitcode.Critical, fmt.Errorf("critical hazards found: read them above before changing anything"))
			}
			return nil
		},
	}
}

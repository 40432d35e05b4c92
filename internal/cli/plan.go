package cli

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
)

func planCommand() *cli.Command {
	o := &scanOptions{}
	var out string
	var protect cli.StringSlice
	var deleteVolumes bool
	return &cli.Command{
		Name:  "plan",
		Usage: "write the ordered teardown plan (read-only)",
		Description: `Scans, then orders every KubeSphere/KubeFed object into a teardown:
preflight, quiesce, disarm, detach, kubefed, kubesphere, helm, namespaces,
crds, rbac, verify. Users' namespaces and every object tied to the footprint
are protected: they are detached, never deleted. The PersistentVolume of every
claim that goes is switched to Retain first (--delete-volumes opts out), so
Prometheus, OpenSearch, Jenkins or a user's data outlives it. The plan is checked against
its safety rules before it is written.

--out FILE saves it (mode 0600) for review and for 'ks-clean apply'.

Multi-cluster: --context HOST --member-context M1 --member-context M2 makes one
plan in stages, each a whole plan for one cluster whose steps name it:
  1. unjoin (on the host): stop the host's controllers, delete the members'
     Cluster and KubeFedCluster records and their token Secrets;
  2. each member's teardown (its join ServiceAccount and RBAC included);
  3. the host's teardown.
A member registered in another host is refused (exit 2).

Examples:
   # plan, review, then apply
   ks-clean plan --out plan.json
   ks-clean apply plan.json

   # refuse to plan unless these namespaces survive
   ks-clean plan --out plan.json --protect prod-a --protect prod-b

   # a host and its members in one plan
   ks-clean plan --context host --member-context member1 --out plan.json

   # the plan as YAML on stdout
   ks-clean plan -o yaml`,
		Flags: append(o.flags(),
			&cli.StringFlag{Name: "out", Destination: &out, Usage: "save the plan to this file (JSON, mode 0600)"},
			&cli.StringSliceFlag{Name: "protect", Destination: &protect, Usage: "namespace that must survive (repeatable): refuse to plan if it does not exist or the plan would delete it"},
			&cli.BoolFlag{Name: "delete-volumes", Destination: &deleteVolumes, Usage: "let the PersistentVolumes of claims the teardown deletes follow their reclaim policy (by default each is switched to Retain first, so its data survives)"},
			&cli.StringSliceFlag{Name: "remove-apiservice", Destination: &o.removeAPI, Usage: "also remove this APIService (repeatable): for an unavailable one that is not KubeSphere's, which would keep every namespace deletion from finishing; plan refuses and names it"},
			&cli.BoolFlag{Name: "keep-workspace-labels", Destination: &o.keepLabels, Usage: "keep kubesphere.io/workspace on namespaces so a new install re-binds them (on 3.x this re-creates the ownerReference hazard)"},
		),
		Action: func(c *cli.Context) error {
			rep, err := o.run(c)
			if err != nil {
				return err
			}
			if err := removedAPIServicesExist(rep, o.removeAPI.Value()); err != nil {
				return err
			}
			p, err := plan.Build(rep, plan.Options{Protect: protect.Value(), DeleteVolumes: deleteVolumes})
			if err != nil {
				return err
			}
			if out != "" {
				if err := api.Write(out, p); err != nil {
					return err
				}
				defer fmt.Fprintf(c.App.ErrWriter, "plan saved to %s (%s)\n", out, p.Digest)
			}
			return emit(c, o.output, p, func(w io.Writer) { style(c).Plan(w, p, holdsOf(rep)) })
		},
	}
}

// removedAPIServicesExist refuses a --remove-apiservice that names no
// APIService of the scanned clusters: a typo must not pass for a decision.
func removedAPIServicesExist(rep *scan.Report, names []string) error {
	found := map[string]bool{}
	for _, res := range rep.Clusters {
		for _, a := range res.Footprint.Inv.OfKind("apiregistration.k8s.io", "APIService") {
			found[a.GetName()] = true
		}
	}
	for _, n := range names {
		if !found[n] {
			return api.Refuse(api.FixNone, "--remove-apiservice %s: no such APIService on the scanned clusters (kubectl get apiservices lists them)", n)
		}
	}
	return nil
}

// holdsOf says, for each context and namespace, what the namespace holds.
func holdsOf(rep *scan.Report) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, res := range rep.Clusters {
		holds := map[string]string{}
		for ns, t := range res.Footprint.Inv.Holds() {
			holds[ns] = t.String()
		}
		out[res.Cluster.Context] = holds
	}
	return out
}

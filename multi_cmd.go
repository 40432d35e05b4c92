package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/exitcode"
	"github.com/ks-clean/ks-clean/kube"
	"github.com/ks-clean/ks-clean/multicluster"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/render"
	"github.com/ks-clean/ks-clean/teardown"
	"github.com/ks-clean/ks-clean/uninstall"
)

// doScanMulti scans the host (--context) and each --member-context.
func doScanMulti(c *cli.Context) (*multicluster.Report, error) {
	if err := checkConcurrency(c); err != nil {
		return nil, err
	}
	hostCl, hostClients, err := connect(c)
	if err != nil {
		return nil, err
	}
	host := multicluster.Target{Context: hostCl.Context, Clients: hostClients}
	var members []multicluster.Target
	for _, name := range c.StringSlice("member-context") {
		cl, clients, err := connectContext(c, name, "--member-context")
		if err != nil {
			return nil, err
		}
		members = append(members, multicluster.Target{Context: cl.Context, Clients: clients})
	}
	stop := spin(c.App.ErrWriter, fmt.Sprintf("scanning the host and %d members", len(members)))
	rep, err := multicluster.Scan(c.Context, host, members, scanOptions(c))
	stop()
	if err != nil {
		return nil, explain(err, hostCl.Server)
	}
	return rep, nil
}

func runScanMulti(c *cli.Context, format string) error {
	rep, err := doScanMulti(c)
	if err != nil {
		return err
	}
	if format == "json" {
		if err := writeJSON(c.App.Writer, rep.JSON()); err != nil {
			return err
		}
		return criticalExit(rep.Critical())
	}
	w, st := c.App.Writer, style(c)
	for i, res := range rep.Results() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		st.Header(w, res.Cluster, res.KubeSphere)
		st.Findings(w, res.Findings)
		for _, note := range res.Warnings {
			fmt.Fprintf(w, "note: %s\n", note)
		}
		fmt.Fprintf(w, "%s\n", scanSummary(res))
	}
	fmt.Fprintf(w, "\nAcross the clusters:")
	st.Findings(w, rep.Findings)
	return criticalExit(rep.Critical())
}

func runPlanMulti(c *cli.Context, format string) error {
	rep, err := doScanMulti(c)
	if err != nil {
		return err
	}
	if err := teardown.RequireKept(rep.Results(), c.StringSlice("protect")); err != nil {
		return err
	}
	mp, err := multicluster.Build(rep, time.Now())
	if err != nil {
		return err
	}
	if out := c.String("out"); out != "" {
		if err := plan.WriteMulti(out, mp); err != nil {
			return err
		}
		defer fmt.Fprintf(c.App.ErrWriter, "plan saved to %s (%s)\n", out, mp.Digest)
	}
	if format == "json" {
		return writeJSON(c.App.Writer, mp)
	}
	holds := map[string]map[string]string{}
	for _, res := range rep.Results() {
		holds[res.Cluster.Context] = holdsOf(res)
	}
	style(c).MultiPlan(c.App.Writer, mp, holds)
	return nil
}

// runApplyMulti applies a multi-cluster plan: the contexts come from the
// plan, from the kubeconfig the global flags select; one confirmation (the
// host's context name) covers every stage.
func runApplyMulti(c *cli.Context, format, path string, mp *plan.MultiCluster) error {
	if ctx := c.String("context"); ctx != "" && ctx != mp.Host {
		return exitcode.New(exitcode.Usage, fmt.Errorf("plan %s is for host context %q and its members, not --context %q: drop --context, or make a plan for that context", path, mp.Host, ctx))
	}
	clients := map[string]*kube.Clients{}
	server := ""
	for _, st := range mp.Stages {
		if clients[st.Context] != nil {
			continue
		}
		cl, cs, err := connectContext(c, st.Context, "stage "+st.Name+" of the plan runs there: use a kubeconfig that defines it (--kubeconfig, or KUBECONFIG=host.yaml:member.yaml)")
		if err != nil {
			return err
		}
		clients[st.Context] = cs
		if st.Context == mp.Host {
			server = cl.Server
		}
	}
	if !c.Bool("confirm") && !c.Bool("dry-run") {
		if err := confirm(c, render.MultiSummary(mp), mp.Host, server); err != nil {
			return err
		}
	}
	prog := newProgress(c.App.ErrWriter)
	a := &uninstall.ApplyMulti{Plan: mp, Clients: clients, PlanPath: path, Options: applyOptions(c, prog)}
	res, runErr := a.Run(c.Context)
	prog.stop()
	return reportApply(c, format, res, func(w io.Writer) {
		for i, st := range res.Stages {
			fmt.Fprintf(w, "Stage %s (context %s):\n", st.Name, st.Context)
			printApply(w, st.Result, mp.Stages[i].Plan)
		}
	}, runErr, server)
}

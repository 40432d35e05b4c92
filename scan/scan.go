// Package scan is the read-only action behind `ks-clean scan` and the first
// half of `ks-clean plan`: inventory the cluster, classify the footprint,
// find the hazards.
package scan

import (
	"context"
	"time"

	"github.com/ks-clean/ks-clean/footprint"
	"github.com/ks-clean/ks-clean/hazard"
	"github.com/ks-clean/ks-clean/inventory"
	"github.com/ks-clean/ks-clean/kube"
	"github.com/ks-clean/ks-clean/plan"
)

// Options of a scan.
type Options struct {
	Inventory inventory.Options
	Footprint footprint.Options
	Hazard    hazard.Options
	// Context is the kubeconfig context name, recorded in the report.
	Context string
}

// Result of a scan.
type Result struct {
	Report
	Footprint *footprint.Footprint `json:"-"`
	// Records are the multi-cluster records found, with the cluster
	// identity each resolved to.
	Records  []*hazard.Record `json:"-"`
	Duration time.Duration    `json:"-"`
}

// Report is the JSON contract of `ks-clean scan -o json`.
type Report struct {
	Cluster    plan.Cluster    `json:"cluster"`
	KubeSphere plan.KubeSphere `json:"kubesphere"`
	Findings   []plan.Finding  `json:"findings"`
	Warnings   []string        `json:"warnings,omitempty"`
}

// Critical reports whether any finding is critical.
func (r *Report) Critical() bool { return hazard.HasCritical(r.Findings) }

// Run scans. It never writes to the cluster.
func Run(ctx context.Context, c *kube.Clients, o Options) (*Result, error) {
	start := time.Now()
	if o.Inventory.FullGroup == nil {
		o.Inventory.FullGroup = footprint.FullGroup
	}
	inv, err := inventory.Collect(ctx, c, o.Inventory)
	if err != nil {
		return nil, err
	}
	fp := footprint.Classify(inv, o.Footprint)
	findings, records := hazard.Find(ctx, fp, o.Hazard)
	if findings == nil {
		findings = []plan.Finding{}
	}
	return &Result{
		Report: Report{
			Cluster:    plan.Cluster{UID: inv.KubeSystemUID, Server: inv.Server, Context: o.Context},
			KubeSphere: fp.KubeSphere,
			Findings:   findings,
			Warnings:   inv.Warnings,
		},
		Footprint: fp,
		Records:   records,
		Duration:  time.Since(start),
	}, nil
}

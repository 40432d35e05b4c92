// Package scan is the read-only action behind `ks-clean scan` and the first
// half of `ks-clean plan`: inventory each cluster (scan/inventory), classify
// the footprint (scan/footprint), find the hazards (scan/hazard), and, for a
// host with members, match each member to the host's records of it.
package scan

import (
	"context"
	"time"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/scan/footprint"
	"github.com/ks-clean/ks-clean/scan/hazard"
	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Options of a scan.
type Options struct {
	Inventory inventory.Options
	Footprint footprint.Options
	Hazard    hazard.Options
}

// Target is one cluster to scan: its kubeconfig context and clients.
type Target struct {
	Context string
	Clients *kube.Clients
	// Inventory, when set, is scanned instead of the cluster (a recorded
	// one: golden tests); Clients is then unused.
	Inventory *inventory.Inventory
}

// server names the target in errors.
func (t Target) server() string {
	if t.Inventory != nil {
		return t.Inventory.Server + " (recorded)"
	}
	return t.Clients.Config.Host
}

// Result is one cluster's scan.
type Result struct {
	ClusterReport
	Footprint *footprint.Footprint
	// Records are the multi-cluster records found on this cluster, with
	// the cluster identity each resolved to.
	Records []*hazard.Record
	// HostRecords, for a member, are the host's Cluster and KubeFedCluster
	// records that reach it.
	HostRecords []*hazard.Record
	Duration    time.Duration
}

// ClusterReport is one cluster's part of the JSON contract.
type ClusterReport struct {
	Cluster    api.Cluster    `json:"cluster"`
	KubeSphere api.KubeSphere `json:"kubesphere"`
	// Kubernetes is the server's version, as it reports it.
	Kubernetes string        `json:"kubernetes,omitempty"`
	Footprint  Counts        `json:"footprint"`
	Findings   []api.Finding `json:"findings"`
	Warnings   []string      `json:"warnings,omitempty"`
}

// Counts sum up a footprint.
type Counts struct {
	// Objects of KubeSphere/KubeFed, to delete.
	Objects int `json:"objects"`
	// SystemNamespaces deleted whole.
	SystemNamespaces int `json:"systemNamespaces"`
	HelmReleases     int `json:"helmReleases"`
	// Detach counts users' objects tied to the footprint: they are kept.
	Detach int `json:"detach"`
	// Kept counts objects kept although they look like KubeSphere's (the
	// kept-* findings name them).
	Kept int `json:"kept"`
	// Volumes counts the bound PersistentVolumes whose claims go: the plan
	// switches them to Retain.
	Volumes int `json:"volumes"`
}

// Critical reports whether any finding is critical.
func (r *ClusterReport) Critical() bool { return hazard.HasCritical(r.Findings) }

// Cluster scans one cluster. It never writes to it.
func Cluster(ctx context.Context, t Target, o Options) (*Result, error) {
	start := time.Now()
	var fp *footprint.Footprint
	if t.Inventory != nil {
		fp = footprint.Classify(t.Inventory, o.Footprint)
	} else {
		var err error
		if fp, err = Footprint(ctx, t.Clients, o); err != nil {
			return nil, err
		}
	}
	findings, records := hazard.Find(ctx, fp, o.Hazard)
	if findings == nil {
		findings = []api.Finding{}
	}
	return &Result{
		ClusterReport: ClusterReport{
			Cluster:    api.Cluster{UID: fp.Inv.KubeSystemUID, Server: fp.Inv.Server, Context: t.Context},
			KubeSphere: fp.KubeSphere,
			Kubernetes: fp.Inv.Kubernetes,
			Footprint:  Counts{Objects: len(fp.Members), SystemNamespaces: len(fp.SystemNamespaces), HelmReleases: len(fp.Releases), Detach: len(fp.Detach), Kept: len(fp.Kept), Volumes: len(fp.Volumes())},
			Findings:   findings,
			Warnings:   fp.Inv.Warnings,
		},
		Footprint: fp,
		Records:   records,
		Duration:  time.Since(start),
	}, nil
}

// Footprint inventories a cluster and classifies what is KubeSphere's and
// KubeFed's, without the hazard checks: no connection to the API servers
// that cluster records name. Apply's drift check and verification use it.
func Footprint(ctx context.Context, c *kube.Clients, o Options) (*footprint.Footprint, error) {
	if o.Inventory.FullGroup == nil {
		o.Inventory.FullGroup = footprint.FullGroup
	}
	inv, err := inventory.Collect(ctx, c, o.Inventory)
	if err != nil {
		return nil, err
	}
	return footprint.Classify(inv, o.Footprint), nil
}

package scan

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan/hazard"
)

// Cross-cluster finding IDs (stable: runbooks match them).
const (
	// MemberElsewhere: the host given has no record of a member, so another
	// host (or nothing) manages it; unjoining it from this host is impossible.
	MemberElsewhere = "member-registered-elsewhere"
	// MemberAlias: two or more records on the host reach one member.
	MemberAlias = "member-cluster-alias"
	// MemberUnverified: a record matches a member by endpoint only, because
	// its own credentials could not reach it.
	MemberUnverified = "member-identity-unverified"
	// MemberNotGiven: a record on the host reaches another cluster that was
	// not passed as a member: only the record goes, its KubeSphere stays.
	MemberNotGiven = "member-not-given"
	// MemberUnreachable: a record on the host names a cluster its own
	// credentials cannot reach, and no --member-context matches it: only
	// the record goes, and what the host knows runs there stays.
	MemberUnreachable = "member-unreachable"
)

// Report is a scan of one cluster, or of a host and its members.
type Report struct {
	// Clusters are the scans of the host (or the one cluster), then of
	// each member.
	Clusters []*Result
	// Findings are the cross-cluster hazards.
	Findings []api.Finding
}

// KindReport is the kind of the JSON form of a scan.
const KindReport = "ScanReport"

// ReportJSON is the JSON contract of `ks-clean scan -o json`, one shape for
// one cluster or many.
type ReportJSON struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Critical   bool            `json:"critical"`
	Clusters   []ClusterReport `json:"clusters"`
	Findings   []api.Finding   `json:"findings"`
}

// JSON returns the report's JSON form.
func (r *Report) JSON() ReportJSON {
	out := ReportJSON{APIVersion: api.APIVersion, Kind: KindReport, Critical: r.Critical(), Clusters: []ClusterReport{}, Findings: r.Findings}
	for _, c := range r.Clusters {
		out.Clusters = append(out.Clusters, c.ClusterReport)
	}
	return out
}

// Host is the scan of the host, or of the one cluster.
func (r *Report) Host() *Result { return r.Clusters[0] }

// Members are the scans of the members.
func (r *Report) Members() []*Result { return r.Clusters[1:] }

// Critical reports whether any cluster, or the set, has a critical finding.
func (r *Report) Critical() bool {
	for _, res := range r.Clusters {
		if res.Critical() {
			return true
		}
	}
	return hazard.HasCritical(r.Findings)
}

// Run scans one cluster, or a host (the first target) and its members (at
// most four clusters at once), and matches each member to the host's
// records of it. Passing one cluster twice, or a host as a member, is
// refused: the plan would be wrong, not just unsafe.
func Run(ctx context.Context, all []Target, o Options) (*Report, error) {
	if len(all) == 0 {
		return nil, errors.New("scan: no cluster given")
	}
	results := make([]*Result, len(all))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, t := range all {
		g.Go(func() error {
			res, err := Cluster(gctx, t, o)
			if err != nil {
				return fmt.Errorf("scan context %q (%s): %w", t.Context, t.server(), err)
			}
			results[i] = res
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for i, res := range results {
		if prev, dup := seen[res.Cluster.UID]; dup {
			return nil, api.Refuse(api.FixMembers, "contexts %q and %q are the same cluster (kube-system %s): give each cluster once", prev, all[i].Context, res.Cluster.UID)
		}
		seen[res.Cluster.UID] = all[i].Context
		if i > 0 && res.KubeSphere.Role == api.RoleHost {
			return nil, api.Refuse(api.FixMembers, "context %q is a KubeSphere host, not a member", all[i].Context)
		}
	}

	// A host's records of clusters not given are reported even when it is
	// scanned alone: the plan deletes those records only.
	r := &Report{Clusters: results, Findings: []api.Finding{}}
	host := r.Host()
	given := map[string]bool{host.Cluster.UID: true}
	for _, m := range r.Members() {
		r.Findings = append(r.Findings, match(ctx, host, m)...)
		given[m.Cluster.UID] = true
	}
	matched := map[*hazard.Record]bool{}
	for _, m := range r.Members() {
		for _, rec := range m.HostRecords {
			matched[rec] = true
		}
	}
	for _, rec := range host.Records {
		switch {
		case rec.Local || matched[rec]:
		case rec.UID != "" && !given[rec.UID]:
			r.Findings = append(r.Findings, api.Finding{
				ID: MemberNotGiven, Severity: api.Warning,
				Message: fmt.Sprintf("%s %s on host context %q reaches another cluster (%s, kube-system %s) that is not a --member-context: the plan deletes this record only and leaves that cluster's KubeSphere as it is%s; add its context with --member-context to tear it down too",
					rec.Obj.Resource.Kind, rec.Obj.GetName(), host.Cluster.Context, rec.Endpoint, rec.UID, leftOn(host, rec)),
				Objects: recordRefs([]*hazard.Record{rec}),
			})
		case rec.UID == "":
			r.Findings = append(r.Findings, api.Finding{
				ID: MemberUnreachable, Severity: api.Warning,
				Message: fmt.Sprintf("%s %s on host context %q names a cluster (%s) that cannot be reached (%s), and no --member-context matches it: the plan deletes this record only and leaves that cluster's KubeSphere as it is%s; once it can be reached, tear it down with ks-clean plan --context <its context>",
					rec.Obj.Resource.Kind, rec.Obj.GetName(), host.Cluster.Context, orUnknown(rec.Endpoint), rec.Err, leftOn(host, rec)),
				Objects: recordRefs([]*hazard.Record{rec}),
			})
		}
	}
	hazard.SortFindings(r.Findings)
	return r, nil
}

// leftOn says what the host's records show runs on the cluster of a
// KubeSphere Cluster record: ks-core as a member, and the extension agents
// its InstallPlans installed there (status.clusterSchedulingStatuses).
// "" for other records.
func leftOn(host *Result, rec *hazard.Record) string {
	if rec.Obj.Resource.Kind != "Cluster" {
		return ""
	}
	name := rec.Obj.GetName()
	var agents []string
	for _, ip := range host.Footprint.Inv.OfKind("kubesphere.io", "InstallPlan") {
		if ip.Content == nil {
			continue
		}
		st, _, _ := unstructured.NestedMap(ip.Content.Object, "status", "clusterSchedulingStatuses", name)
		rel, _ := st["releaseName"].(string)
		ns, _ := st["targetNamespace"].(string)
		if rel != "" {
			agents = append(agents, "Helm release "+ns+"/"+rel)
		}
	}
	sort.Strings(agents)
	return fmt.Sprintf(" (the host's records show there: KubeSphere as a member%s)", strings.Join(append([]string{""}, agents...), ", "))
}

func orUnknown(s string) string {
	if s == "" {
		return "endpoint unknown"
	}
	return s
}

// match finds the host's records of a member: by the kube-system UID each
// record reaches with its own credentials, or, when it reaches nothing, by
// its endpoint (reported as unverified).
func match(ctx context.Context, host *Result, m *Result) []api.Finding {
	server := hazard.NormalizeEndpoint(ctx, m.Cluster.Server)
	var unverified []string
	for _, rec := range host.Records {
		switch {
		case rec.Local:
		case rec.UID == m.Cluster.UID:
			m.HostRecords = append(m.HostRecords, rec)
		case rec.UID == "" && rec.Normalized(ctx).Same(server):
			m.HostRecords = append(m.HostRecords, rec)
			unverified = append(unverified, fmt.Sprintf("%s %s (%s)", rec.Obj.Resource.Kind, rec.Obj.GetName(), rec.Err))
		}
	}
	who := fmt.Sprintf("member context %q (%s, kube-system %s)", m.Cluster.Context, m.Cluster.Server, m.Cluster.UID)
	memberRef := api.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kube-system", UID: m.Cluster.UID}
	var out []api.Finding
	switch {
	case len(m.HostRecords) == 0 && m.Footprint.Empty():
		// Nothing of KubeSphere on it and no record of it: not a member
		// of anything, and nothing to tear down.
	case len(m.HostRecords) == 0:
		joined := "it shows no sign of being joined to any host"
		if names := joinNames(m); len(names) > 0 {
			joined = "it was joined to a host as " + strings.Join(names, ", ")
		} else if m.KubeSphere.Role == api.RoleMember {
			joined = "its KubeSphere is configured as a member"
		}
		out = append(out, api.Finding{
			ID: MemberElsewhere, Severity: api.Critical,
			Message: fmt.Sprintf("%s has no Cluster or KubeFedCluster record on host context %q, and %s: another host may manage it and would keep acting on it during a teardown. Pass the host that manages it with --context, or tear it down on its own: ks-clean plan --context %s",
				who, host.Cluster.Context, joined, m.Cluster.Context),
			Objects: []api.ObjectRef{memberRef},
		})
	}
	// One KubeFedCluster and one KubeSphere Cluster per member is a join;
	// two of one kind are one cluster seen as several.
	byKind := map[string][]*hazard.Record{}
	for _, rec := range m.HostRecords {
		byKind[rec.Obj.Resource.Kind] = append(byKind[rec.Obj.Resource.Kind], rec)
	}
	for _, kind := range []string{"KubeFedCluster", "Cluster"} {
		recs := byKind[kind]
		if len(recs) < 2 {
			continue
		}
		var names []string
		for _, rec := range recs {
			names = append(names, rec.Obj.GetName())
		}
		out = append(out, api.Finding{
			ID: MemberAlias, Severity: api.Critical,
			Message: fmt.Sprintf("host context %q has %d %s records of %s: %s; the host sees one cluster as several and can delete and re-create what it propagates there. The plan unjoins every one of them",
				host.Cluster.Context, len(recs), kind, who, strings.Join(names, ", ")),
			Objects: recordRefs(recs),
		})
	}
	if len(unverified) > 0 {
		out = append(out, api.Finding{
			ID: MemberUnverified, Severity: api.Warning,
			Message: fmt.Sprintf("records matched to %s by endpoint only, their own credentials reach nothing: %s", who, strings.Join(unverified, "; ")),
			Objects: recordRefs(m.HostRecords),
		})
	}
	return out
}

// joinNames reads the names KubeFed's join gave this cluster, from the
// ClusterRoles it leaves: kubefed-controller-manager:<cluster>-<host>.
func joinNames(res *Result) []string {
	var out []string
	for _, cr := range res.Footprint.Inv.OfKind("rbac.authorization.k8s.io", "ClusterRole") {
		if name, ok := strings.CutPrefix(cr.GetName(), "kubefed-controller-manager:"); ok {
			out = append(out, name)
		}
	}
	return out
}

func recordRefs(rs []*hazard.Record) []api.ObjectRef {
	out := make([]api.ObjectRef, 0, len(rs))
	for _, r := range rs {
		ref := r.Obj.Ref()
		ref.ResourceVersion = ""
		out = append(out, ref)
	}
	return out
}

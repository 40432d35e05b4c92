// Package multicluster scans and plans a KubeSphere host together with its
// member clusters: one plan whose stages unjoin the members on the host, tear
// each member down, then tear the host down. Clusters are matched by the UID
// of their kube-system namespace, never by name or URL.
package multicluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ks-clean/ks-clean/exitcode"
	"github.com/ks-clean/ks-clean/footprint"
	"github.com/ks-clean/ks-clean/hazard"
	"github.com/ks-clean/ks-clean/kube"
	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/teardown"
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
)

// Target is one cluster to scan: its kubeconfig context and clients.
type Target struct {
	Context string
	Clients *kube.Clients
}

// Member is a member's scan and what the host holds of it.
type Member struct {
	*scan.Result
	// Records are the host's Cluster and KubeFedCluster records that reach
	// this member.
	Records []*hazard.Record
}

// Report is a scan of a host and its members.
type Report struct {
	Host    *scan.Result
	Members []*Member
	// Findings are the cross-cluster hazards.
	Findings []plan.Finding
}

// ReportJSON is the JSON contract of `ks-clean scan --member-context … -o json`.
type ReportJSON struct {
	Host     scan.Report    `json:"host"`
	Members  []scan.Report  `json:"members"`
	Findings []plan.Finding `json:"findings"`
}

// JSON returns the report's JSON form.
func (r *Report) JSON() ReportJSON {
	out := ReportJSON{Host: r.Host.Report, Members: []scan.Report{}, Findings: r.Findings}
	for _, m := range r.Members {
		out.Members = append(out.Members, m.Report)
	}
	return out
}

// Results are the scans of the host, then of each member.
func (r *Report) Results() []*scan.Result {
	out := []*scan.Result{r.Host}
	for _, m := range r.Members {
		out = append(out, m.Result)
	}
	return out
}

// Critical reports whether any cluster, or the set, has a critical finding.
func (r *Report) Critical() bool {
	for _, res := range r.Results() {
		if res.Critical() {
			return true
		}
	}
	return hazard.HasCritical(r.Findings)
}

// Scan scans the host and every member (at most four at once) and matches
// each member to the host's records of it. Passing one cluster twice, or a
// host as a member, is refused: the plan would be wrong, not just unsafe.
func Scan(ctx context.Context, host Target, members []Target, o scan.Options) (*Report, error) {
	all := append([]Target{host}, members...)
	results := make([]*scan.Result, len(all))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, t := range all {
		g.Go(func() error {
			so := o
			so.Context = t.Context
			res, err := scan.Run(gctx, t.Clients, so)
			if err != nil {
				return fmt.Errorf("scan context %q (%s): %w", t.Context, t.Clients.Config.Host, err)
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
			return nil, exitcode.New(exitcode.Usage, fmt.Errorf("contexts %q and %q are the same cluster (kube-system %s): pass each cluster once, the host with --context and each member with --member-context", prev, all[i].Context, res.Cluster.UID))
		}
		seen[res.Cluster.UID] = all[i].Context
		if i > 0 && res.KubeSphere.Role == plan.RoleHost {
			return nil, exitcode.New(exitcode.Usage, fmt.Errorf("--member-context %q is a KubeSphere host, not a member: pass the host with --context and its members with --member-context", all[i].Context))
		}
	}

	r := &Report{Host: results[0]}
	given := map[string]bool{r.Host.Cluster.UID: true}
	for _, res := range results[1:] {
		m := &Member{Result: res}
		r.Members = append(r.Members, m)
		r.Findings = append(r.Findings, match(ctx, r.Host, m)...)
		given[res.Cluster.UID] = true
	}
	for _, rec := range r.Host.Records {
		if rec.UID != "" && !given[rec.UID] {
			r.Findings = append(r.Findings, plan.Finding{
				ID: MemberNotGiven, Severity: plan.Warning,
				Message: fmt.Sprintf("%s %s on host context %q reaches another cluster (%s, kube-system %s) that is not a --member-context: the plan deletes this record only and leaves that cluster's KubeSphere as it is; add its context with --member-context to tear it down too",
					rec.Obj.Resource.Kind, rec.Obj.GetName(), r.Host.Cluster.Context, rec.Endpoint, rec.UID),
				Objects: recordRefs([]*hazard.Record{rec}),
			})
		}
	}
	if r.Findings == nil {
		r.Findings = []plan.Finding{}
	}
	hazard.SortFindings(r.Findings)
	return r, nil
}

// match finds the host's records of a member: by the kube-system UID each
// record reaches with its own credentials, or, when it reaches nothing, by
// its endpoint (reported as unverified).
func match(ctx context.Context, host *scan.Result, m *Member) []plan.Finding {
	server := hazard.NormalizeEndpoint(ctx, m.Cluster.Server)
	var unverified []string
	for _, rec := range host.Records {
		switch {
		case rec.Local:
		case rec.UID == m.Cluster.UID:
			m.Records = append(m.Records, rec)
		case rec.UID == "" && hazard.NormalizeEndpoint(ctx, rec.Endpoint).Same(server):
			m.Records = append(m.Records, rec)
			unverified = append(unverified, fmt.Sprintf("%s %s (%s)", rec.Obj.Resource.Kind, rec.Obj.GetName(), rec.Err))
		}
	}
	who := fmt.Sprintf("member context %q (%s, kube-system %s)", m.Cluster.Context, m.Cluster.Server, m.Cluster.UID)
	memberRef := plan.ObjectRef{APIVersion: "v1", Kind: "Namespace", Name: "kube-system", UID: m.Cluster.UID}
	var out []plan.Finding
	switch {
	case len(m.Records) == 0 && m.Footprint.Empty():
		// Nothing of KubeSphere on it and no record of it: not a member
		// of anything, and nothing to tear down.
	case len(m.Records) == 0:
		joined := "it shows no sign of being joined to any host"
		if names := joinNames(m.Result); len(names) > 0 {
			joined = "it was joined to a host as " + strings.Join(names, ", ")
		} else if m.KubeSphere.Role == plan.RoleMember {
			joined = "its KubeSphere is configured as a member"
		}
		out = append(out, plan.Finding{
			ID: MemberElsewhere, Severity: plan.Critical,
			Message: fmt.Sprintf("%s has no Cluster or KubeFedCluster record on host context %q, and %s: another host may manage it and would keep acting on it during a teardown. Pass the host that manages it with --context, or tear it down on its own: ks-clean plan --context %s",
				who, host.Cluster.Context, joined, m.Cluster.Context),
			Objects: []plan.ObjectRef{memberRef},
		})
	}
	// One KubeFedCluster and one KubeSphere Cluster per member is a join;
	// two of one kind are one cluster seen as several.
	byKind := map[string][]*hazard.Record{}
	for _, rec := range m.Records {
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
		out = append(out, plan.Finding{
			ID: MemberAlias, Severity: plan.Critical,
			Message: fmt.Sprintf("host context %q has %d %s records of %s: %s; the host sees one cluster as several and can delete and re-create what it propagates there. The plan unjoins every one of them",
				host.Cluster.Context, len(recs), kind, who, strings.Join(names, ", ")),
			Objects: recordRefs(recs),
		})
	}
	if len(unverified) > 0 {
		out = append(out, plan.Finding{
			ID: MemberUnverified, Severity: plan.Warning,
			Message: fmt.Sprintf("records matched to %s by endpoint only, their own credentials reach nothing: %s", who, strings.Join(unverified, "; ")),
			Objects: recordRefs(m.Records),
		})
	}
	return out
}

// joinNames reads the names KubeFed's join gave this cluster, from the
// ClusterRoles it leaves: kubefed-controller-manager:<cluster>-<host>.
func joinNames(res *scan.Result) []string {
	var out []string
	for _, cr := range res.Footprint.Inv.OfKind("rbac.authorization.k8s.io", "ClusterRole") {
		if name, ok := strings.CutPrefix(cr.GetName(), "kubefed-controller-manager:"); ok {
			out = append(out, name)
		}
	}
	return out
}

func recordRefs(rs []*hazard.Record) []plan.ObjectRef {
	out := make([]plan.ObjectRef, 0, len(rs))
	for _, r := range rs {
		ref := r.Obj.Ref()
		ref.ResourceVersion = ""
		out = append(out, ref)
	}
	return out
}

// Build makes the multi-cluster plan: unjoin the members on the host, tear
// each member down, then the host. Each stage is a complete plan checked
// against the single-cluster rules. A member no record on the host reaches
// is refused (exit 2): its real host would fight the teardown.
func Build(r *Report, now time.Time) (*plan.MultiCluster, error) {
	for _, f := range r.Findings {
		if f.ID == MemberElsewhere {
			return nil, exitcode.New(exitcode.Usage, fmt.Errorf("refusing to plan: %s", f.Message))
		}
	}
	hostCtx := r.Host.Cluster.Context
	mp := &plan.MultiCluster{
		APIVersion: plan.APIVersion, Kind: plan.KindMultiCluster,
		CreatedAt: now.UTC().Truncate(time.Second),
		Host:      hostCtx, Members: []string{}, Findings: r.Findings,
	}

	var records []*footprint.Member
	for _, m := range r.Members {
		mp.Members = append(mp.Members, m.Cluster.Context)
		for _, rec := range m.Records {
			records = append(records, &footprint.Member{Obj: rec.Obj, Category: footprint.CatKubeFed,
				Reason: fmt.Sprintf("record of member cluster %s (context %q, kube-system %s): unjoined before the member is torn down", m.Cluster.Server, m.Cluster.Context, m.Cluster.UID)})
		}
	}
	unjoin, err := teardown.Unjoin(r.Host, records, r.Findings, now)
	if err != nil {
		return nil, err
	}
	mp.Stages = append(mp.Stages, plan.Stage{Name: "unjoin-members", Kind: plan.StageUnjoin, Context: hostCtx, Plan: unjoin})
	for _, m := range r.Members {
		p, err := teardown.Build(m.Result, now)
		if err != nil {
			return nil, fmt.Errorf("member context %q: %w", m.Cluster.Context, err)
		}
		mp.Stages = append(mp.Stages, plan.Stage{Name: "member-" + m.Cluster.Context, Kind: plan.StageMember, Context: m.Cluster.Context, Plan: p})
	}
	host, err := teardown.Build(r.Host, now)
	if err != nil {
		return nil, fmt.Errorf("host context %q: %w", hostCtx, err)
	}
	mp.Stages = append(mp.Stages, plan.Stage{Name: "host-" + hostCtx, Kind: plan.StageHost, Context: hostCtx, Plan: host})

	for _, st := range mp.Stages {
		for i := range st.Plan.Steps {
			st.Plan.Steps[i].Cluster = st.Context
		}
		st.Plan.Digest = ""
	}
	if err := mp.Validate(); err != nil {
		return nil, fmt.Errorf("internal error, refusing to write an unsafe plan: %w", err)
	}
	return mp, mp.Seal()
}

package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/scan"
)

// RequireKept checks the namespaces a plan must keep (`plan --protect NS`):
// each must exist in at least one of the scanned clusters, and no plan for
// them may delete it. The plans keep every user namespace anyway; the flag lets a
// runbook state which ones it cannot lose, so a typo or a namespace the tool
// counts as KubeSphere's stops the plan instead of passing unnoticed.
func RequireKept(results []*scan.Result, names []string) error {
	for _, name := range names {
		found := false
		for _, r := range results {
			for _, ns := range r.Footprint.Inv.OfKind("", "Namespace") {
				if ns.GetName() != name {
					continue
				}
				found = true
				if r.Footprint.SystemNamespaces[name] {
					why := "it is one KubeSphere/KubeFed created for itself"
					if m := r.Footprint.Member(ns.GetUID()); m != nil {
						why = m.Reason
					}
					return api.Refuse(api.FixProtect, "namespace %s must be kept, but the plan for %s deletes it with everything in it (%s): move what you need out of it first, then plan again without protecting it", name, r.Cluster.Server, why)
				}
			}
		}
		if !found {
			return api.Refuse(api.FixProtect, "namespace %s must be kept, but there is no namespace of that name in %s: check the name (namespaces there: %s)", name, servers(results), someNamespaces(results, 12))
		}
	}
	return nil
}

func servers(results []*scan.Result) string {
	var out []string
	for _, r := range results {
		out = append(out, r.Cluster.Server)
	}
	return strings.Join(out, ", ")
}

// someNamespaces lists up to n user namespace names, to help spot a typo.
func someNamespaces(results []*scan.Result, n int) string {
	var names []string
	for _, r := range results {
		for _, ns := range r.Footprint.UserNamespaces {
			names = append(names, ns.GetName())
		}
	}
	sort.Strings(names)
	if len(names) > n {
		names = append(names[:n], fmt.Sprintf("and %d more", len(names)-n))
	}
	return strings.Join(names, ", ")
}

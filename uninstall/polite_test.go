package uninstall_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/ks-clean/ks-clean/internal/kube"
	"github.com/ks-clean/ks-clean/uninstall"
)

// Politeness: the apiserver itself throttles apply. API Priority and
// Fairness gives apply's user a priority level of one share (a few seats, a
// queue of four) and answers 429 with Retry-After beyond it. Apply
// converges and loses nothing; it saw the 429s and lowered its requests in
// flight, so the server refused fewer of its requests than it refused the
// negative control, the same apply with its pace fixed at the ceiling.
func TestApplyIsPoliteWhenThrottled(t *testing.T) {
	if testing.Short() {
		t.Skip("needs control planes: not in -short")
	}
	rejected := map[bool]int{}
	for _, adaptive := range []bool{false, true} {
		name := "fixed pace (negative control)"
		if adaptive {
			name = "adaptive pace"
		}
		t.Run(name, func(t *testing.T) {
			e := setup(t, "ks33-host")
			cfg := throttledUser(t, e, "throttled-operator")
			c, err := kube.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !adaptive {
				c.Pace.Fix()
			}
			mark := e.cp.AuditMark()
			a := &uninstall.Apply{Clients: clientsFor(e.plan, c), Plan: e.plan, PlanPath: filepath.Join(e.dir, "plan.json"),
				Options: uninstall.Options{FinalizerTimeout: 20 * time.Second, PhaseTimeout: 2 * time.Minute}}
			res, err := a.Run(context.Background())
			throttles, low := c.Pace.Stats()
			evs, aerr := e.cp.EventsSince(mark, "throttled-operator")
			if aerr != nil {
				t.Fatal(aerr)
			}
			// Writes only: the pace bounds the writes of the phases; the
			// reads before the first write (the preflight's rescan, the
			// release check) are the same in both runs and only dilute
			// the comparison.
			for _, ev := range evs {
				if ev.ResponseStatus != nil && ev.ResponseStatus.Code == http.StatusTooManyRequests && writeVerbs[ev.Verb] {
					rejected[adaptive]++
				}
			}
			t.Logf("%d requests, %d writes answered 429; pace saw %d throttles, lowest bound %d; apply: %v", len(evs), rejected[adaptive], throttles, low, err)
			if !adaptive {
				return // it may or may not converge; it is the yardstick
			}
			if err != nil || res.Verification == nil || !res.Verification.OK {
				t.Fatalf("throttled apply did not converge: %v %+v", err, failed(res))
			}
			e.assertNothingLost(t)
			if throttles == 0 || low >= kube.DefaultMaxInFlight {
				t.Fatalf("the server throttled nothing (%d) or the pace never lowered (%d): the test proves nothing", throttles, low)
			}
		})
	}
	if rejected[false] == 0 {
		t.Fatalf("the negative control was never throttled: the priority level does not bite")
	}
	if 5*rejected[true] > 4*rejected[false] {
		t.Fatalf("the adaptive apply was refused %d times, the fixed one %d: it did not back off (want at most 80%%)", rejected[true], rejected[false])
	}
}

var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// throttledUser makes a user with cluster-admin (not system:masters, which
// APF exempts) and a priority level that throttles it alone, and waits
// until the apiserver classifies its requests there.
func throttledUser(t *testing.T, e *env, name string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	cfg, _, err := e.cp.AddUser(name)
	if err != nil {
		t.Fatal(err)
	}
	kc := e.s.Kube
	if _, err := kc.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	shares, lend := int32(1), int32(0)
	if _, err := kc.FlowcontrolV1().PriorityLevelConfigurations().Create(ctx, &flowcontrolv1.PriorityLevelConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{
			Type: flowcontrolv1.PriorityLevelEnablementLimited,
			Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
				NominalConcurrencyShares: &shares, LendablePercent: &lend,
				LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
					Queuing: &flowcontrolv1.QueuingConfiguration{Queues: 1, HandSize: 1, QueueLengthLimit: 4}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fs, err := kc.FlowcontrolV1().FlowSchemas().Create(ctx, &flowcontrolv1.FlowSchema{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: flowcontrolv1.FlowSchemaSpec{
			PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: name},
			MatchingPrecedence:         100,
			DistinguisherMethod:        &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType},
			Rules: []flowcontrolv1.PolicyRulesWithSubjects{{
				Subjects:         []flowcontrolv1.Subject{{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: name}}},
				ResourceRules:    []flowcontrolv1.ResourcePolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}},
				NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
			}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The apiserver says which flow schema classified a request.
	probe, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		resp, err := probe.Get(cfg.Host + "/api/v1/namespaces/default")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.Header.Get("X-Kubernetes-PF-FlowSchema-UID") == string(fs.UID), nil
	})
	if err != nil {
		t.Fatalf("the apiserver never classified %s's requests under flow schema %s: %v", name, name, err)
	}
	return cfg
}

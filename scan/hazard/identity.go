package hazard

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ks-clean/ks-clean/scan/inventory"
)

// Record is one multi-cluster record (a KubeFedCluster or a KubeSphere
// Cluster) and the cluster it resolves to.
type Record struct {
	Obj      *inventory.Object
	Endpoint string
	// UID of kube-system as read through the record's own credentials;
	// empty when the cluster could not be reached with them.
	UID string
	// Err says why the identity was not verified.
	Err string
	// Local is set for the host's own Cluster record (by its label): it is
	// this cluster by definition, whatever credentials it carries.
	Local bool

	cfg *rest.Config
	// unsafe names what the record's credentials hold that ks-clean never
	// uses (credentials.go), and unsafeWhere where it holds them; a record
	// with any is never connected to.
	unsafe      []string
	unsafeWhere string
	// norm is Endpoint resolved, once (Normalized).
	norm *Endpoint
}

// Normalized is the record's endpoint, resolved once: records are compared
// pairwise, and a DNS lookup per pair made that O(n²) lookups.
func (r *Record) Normalized(ctx context.Context) Endpoint {
	if r.norm == nil {
		e := NormalizeEndpoint(ctx, r.Endpoint)
		r.norm = &e
	}
	return *r.norm
}

// kubeFedRecords reads each KubeFedCluster's endpoint, CA and token secret.
// Only an https endpoint is connected to: a bearer token sent over http is
// given away to anyone on the path. A proxy or disabled TLS checks the
// record asks for make it unused too (credentials.go).
func kubeFedRecords(inv *inventory.Inventory) []*Record {
	var out []*Record
	for _, o := range inv.OfKind("core.kubefed.io", "KubeFedCluster") {
		r := &Record{Obj: o}
		r.Endpoint, _, _ = unstructured.NestedString(o.Content.Object, "spec", "apiEndpoint")
		caB64, _, _ := unstructured.NestedString(o.Content.Object, "spec", "caBundle")
		secretName, _, _ := unstructured.NestedString(o.Content.Object, "spec", "secretRef", "name")
		set := map[string]bool{}
		if !httpsURL(r.Endpoint) {
			set["apiEndpoint (not an https URL)"] = true
		}
		if p, _, _ := unstructured.NestedString(o.Content.Object, "spec", "proxyURL"); p != "" {
			set["proxyURL"] = true
		}
		if d, _, _ := unstructured.NestedSlice(o.Content.Object, "spec", "disabledTLSValidations"); len(d) > 0 {
			set["disabledTLSValidations"] = true
		}
		ca, err := base64.StdEncoding.DecodeString(caB64)
		if err != nil {
			r.Err = "caBundle is not base64"
		}
		sec := inv.Secrets[o.GetNamespace()+"/"+secretName]
		switch {
		case len(set) > 0:
			r.unsafe, r.unsafeWhere = slices.Sorted(maps.Keys(set)), "spec"
			r.Err = notUsed(r)
		case r.Err != "":
		case sec == nil:
			r.Err = fmt.Sprintf("token Secret %s/%s not found or not readable", o.GetNamespace(), secretName)
		case len(sec.Data["token"]) == 0:
			r.Err = fmt.Sprintf("Secret %s/%s holds no token", o.GetNamespace(), secretName)
		default:
			r.cfg = &rest.Config{Host: r.Endpoint, BearerToken: string(sec.Data["token"]), TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
		}
		out = append(out, r)
	}
	return out
}

func notUsed(r *Record) string {
	return fmt.Sprintf("not connected to: its %s holds %s (%s)", r.unsafeWhere, strings.Join(r.unsafe, ", "), ClusterCredentialsUnsafe)
}

// clusterRecords reads KubeSphere Cluster records: the host's is local,
// others connect with the inline credentials of their stored kubeconfig
// (recordConfig; never clientcmd's loaders, which run and read what the
// kubeconfig names).
func clusterRecords(inv *inventory.Inventory, hostName string) []*Record {
	var out []*Record
	for _, o := range inv.OfKind("cluster.kubesphere.io", "Cluster") {
		r := &Record{Obj: o}
		r.Endpoint, _, _ = unstructured.NestedString(o.Content.Object, "spec", "connection", "kubernetesAPIEndpoint")
		kc, _, _ := unstructured.NestedString(o.Content.Object, "spec", "connection", "kubeconfig")
		// The host's own record is known by its label: a 4.1 host writes
		// a kubeconfig into it too (ks-controller-manager, on every
		// resync), and its credentials are not used.
		if _, host := o.GetLabels()["cluster-role.kubesphere.io/host"]; host {
			r.Local, r.UID = true, inv.KubeSystemUID
			out = append(out, r)
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(kc)
		if err != nil || len(raw) == 0 {
			r.Err = "no usable kubeconfig in spec.connection"
			out = append(out, r)
			continue
		}
		cfg, server, unsafe, err := recordConfig(raw)
		if r.Endpoint == "" {
			r.Endpoint = server
		}
		switch {
		case len(unsafe) > 0:
			r.unsafe, r.unsafeWhere = unsafe, "kubeconfig in spec.connection"
			r.Err = notUsed(r)
		case err != nil:
			r.Err = "kubeconfig in spec.connection " + err.Error()
		default:
			r.cfg = cfg
		}
		out = append(out, r)
	}
	return out
}

// resolve connects to every record's cluster in parallel (bounded, short
// timeout) and reads its kube-system UID.
func resolve(ctx context.Context, records []*Record, o Options) {
	identify := o.Identify
	if identify == nil {
		identify = GetKubeSystem
	}
	var g errgroup.Group
	g.SetLimit(o.Concurrency)
	for _, r := range records {
		if r.cfg == nil {
			continue
		}
		if err := inlineOnly(r.cfg); err != nil {
			r.cfg, r.Err = nil, "not connected to: "+err.Error()
			continue
		}
		g.Go(func() error {
			cfg := rest.CopyConfig(r.cfg)
			cfg.Timeout = o.Timeout
			cfg.QPS, cfg.Burst = 5, 5
			cctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			uid, err := identify(cctx, cfg)
			if err != nil {
				r.Err = "unreachable with its own credentials: " + shortErr(err)
				return nil
			}
			r.UID = uid
			return nil
		})
	}
	_ = g.Wait() // each record keeps its own error
}

// GetKubeSystem reads kube-system's UID through cfg.
func GetKubeSystem(ctx context.Context, cfg *rest.Config) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return string(ns.UID), nil
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// Endpoint is a normalized API server address: scheme, the set of IPs the
// host resolves to, and the port. Two URL strings for one server
// (https://localhost:6443 and https://127.0.0.1:6443/) compare equal.
type Endpoint struct {
	Scheme string
	IPs    []string
	Host   string
	Port   string
}

// NormalizeEndpoint parses and resolves an endpoint URL.
func NormalizeEndpoint(ctx context.Context, raw string) Endpoint {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return Endpoint{Host: strings.ToLower(strings.TrimRight(raw, "/"))}
	}
	e := Endpoint{Scheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Hostname()), Port: u.Port()}
	if e.Port == "" {
		e.Port = map[string]string{"http": "80"}[e.Scheme]
		if e.Port == "" {
			e.Port = "443"
		}
	}
	if ip := net.ParseIP(e.Host); ip != nil {
		e.IPs = []string{ip.String()}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if addrs, err := net.DefaultResolver.LookupHost(rctx, e.Host); err == nil {
			for _, a := range addrs {
				if ip := net.ParseIP(a); ip != nil {
					e.IPs = append(e.IPs, ip.String())
				}
			}
		}
	}
	sort.Strings(e.IPs)
	return e
}

// Same reports whether two endpoints name the same server.
func (e Endpoint) Same(o Endpoint) bool {
	if e.Scheme != o.Scheme || e.Port != o.Port {
		return false
	}
	if e.Host == o.Host {
		return true
	}
	for _, a := range e.IPs {
		for _, b := range o.IPs {
			if a == b {
				return true
			}
		}
	}
	return false
}

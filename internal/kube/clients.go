// Package kube builds the clients ks-clean talks to a cluster with, and
// counts the requests they make (benchmarks report them by verb).
package kube

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
)

// DefaultMaxInFlight bounds apply's writes in flight per cluster when the
// caller sets no --concurrency; Pace lowers it while the server throttles.
const DefaultMaxInFlight = 32

// NoRateLimit, as rest.Config's QPS, turns client-go's client-side limiter
// off: by default ks-clean goes at the server's pace (Pace).
const NoRateLimit = -1

// Clients for one cluster.
type Clients struct {
	Config   *rest.Config
	Kube     kubernetes.Interface
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
	// Discovery is uncached: each scan must see the cluster as it is now.
	Discovery discovery.DiscoveryInterface
	Requests  *RequestCounter
	// Pace adapts apply's writes in flight to the server's answers.
	Pace *Pace
}

// New builds the clients; every request they make is counted.
func New(cfg *rest.Config) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	counter := &RequestCounter{}
	cfg.Wrap(counter.wrap)
	pace := NewPace(DefaultMaxInFlight)
	cfg.Wrap(pace.wrap)
	// Listing every type by discovery touches deprecated ones (v1
	// Endpoints); their warnings say nothing to a ks-clean user.
	cfg.WarningHandler = rest.NoWarnings{}
	if cfg.QPS == 0 {
		// client-go's default of 5 QPS makes a scan of a large cluster take
		// minutes, and any fixed rate is either too slow for a small
		// cluster's idle apiserver or too fast for a busy one. Lists are
		// paginated and bounded instead, writes paced by the server's
		// answers (Pace), and client-go waits out every Retry-After.
		cfg.QPS = NoRateLimit
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Clients{Config: cfg, Kube: kc, Dynamic: dc, Metadata: mc, Discovery: disc, Requests: counter, Pace: pace}, nil
}

// RequestCounter counts API requests by verb: get, list, watch, create,
// update, patch, delete.
type RequestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *RequestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return wrapper{next: rt, fn: func(req *http.Request) (*http.Response, error) {
		c.add(verb(req))
		return rt.RoundTrip(req)
	}}
}

func (c *RequestCounter) add(v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[v]++
}

// Counts returns a copy of the counts.
func (c *RequestCounter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Total is the number of requests made.
func (c *RequestCounter) Total() int {
	n := 0
	for _, v := range c.Counts() {
		n += v
	}
	return n
}

// String is e.g. "get=3 list=40".
func (c *RequestCounter) String() string {
	counts := c.Counts()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, counts[k])
	}
	return strings.Join(parts, " ")
}

func verb(req *http.Request) string {
	q := req.URL.Query()
	switch req.Method {
	case http.MethodGet:
		if q.Get("watch") == "true" || q.Get("watch") == "1" {
			return "watch"
		}
		// ks-clean paginates every list, so a limit marks a list; discovery
		// documents are counted as get.
		if q.Has("limit") {
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(req.Method)
}

// wrapper is a RoundTripper around next. It names next
// (utilnet.RoundTripperWrapper), so client-go can reach the transport
// through it: to cancel a request that timed out, without logging that it
// cannot.
type wrapper struct {
	next http.RoundTripper
	fn   func(*http.Request) (*http.Response, error)
}

func (w wrapper) RoundTrip(r *http.Request) (*http.Response, error) { return w.fn(r) }

func (w wrapper) WrappedRoundTripper() http.RoundTripper { return w.next }

// Package kubeconfig resolves which cluster to talk to exactly as kubectl
// does: --kubeconfig, else KUBECONFIG (several files merged), else
// ~/.kube/config, else the in-cluster configuration of a Pod.
package kubeconfig

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options are kubectl's connection flags.
type Options struct {
	Kubeconfig     string
	Context        string
	RequestTimeout time.Duration
	UserAgent      string
}

// Cluster is a resolved connection.
type Cluster struct {
	Config *rest.Config
	// Context is the kubeconfig context used ("" in a Pod).
	Context string
	Server  string
}

// Load resolves the connection.
func Load(o Options) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)

	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w (fix the file, or point --kubeconfig/KUBECONFIG at a valid one)", err)
	}
	ctxName := raw.CurrentContext
	if o.Context != "" {
		ctxName = o.Context
		if _, ok := raw.Contexts[o.Context]; !ok && len(raw.Contexts) > 0 {
			return nil, fmt.Errorf("context %q not found in kubeconfig (available: %s): pass one of them to --context", o.Context, strings.Join(contextNames(raw.Contexts), ", "))
		}
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("no kubeconfig: set --kubeconfig or KUBECONFIG, or create %s (searched: %s)",
				clientcmd.RecommendedHomeFile, strings.Join(searched(rules), ", "))
		}
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	if len(raw.Contexts) == 0 {
		ctxName = "" // in-cluster
	}
	cfg.Timeout = o.RequestTimeout
	if o.UserAgent != "" {
		cfg.UserAgent = o.UserAgent
	}
	return &Cluster{Config: cfg, Context: ctxName, Server: cfg.Host}, nil
}

func contextNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func searched(rules *clientcmd.ClientConfigLoadingRules) []string {
	if rules.ExplicitPath != "" {
		return []string{rules.ExplicitPath}
	}
	out := append([]string{}, rules.Precedence...)
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		out = append(out, "in-cluster (not in a Pod)")
	}
	return out
}


// Package kubeconfig resolves which cluster to talk to the way kubectl does:
// --kubeconfig, else KUBECONFIG (several files merged, the first to define a
// name wins), else ~/.kube/config, else the in-cluster configuration of a Pod.
//
// Two deliberate differences from kubectl, both for a tool that deletes
// things: where kubectl would fall back to http://localhost:8080, Load
// returns an error that says what was searched; and the pre-1.0 migration of
// ~/.kube/.kubeconfig is skipped, because read-only commands write nothing.
package kubeconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/homedir"
)

// DefaultUserAgent is sent when Options.UserAgent is empty.
const DefaultUserAgent = "ks-clean"

// tokenFile is where a Pod's service account token is mounted; client-go
// uses the in-cluster config only when it exists.
const tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// Options are kubectl's connection flags.
type Options struct {
	// Kubeconfig is --kubeconfig: the only file read when set.
	Kubeconfig string
	// Context is --context; "" means the kubeconfig's current-context.
	Context string
	// ContextFlag is the flag Context came from, named in errors
	// (default "--context"); when it does not start with "-", it is the
	// whole advice an absent context gets.
	ContextFlag string
	// RequestTimeout bounds each API request; 0 means none, as in kubectl.
	RequestTimeout time.Duration
	// UserAgent, e.g. "ks-clean/v1.2.0", lets audit logs name the tool.
	UserAgent string
}

// Cluster is a resolved connection.
type Cluster struct {
	Config *rest.Config
	// Context is the kubeconfig context used; "" for the in-cluster config.
	Context string
	// Server is the API server URL.
	Server string
	// Source is the kubeconfig file the context came from, or "in-cluster".
	Source string
}

// Load resolves the connection. Every error names the file or context at
// fault and the flag or command that fixes it.
func Load(o Options) (*Cluster, error) {
	rules := loadingRules(o.Kubeconfig)
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)

	raw, err := cc.RawConfig()
	if err != nil {
		return nil, loadError(o.Kubeconfig, err)
	}
	name, named := raw.CurrentContext, "current-context"
	if o.Context != "" {
		name, named = o.Context, o.ContextFlag
		if named == "" {
			named = "--context"
		}
	}
	if name != "" {
		if _, ok := raw.Contexts[name]; !ok {
			return nil, contextNotFound(name, named, raw, rules)
		}
	}

	cfg, err := cc.ClientConfig()
	switch {
	case err == nil:
	case clientcmd.IsEmptyConfig(err) && name != "":
		// The context exists, so its cluster is what is missing.
		kc := raw.Contexts[name]
		return nil, fmt.Errorf("context %q (in %s) uses cluster %q, which the kubeconfig does not define or gives no server: fix the kubeconfig, or pick another context with --context (available: %s)",
			name, kc.LocationOfOrigin, kc.Cluster, available(raw))
	case clientcmd.IsEmptyConfig(err) && len(raw.Contexts) > 0:
		return nil, fmt.Errorf("the kubeconfig sets no current-context: pass --context (available: %s), or run 'kubectl config use-context NAME'", available(raw))
	case clientcmd.IsEmptyConfig(err):
		return nil, fmt.Errorf("no kubeconfig: set --kubeconfig, KUBECONFIG, or create ~/.kube/config (searched: %s)", searched(rules))
	case name != "":
		return nil, fmt.Errorf("context %q (in %s): %w: fix the kubeconfig, or pick another context with --context", name, raw.Contexts[name].LocationOfOrigin, err)
	default:
		return nil, fmt.Errorf("in-cluster config (KUBERNETES_SERVICE_HOST is set): %w: mount a service account token, or pass --kubeconfig", err)
	}

	// The deferred loader falls back to the in-cluster config silently; the
	// kubeconfig alone tells which of the two was used.
	c := &Cluster{Config: cfg, Context: name, Server: cfg.Host, Source: "in-cluster"}
	if _, derr := clientcmd.NewNonInteractiveClientConfig(raw, name, overrides, rules).ClientConfig(); derr == nil {
		c.Source = raw.Contexts[name].LocationOfOrigin
	} else {
		c.Context = ""
	}

	cfg.Timeout = o.RequestTimeout
	cfg.UserAgent = o.UserAgent
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	return c, nil
}

func loadingRules(explicit string) *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = explicit
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		// client-go fixes ~/.kube/config when the program starts; look HOME
		// up now so a HOME set later (tests, wrappers) is honoured.
		rules.Precedence = []string{homeFile()}
	}
	rules.MigrationRules = nil
	// Files KUBECONFIG names but that are missing are listed in our own
	// error; client-go's warning would only repeat them.
	rules.Warner = func(error) {}
	return rules
}

func homeFile() string {
	return filepath.Join(homedir.HomeDir(), clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
}

func loadError(explicit string, err error) error {
	if explicit != "" && errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kubeconfig %s: file not found: check the path given to --kubeconfig", explicit)
	}
	// client-go's message names the file ("error loading config file ...").
	return fmt.Errorf("kubeconfig: %w: fix or remove that file, or point --kubeconfig or KUBECONFIG at another one", err)
}

func contextNotFound(name, named string, raw clientcmdapi.Config, rules *clientcmd.ClientConfigLoadingRules) error {
	if len(raw.Contexts) == 0 {
		return fmt.Errorf("context %q not found: the kubeconfig defines no contexts (searched: %s)", name, searched(rules))
	}
	if named != "current-context" {
		where := "kubeconfig"
		if rules.ExplicitPath != "" {
			where += " " + rules.ExplicitPath
		}
		advice := "pass one of them to " + named
		if !strings.HasPrefix(named, "-") {
			advice = named // a sentence of its own
		}
		return fmt.Errorf("context %q not found in %s (available: %s): %s", name, where, available(raw), advice)
	}
	return fmt.Errorf("the kubeconfig's current-context %q names no context (available: %s): pass --context, or run 'kubectl config use-context NAME'", name, available(raw))
}

func available(raw clientcmdapi.Config) string {
	names := make([]string, 0, len(raw.Contexts))
	for n := range raw.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// searched lists every place Load looked, with why each gave nothing.
func searched(rules *clientcmd.ClientConfigLoadingRules) string {
	files := rules.Precedence
	if rules.ExplicitPath != "" {
		files = []string{rules.ExplicitPath}
	}
	var out []string
	for _, f := range files {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			out = append(out, f+" (missing)")
		} else {
			out = append(out, f+" (no contexts)")
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("KUBECONFIG=%q names no file", os.Getenv(clientcmd.RecommendedConfigPathEnvVar)))
	}
	switch {
	case os.Getenv("KUBERNETES_SERVICE_HOST") == "":
		out = append(out, "in-cluster: not in a Pod (KUBERNETES_SERVICE_HOST unset)")
	case os.Getenv("KUBERNETES_SERVICE_PORT") == "":
		out = append(out, "in-cluster: KUBERNETES_SERVICE_PORT unset")
	default:
		out = append(out, "in-cluster: no service account token at "+tokenFile)
	}
	return strings.Join(out, "; ")
}

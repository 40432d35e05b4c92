package kubeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	api "k8s.io/client-go/tools/clientcmd/api"
)

// writeConfig writes a kubeconfig whose every context, cluster and user is
// named after the context; the cluster's server is the map value.
func writeConfig(t *testing.T, path string, contexts map[string]string, current string) string {
	t.Helper()
	c := api.NewConfig()
	for name, server := range contexts {
		c.Clusters[name] = &api.Cluster{Server: server}
		c.AuthInfos[name] = &api.AuthInfo{Token: "t-" + name}
		c.Contexts[name] = &api.Context{Cluster: name, AuthInfo: name}
	}
	c.CurrentContext = current
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// isolate hides the real environment: an empty HOME, no KUBECONFIG, not in
// a Pod. It returns the new HOME.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_MASTER"} {
		t.Setenv(v, "") // restores the value after the test
		os.Unsetenv(v)
	}
	return home
}

func mustLoad(t *testing.T, o Options) *Cluster {
	t.Helper()
	c, err := Load(o)
	if err != nil {
		t.Fatalf("Load(%+v): %v", o, err)
	}
	return c
}

func wantErr(t *testing.T, o Options, parts ...string) {
	t.Helper()
	_, err := Load(o)
	if err == nil {
		t.Fatalf("Load(%+v) succeeded, want an error containing %q", o, parts)
	}
	t.Log(err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("Load(%+v) error lacks %q:\n%v", o, p, err)
		}
	}
}

func TestExplicitPathWins(t *testing.T) {
	home := isolate(t)
	writeConfig(t, filepath.Join(home, ".kube", "config"), map[string]string{"home": "https://home:6443"}, "home")
	env := writeConfig(t, filepath.Join(home, "env"), map[string]string{"env": "https://env:6443"}, "env")
	t.Setenv("KUBECONFIG", env)
	p := writeConfig(t, filepath.Join(home, "explicit"), map[string]string{"one": "https://one:6443", "two": "https://two:6443"}, "one")

	c := mustLoad(t, Options{Kubeconfig: p, RequestTimeout: 7 * time.Second, UserAgent: "ks-clean/v9"})
	if c.Context != "one" || c.Server != "https://one:6443" || c.Source != p {
		t.Errorf("got %+v, want context one of %s", c, p)
	}
	if c.Config.Timeout != 7*time.Second || c.Config.UserAgent != "ks-clean/v9" || c.Config.BearerToken != "t-one" {
		t.Errorf("config: timeout %v, user agent %q, token %q", c.Config.Timeout, c.Config.UserAgent, c.Config.BearerToken)
	}
	// Contexts of KUBECONFIG's files are not visible next to --kubeconfig.
	wantErr(t, Options{Kubeconfig: p, Context: "env"}, `context "env" not found`, "one, two")
}

func TestContextOverride(t *testing.T) {
	home := isolate(t)
	p := writeConfig(t, filepath.Join(home, "a"), map[string]string{"one": "https://one:6443", "two": "https://two:6443"}, "one")
	c := mustLoad(t, Options{Kubeconfig: p, Context: "two"})
	if c.Context != "two" || c.Server != "https://two:6443" || c.Config.BearerToken != "t-two" {
		t.Errorf("--context two: %+v", c)
	}
	if c.Config.UserAgent != DefaultUserAgent || c.Config.Timeout != 0 {
		t.Errorf("defaults: user agent %q, timeout %v", c.Config.UserAgent, c.Config.Timeout)
	}
}

func TestKUBECONFIGMergesFiles(t *testing.T) {
	home := isolate(t)
	a := writeConfig(t, filepath.Join(home, "a"), map[string]string{"one": "https://one:6443"}, "one")
	b := writeConfig(t, filepath.Join(home, "b"), map[string]string{"two": "https://two:6443"}, "")
	missing := filepath.Join(home, "missing") // skipped, as kubectl does
	t.Setenv("KUBECONFIG", strings.Join([]string{a, missing, b}, string(os.PathListSeparator)))

	c := mustLoad(t, Options{Context: "two"})
	if c.Server != "https://two:6443" || c.Source != b || c.Config.BearerToken != "t-two" {
		t.Errorf("context from the second file: %+v", c)
	}
	c = mustLoad(t, Options{})
	if c.Context != "one" || c.Source != a {
		t.Errorf("current-context from the first file: %+v", c)
	}
	wantErr(t, Options{Context: "three"}, `context "three" not found in kubeconfig (available: one, two)`, "--context")
}

func TestHomeConfig(t *testing.T) {
	home := isolate(t)
	p := writeConfig(t, filepath.Join(home, ".kube", "config"), map[string]string{"home": "https://home:6443"}, "home")
	c := mustLoad(t, Options{})
	if c.Context != "home" || c.Server != "https://home:6443" || c.Source != p {
		t.Errorf("~/.kube/config: %+v", c)
	}
}

func TestContextErrors(t *testing.T) {
	home := isolate(t)
	p := writeConfig(t, filepath.Join(home, "a"), map[string]string{"one": "https://one:6443", "two": "https://two:6443"}, "gone")
	wantErr(t, Options{Kubeconfig: p, Context: "three"}, `context "three" not found in kubeconfig `+p+" (available: one, two)")
	wantErr(t, Options{Kubeconfig: p}, `current-context "gone"`, "available: one, two", "use-context")

	none := writeConfig(t, filepath.Join(home, "none"), map[string]string{"one": "https://one:6443"}, "")
	wantErr(t, Options{Kubeconfig: none}, "no current-context", "--context (available: one)")

	c := api.NewConfig()
	c.Contexts["dangling"] = &api.Context{Cluster: "nowhere", AuthInfo: "nobody"}
	c.CurrentContext = "dangling"
	dangling := filepath.Join(home, "dangling")
	if err := clientcmd.WriteToFile(*c, dangling); err != nil {
		t.Fatal(err)
	}
	wantErr(t, Options{Kubeconfig: dangling}, `context "dangling"`, dangling, `cluster "nowhere"`)
}

func TestMalformedFile(t *testing.T) {
	home := isolate(t)
	bad := filepath.Join(home, "bad")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Config\nclusters: {not: [a list"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantErr(t, Options{Kubeconfig: bad}, bad, "--kubeconfig")

	good := writeConfig(t, filepath.Join(home, "good"), map[string]string{"one": "https://one:6443"}, "one")
	t.Setenv("KUBECONFIG", good+string(os.PathListSeparator)+bad)
	wantErr(t, Options{}, bad) // kubectl refuses too, rather than use half a config
}

func TestMissingExplicitFile(t *testing.T) {
	home := isolate(t)
	missing := filepath.Join(home, "missing")
	wantErr(t, Options{Kubeconfig: missing}, "kubeconfig "+missing+": file not found", "--kubeconfig")
}

func TestNoKubeconfig(t *testing.T) {
	home := isolate(t)
	wantErr(t, Options{},
		"no kubeconfig: set --kubeconfig, KUBECONFIG, or create ~/.kube/config",
		filepath.Join(home, ".kube", "config")+" (missing)",
		"not in a Pod")

	// KUBECONFIG naming only missing files replaces ~/.kube/config.
	missing := filepath.Join(home, "missing")
	t.Setenv("KUBECONFIG", missing)
	wantErr(t, Options{}, "no kubeconfig", missing+" (missing)")

	// A file without contexts is no better than none.
	empty := filepath.Join(home, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wantErr(t, Options{Kubeconfig: empty}, "no kubeconfig", empty+" (no contexts)")
}

// Outside a Pod only the error path can be checked: client-go reads the
// token from a fixed path. In a Pod the fallback itself is checked.
func TestInCluster(t *testing.T) {
	isolate(t)
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	if _, err := os.Stat(tokenFile); err != nil {
		wantErr(t, Options{}, "no kubeconfig", "in-cluster: no service account token at "+tokenFile)
		return
	}
	c := mustLoad(t, Options{RequestTimeout: time.Second})
	if c.Context != "" || c.Source != "in-cluster" || c.Server != "https://10.96.0.1:443" || c.Config.Timeout != time.Second {
		t.Errorf("in-cluster: %+v", c)
	}
}

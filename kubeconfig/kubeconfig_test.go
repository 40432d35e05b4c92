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

func writeConfig(t *testing.T, dir, file string, contexts map[string]string, current string) string {
	t.Helper()
	c := api.NewConfig()
	for name, server := range contexts {
		c.Clusters[name] = &api.Cluster{Server: server}
		c.AuthInfos[name] = &api.AuthInfo{Token: "t-" + name}
		c.Contexts[name] = &api.Context{Cluster: name, AuthInfo: name}
	}
	c.CurrentContext = current
	path := filepath.Join(dir, file)
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// isolate hides the real environment: no KUBECONFIG, an empty HOME, not in a Pod.
func isolate(t *testing.T) string {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	// client-go reads HOME once, at start-up, as kubectl does.
	old := clientcmd.RecommendedHomeFile
	clientcmd.RecommendedHomeFile = filepath.Join(home, ".kube", "config")
	t.Cleanup(func() { clientcmd.RecommendedHomeFile = old })
	return home
}

func TestExplicitPathAndContext(t *testing.T) {
	dir := isolate(t)
	p := writeConfig(t, dir, "a", map[string]string{"one": "https://one:6443", "two": "https://two:6443"}, "one")
	c, err := Load(Options{Kubeconfig: p, RequestTimeout: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if c.Context != "one" || c.Server != "https://one:6443" || c.Config.Timeout != 7*time.Second {
		t.Fatalf("got %+v timeout %v", c, c.Config.Timeout)
	}
	c, err = Load(Options{Kubeconfig: p, Context: "two"})
	if err != nil || c.Server != "https://two:6443" || c.Config.BearerToken != "t-two" {
		t.Fatalf("--context two: %+v %v", c, err)
	}
}

func TestKUBECONFIGMergesFiles(t *testing.T) {
	dir := isolate(t)
	a := writeConfig(t, dir, "a", map[string]string{"one": "https://one:6443"}, "one")
	b := writeConfig(t, dir, "b", map[string]string{"two": "https://two:6443"}, "")
	t.Setenv("KUBECONFIG", a+string(os.PathListSeparator)+b)
	c, err := Load(Options{Context: "two"})
	if err != nil || c.Server != "https://two:6443" {
		t.Fatalf("context from the second file: %+v %v", c, err)
	}
	c, err = Load(Options{})
	if err != nil || c.Context != "one" {
		t.Fatalf("current context from the first file: %+v %v", c, err)
	}
}

func TestHomeConfig(t *testing.T) {
	home := isolate(t)
	if err := os.MkdirAll(filepath.Join(home, ".kube"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, filepath.Join(home, ".kube"), "config", map[string]string{"home": "https://home:6443"}, "home")
	c, err := Load(Options{})
	if err != nil || c.Server != "https://home:6443" {
		t.Fatalf("~/.kube/config: %+v %v", c, err)
	}
}

func TestErrors(t *testing.T) {
	dir := isolate(t)
	p := writeConfig(t, dir, "a", map[string]string{"one": "https://one:6443", "two": "https://two:6443"}, "one")
	_, err := Load(Options{Kubeconfig: p, Context: "three"})
	if err == nil || !strings.Contains(err.Error(), `context "three" not found`) || !strings.Contains(err.Error(), "one, two") {
		t.Errorf("absent context: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("{not yaml"), 0o600)
	if _, err := Load(Options{Kubeconfig: bad}); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Errorf("malformed: %v", err)
	}
	if _, err := Load(Options{Kubeconfig: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing explicit file: %v", err)
	}
	_, err = Load(Options{})
	if err == nil || !strings.Contains(err.Error(), "no kubeconfig") || !strings.Contains(err.Error(), "KUBECONFIG") {
		t.Errorf("nothing configured: %v", err)
	}
}

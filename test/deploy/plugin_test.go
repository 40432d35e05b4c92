package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubectlPlugin installs ks-clean as a kubectl plugin the way a user
// does, a binary named kubectl-ks_clean on PATH (kubectl maps the
// underscore to a dash), and runs `kubectl ks-clean version` and `kubectl
// plugin list`. Neither needs a cluster. Skipped without kubectl on PATH.
func TestKubectlPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: not in -short")
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-ks_clean")
	build := exec.Command("go", "build", "-o", bin, "github.com/ks-clean/ks-clean")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// PATH starts with dir; KUBECONFIG names a file that does not exist,
	// so nothing here can reach a real cluster.
	env := []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "KUBECONFIG=" + filepath.Join(dir, "no-kubeconfig")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			env = append(env, kv)
		}
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(kubectl, args...)
		cmd.Env = env
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run("ks-clean", "version")
	if err != nil || !strings.HasPrefix(out, "ks-clean ") {
		t.Errorf("kubectl ks-clean version: err=%v, output %q; want it to start with \"ks-clean \"", err, out)
	}
	t.Logf("kubectl ks-clean version: %s", strings.TrimSpace(out))

	// plugin list exits 1 when it warns about any plugin on PATH, also
	// others the machine has: only the line of ours and warnings about it
	// count.
	out, err = run("plugin", "list")
	listed := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == bin {
			listed = true
		}
		if strings.Contains(line, "warning") && strings.Contains(line, bin) {
			t.Errorf("kubectl plugin list warns about ks-clean: %s", line)
		}
	}
	t.Logf("kubectl plugin list (err=%v):\n%s", err, out)
	if !listed {
		t.Errorf("kubectl plugin list (err=%v) does not list %s:\n%s", err, bin, out)
	}
}

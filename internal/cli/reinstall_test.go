package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// Plans and backups hold Secrets: reinstall writes them to a private
// directory of the user's (XDG_STATE_HOME/ks-clean, 0700), never into the
// directory it was started from, and says where.
func TestReinstallWritesItsPlanToAPrivateDirectory(t *testing.T) {
	st := fixture.Start(t, "clean", controlplane.Options{}, false)
	chart, err := filepath.Abs("../../test/charts/ks-core-mini")
	if err != nil {
		t.Fatal(err)
	}
	state, cwd := t.TempDir(), t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	t.Chdir(cwd)
	out, errOut, code := runCLI(t, "--kubeconfig", st.CP.AdminKubeconfig, "reinstall", "--chart", chart, "--dry-run")
	if code != 0 {
		t.Fatalf("reinstall --dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	if left, _ := os.ReadDir(cwd); len(left) > 0 {
		t.Fatalf("reinstall wrote into the current directory: %s", left[0].Name())
	}
	dir := filepath.Join(state, "ks-clean")
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory %s: %v %v", dir, err, fi)
	}
	plans, _ := filepath.Glob(filepath.Join(dir, "ks-clean-reinstall-*.json"))
	if len(plans) != 1 || !strings.Contains(out, plans[0]) {
		t.Fatalf("plan in %v, output:\n%s", plans, out)
	}
	if fi, err := os.Stat(plans[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("plan file %s: %v", plans[0], err)
	}
}

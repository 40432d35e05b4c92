package cli

import (
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// No command prints a Secret's value, in any output format, verbose or not,
// and what apply writes to disk is readable by its owner only: plan files
// 0600, backup and journal directories 0700, every file in them 0600 (the
// backup holds Secrets on purpose, to restore them).
func TestNoSecretInAnyOutputAndPrivateFiles(t *testing.T) {
	st := fixture.Start(t, "incident", controlplane.Options{}, true)
	if len(st.Seeded.SecretValues) < 3 {
		t.Fatalf("the fixture seeded %d secret values; the test needs some to look for", len(st.Seeded.SecretValues))
	}
	kc := st.CP.AdminKubeconfig
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	var all strings.Builder
	for _, args := range [][]string{
		{"scan"}, {"scan", "-v"}, {"scan", "-o", "json"},
		{"plan", "-v"}, {"plan", "-o", "json"}, {"plan", "--out", planFile},
		{"apply", planFile, "--dry-run", "-v"}, {"apply", planFile, "--dry-run", "-o", "json"},
		{"apply", planFile, "--confirm", "-v", "--finalizer-timeout", "20s"},
		{"apply", planFile, "--confirm", "-o", "json"}, // the resume of a finished apply
		{"scan", "-o", "json"},
	} {
		out, errOut, code := runCLI(t, append([]string{"--kubeconfig", kc}, args...)...)
		if code != 0 && code != 3 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		all.WriteString(out + errOut)
	}
	b, err := os.ReadFile(planFile)
	if err != nil {
		t.Fatal(err)
	}
	all.Write(b)
	for _, v := range st.Seeded.SecretValues {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			if strings.Contains(all.String(), form) {
				t.Errorf("a seeded Secret value appears in ks-clean's output or plan")
			}
		}
	}

	if fi, err := os.Stat(planFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("plan file: %v %v", fi.Mode(), err)
	}
	files := 0
	err = filepath.WalkDir(planFile+".apply", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil || files < 10 {
		t.Fatalf("backup walk: %v, %d files", err, files)
	}
}

package plan_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ks-clean/ks-clean/plan"
	"github.com/ks-clean/ks-clean/test/fixture"
)

var update = flag.Bool("update", false, "write testdata/golden again from the recordings")

// Every recorded scenario plans exactly as its golden file says: an order,
// an evidence or a safety rule that changes shows as a diff of the plan a
// user would review (go test ./plan -run TestGoldenPlans -update, then read
// the diff before committing it). Milliseconds, no cluster.
func TestGoldenPlans(t *testing.T) {
	for _, name := range fixture.Recordings() {
		t.Run(name, func(t *testing.T) {
			rep, err := load(t, name).Scan()
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Build(rep, plan.Options{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			if err := plan.Validate(p); err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (write it with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("the plan of %s differs from %s (if the change is meant, -update and review the diff):\n%s", name, path, firstDiff(string(want), string(got)))
			}
		})
	}
}

// firstDiff shows the first lines that differ, with a little context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		if i < len(w) && i < len(g) && w[i] == g[i] {
			continue
		}
		var b strings.Builder
		for j := max(0, i-3); j < i+4; j++ {
			if j < len(w) {
				b.WriteString("  want " + w[j] + "\n")
			}
		}
		for j := max(0, i-3); j < i+4; j++ {
			if j < len(g) {
				b.WriteString("  got  " + g[j] + "\n")
			}
		}
		return b.String()
	}
	return ""
}

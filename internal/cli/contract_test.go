package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/itchyny/gojq"
	"sigs.k8s.io/yaml"

	"github.com/ks-clean/ks-clean/test/controlplane"
	"github.com/ks-clean/ks-clean/test/fixture"
)

// The JSON contract, end to end on a real control plane: every document a
// command prints with -o json is one JSON document on stdout and nothing
// else, validates against its schema in docs/schema, and is the same
// document with -o yaml; and every jq line in the docs runs on those real
// documents and finds something (a doc example that silently prints
// nothing, or null, is wrong).
func TestJSONContract(t *testing.T) {
	t.Parallel()
	st := fixture.Start(t, "incident", controlplane.Options{}, true)
	kc := st.CP.AdminKubeconfig
	// A volume for the retain examples: its claim goes with kubesphere-system.
	fixture.StaticVolume(t, st.Seeder.Kube, fixture.KubeSphereNamespace, "data", "pv-contract")
	dir := t.TempDir()
	chart, err := filepath.Abs("../../test/charts/ks-core-mini")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("terminal", func(t *testing.T) { terminalStyles(t, kc) })

	planFile := filepath.Join(dir, "plan.json")
	tenancyFile := filepath.Join(dir, "tenancy.json")
	docs := map[string][]byte{} // by the file name the docs use
	for _, c := range []struct {
		file, kind string
		code       int
		args       []string
	}{
		{"version.json", "Version", 0, []string{"version"}},
		{"scan.json", "ScanReport", 3, []string{"scan"}},
		{"plan-stdout.json", "Plan", 0, []string{"plan", "--out", planFile}},
		{"tenancy.json", "Tenancy", 0, []string{"tenancy", "export", "--keep-passwords"}},
		{"dry-run.json", "ApplyResult", 0, []string{"apply", planFile, "--dry-run"}},
		{"result.json", "ApplyResult", 0, []string{"apply", planFile, "--yes", "--finalizer-timeout", "20s"}},
		{"restore-dry-run.json", "RestoreResult", 0, append([]string{"restore", planFile + ".apply", "--dry-run"}, allowKinds()...)},
		// On the cluster the apply just cleaned: uninstalls nothing, installs.
		{"reinstall.json", "ReinstallResult", 0, []string{"reinstall", "--chart", chart, "--yes", "--work-dir", filepath.Join(dir, "work")}},
		// The new install serves the tenancy types, and has no alias; the
		// mini chart brings no platform-admin, so the export's is privilege
		// this import grants knowingly.
		{"tenancy-import.json", "TenancyImportResult", 0, []string{"tenancy", "import", tenancyFile, "--dry-run", "--allow-privileged"}},
	} {
		t.Run(c.kind+" "+c.args[0], func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"--kubeconfig", kc}, append(c.args, "-o", "json")...)...)
			if code != c.code {
				t.Fatalf("%v -o json: exit %d, want %d\n%s", c.args, code, c.code, errOut)
			}
			doc := oneDocument(t, out)
			validateDocument(t, c.kind, doc)
			var head struct{ APIVersion, Kind string }
			if err := json.Unmarshal(doc, &head); err != nil || head.Kind != c.kind {
				t.Fatalf("%v -o json: kind %q, want %q (%v)", c.args, head.Kind, c.kind, err)
			}
			if strings.Contains(errOut, "{") {
				t.Errorf("%v -o json: JSON on stderr: %.300q", c.args, errOut)
			}
			docs[c.file] = doc
			if c.file == "tenancy.json" {
				if err := os.WriteFile(tenancyFile, doc, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if c.args[0] == "apply" || c.args[0] == "reinstall" {
				return // not repeatable as they are; the schema covers YAML too
			}
			y, _, code := runCLI(t, append([]string{"--kubeconfig", kc}, append(c.args, "-o", "yaml")...)...)
			j, err := yaml.YAMLToJSON([]byte(y))
			if code != c.code || err != nil || strings.HasPrefix(y, "{") {
				t.Fatalf("%v -o yaml: exit %d, %v: %.200q", c.args, code, err, y)
			}
			validateDocument(t, c.kind, j)
		})
	}
	if p, err := os.ReadFile(planFile); err == nil {
		validateDocument(t, "Plan", p)
	}

	examples := docExamples(t, "../../docs/automation.md", "../../docs/runbook-incident.md", "../../README.md")
	if len(examples) < 5 {
		t.Fatalf("found %d jq examples in the docs; the parser must have broken", len(examples))
	}
	for _, ex := range examples {
		t.Run("example "+ex.where, func(t *testing.T) {
			in, ok := docs[ex.file]
			if !ok {
				t.Fatalf("%s: jq reads %q, which this test does not produce: add it above", ex.where, ex.file)
			}
			outs, err := runJQ(ex.program, in)
			if err != nil {
				t.Fatalf("%s: jq %s: %v", ex.where, ex.program, err)
			}
			found := false
			for _, o := range outs {
				found = found || (o != nil && o != false)
			}
			if !found && !mayBeEmpty(ex.program) {
				t.Fatalf("%s: jq %s printed nothing useful from the real %s: %v", ex.where, ex.program, ex.file, outs)
			}
		})
	}
}

// mayBeEmpty: examples that rightly print nothing after a run that went
// well (the failed steps).
func mayBeEmpty(program string) bool {
	return strings.Contains(program, `select(.status=="failed")`)
}

// oneDocument checks out is exactly one JSON document.
func oneDocument(t *testing.T, out string) []byte {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var doc json.RawMessage
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%.300s", err, out)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one document: %.300s", out)
	}
	return doc
}

type docExample struct {
	where, program, file string
}

// jqLine matches `jq [-r|-e]… 'PROGRAM' [FILE]` in a doc, also after a pipe
// from `ks-clean scan -o json` (then the file is scan.json).
var jqLine = regexp.MustCompile(`(?:(ks-clean (\w+)[^|]*)\|\s*)?\bjq((?:\s+-[a-z]+)*)\s+'([^']+)'\s*(\S+\.json)?`)

func docExamples(t *testing.T, files ...string) []docExample {
	t.Helper()
	var out []docExample
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			m := jqLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			file := m[5]
			if file == "" && m[2] != "" {
				file = m[2] + ".json"
			}
			out = append(out, docExample{where: fmt.Sprintf("%s:%d", filepath.Base(f), i+1), program: m[4], file: file})
		}
	}
	return out
}

func runJQ(program string, in []byte) ([]any, error) {
	q, err := gojq.Parse(program)
	if err != nil {
		return nil, err
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	v = normalizeNumbers(v)
	var outs []any
	iter := q.Run(v)
	for {
		o, ok := iter.Next()
		if !ok {
			return outs, nil
		}
		if err, ok := o.(error); ok {
			return outs, err
		}
		outs = append(outs, o)
	}
}

// normalizeNumbers turns json.Number into the float64/int gojq expects.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeNumbers(e)
		}
	}
	return v
}

// terminalStyles runs scan on a pseudo-terminal: colour and cursor codes on
// a terminal, no colour with NO_COLOR, and no escape code at all with
// TERM=dumb.
func terminalStyles(t *testing.T, kc string) {
	sgr := regexp.MustCompile(`\x1b\[[0-9;]*m`)
	for _, c := range []struct {
		env          []string
		color, codes bool
	}{
		{[]string{"TERM=xterm-256color", "NO_COLOR="}, true, true},
		{[]string{"TERM=xterm-256color", "NO_COLOR=1"}, false, true},
		{[]string{"TERM=dumb"}, false, false},
	} {
		cmd := ksClean("--kubeconfig", kc, "scan")
		cmd.Env = append(cmd.Env, c.env...)
		f, err := pty.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(f) // EIO once the command exits
		_ = cmd.Wait()
		f.Close()
		if got := sgr.Match(out); got != c.color {
			t.Errorf("%v: colour %v, want %v:\n%.400q", c.env, got, c.color, out)
		}
		if got := bytes.Contains(out, []byte("\x1b")); got != c.codes && !c.codes {
			t.Errorf("%v: escape codes in plain output:\n%.400q", c.env, out)
		}
		if !bytes.Contains(out, []byte("kubefed-cluster-alias")) {
			t.Errorf("%v: no report on the terminal:\n%.400q", c.env, out)
		}
	}
}

// Command ks-compat runs ks-clean's core scenarios against control planes of
// several Kubernetes versions and reports a table: version × scenario, pass or
// fail, and how long apply took. `make test-compat` runs it.
//
// The scenarios are the project's own tests, selected with -run, so the
// compatibility matrix proves exactly what `make test` proves on the newest
// version; only KUBEBUILDER_ASSETS changes. Each version's binaries come from
// scripts/testbin.sh (K8S_VERSION=…); a version that does not build is a row
// saying what stopped it.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// scenario is one column of the table: go test -run Run in Package.
type scenario struct {
	Name, Package, Run, What string
}

// scenarios: what issue 16 asks for on every version. The incident is the
// seed's story end to end; the others are the paths most likely to meet an
// API that an old server lacks (Helm's SDK, the deletion guard, the 4.x
// finalizers and webhooks).
var scenarios = []scenario{
	{"incident", "./uninstall/", "^(TestApplyScenarios|TestDryRunWritesNothing)$/^incident$", "plan, dry run (0 writes), apply, verify, scan clean, every user object kept"},
	{"cli", "./internal/cli/", "^TestApplyCLI$", "scan, plan, apply and its final check through the command line"},
	{"ks41", "./uninstall/", "^TestApplyScenarios$/^ks41$", "KubeSphere 4.1 teardown: Helm release, extension, finalizers, protector webhook"},
	{"guard", "./uninstall/", "^(TestDeletionGuard|TestDeletionTripwire)$", "the deletion guard this server supports stops a delete of a protected namespace"},
	{"ks341", "./test/conformance/", "^TestKS341Teardown$", "the real KubeSphere 3.4.1 with every component (750 objects from ../shared/footprints): plan refusal on metrics-server's APIService, teardown, nothing of the users' lost"},
	{"reinstall", "./reinstall/", "^TestReinstallOverIncident$", "uninstall, prove clean, Helm install, prove healthy"},
	{"restore", "./restore/", "^TestApplyThenRestore$", "apply, then restore from its backup (resumed after a stop, --reattach, refusals): every footprint object back, users' objects kept"},
	{"keep-tenancy", "./reinstall/", "^TestReinstallKeepsTenancy$", "reinstall --keep-tenancy on 3.x and 4.x: users, workspaces, bindings and namespace bindings back, no alias"},
	{"bad-input", "./internal/cli/", "^TestBadInputTable$", "every bad input refused with its advice and zero writes"},
}

// applyLine is what TestApplyScenarios logs of each apply.
var applyLine = regexp.MustCompile(`apply (\S+): ([0-9.]+(?:ms|s|m[0-9.]*s))`)

type cell struct {
	Pass    bool
	Skipped bool
	Elapsed time.Duration
	Apply   string // apply's own duration, where the scenario logs it
	Failed  []string
}

type row struct {
	Version, Server, BuildError string
	Cells                       map[string]*cell
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ks-compat:", err)
		os.Exit(1)
	}
}

func run() error {
	versions := flag.String("versions", envOr("KS_COMPAT_VERSIONS", "1.22.17 1.24.17 1.26.15 1.28.15 1.30.14 1.34.4"), "Kubernetes versions, space- or comma-separated")
	only := flag.String("scenarios", envOr("KS_COMPAT_SCENARIOS", ""), "scenarios to run (default: all): "+names())
	out := flag.String("out", "bin/compat-report.md", "where the table is written (also printed)")
	logs := flag.String("logs", "bin/compat", "directory for each run's go test output")
	flag.Parse()

	chosen, err := choose(*only)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*logs, 0o755); err != nil {
		return err
	}
	var rows []row
	failed := false
	for _, v := range strings.FieldsFunc(*versions, func(r rune) bool { return r == ' ' || r == ',' }) {
		r := row{Version: strings.TrimPrefix(v, "v"), Cells: map[string]*cell{}}
		fmt.Fprintf(os.Stderr, "ks-compat: Kubernetes %s: building its control plane\n", r.Version)
		dir, err := testbin(r.Version, filepath.Join(*logs, "testbin-"+r.Version+".log"))
		if err != nil {
			r.BuildError = err.Error()
			failed = true
			rows = append(rows, r)
			continue
		}
		r.Server = serverVersion(dir)
		for _, sc := range chosen {
			fmt.Fprintf(os.Stderr, "ks-compat: Kubernetes %s: %s\n", r.Version, sc.Name)
			logPath := filepath.Join(*logs, r.Version+"-"+sc.Name+".log")
			c, err := goTest(sc, dir, logPath)
			if err != nil {
				return err
			}
			if !c.Pass {
				failed = true
			}
			r.Cells[sc.Name] = c
			fmt.Fprintf(os.Stderr, "ks-compat: Kubernetes %s: %s %s (%s)\n", r.Version, sc.Name, verdict(c), c.Elapsed.Round(time.Second))
		}
		rows = append(rows, r)
	}
	report := render(rows, chosen, *logs)
	fmt.Print(report)
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		return err
	}
	if failed {
		return errors.New("some versions or scenarios failed; see the table and " + *logs)
	}
	return nil
}

func choose(only string) ([]scenario, error) {
	if only == "" {
		return scenarios, nil
	}
	var out []scenario
	for _, n := range strings.FieldsFunc(only, func(r rune) bool { return r == ' ' || r == ',' }) {
		found := false
		for _, sc := range scenarios {
			if sc.Name == n {
				out, found = append(out, sc), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, names())
		}
	}
	return out, nil
}

func names() string {
	var n []string
	for _, sc := range scenarios {
		n = append(n, sc.Name)
	}
	return strings.Join(n, ", ")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// testbin builds (or finds cached) binaries of one version; on failure the
// error is the script's last words, which say what stopped the build.
func testbin(version, logPath string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", "scripts/testbin.sh")
	cmd.Env = append(os.Environ(), "K8S_VERSION="+version)
	f, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, f)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build failed (%v): %s", err, lastLines(stderr.String(), 2))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return lines[len(lines)-1], nil
}

func serverVersion(dir string) string {
	b, err := exec.Command(filepath.Join(dir, "kube-apiserver"), "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.TrimPrefix(string(b), "Kubernetes "))
}

// event is one line of go test -json.
type event struct {
	Action, Test, Output string
	Elapsed              float64
}

func goTest(sc scenario, binDir, logPath string) (*cell, error) {
	cmd := exec.Command("go", "test", "-count=1", "-json", "-timeout", "30m", "-run", sc.Run, sc.Package)
	cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+binDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stderr = f
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &cell{}
	ran := 0
	sc2 := bufio.NewScanner(stdout)
	sc2.Buffer(make([]byte, 1<<20), 1<<24)
	for sc2.Scan() {
		var e event
		if json.Unmarshal(sc2.Bytes(), &e) != nil {
			continue
		}
		if e.Output != "" {
			_, _ = f.WriteString(e.Output)
			if m := applyLine.FindStringSubmatch(e.Output); m != nil && c.Apply == "" {
				c.Apply = m[2]
			}
		}
		if e.Test == "" || strings.Contains(e.Test, "/") {
			continue
		}
		switch e.Action {
		case "pass":
			ran++
		case "skip":
			c.Skipped = true
		case "fail":
			ran++
			c.Failed = append(c.Failed, e.Test)
		}
	}
	werr := cmd.Wait()
	c.Elapsed = time.Since(start)
	// A build failure or a panic outside any test fails go test with no
	// test event; no test run at all is not a pass either.
	c.Pass = werr == nil && len(c.Failed) == 0 && ran > 0
	if !c.Pass && len(c.Failed) == 0 {
		c.Failed = []string{"go test: " + lastLines(readTail(logPath), 1)}
	}
	return c, nil
}

func verdict(c *cell) string {
	switch {
	case c.Pass:
		return "pass"
	case c.Skipped && len(c.Failed) == 0:
		return "skipped"
	}
	return "FAIL"
}

func render(rows []row, chosen []scenario, logs string) string {
	var b strings.Builder
	b.WriteString("| Kubernetes | server |")
	for _, sc := range chosen {
		b.WriteString(" " + sc.Name + " |")
	}
	b.WriteString(" apply (incident) |\n|---|---|")
	for range chosen {
		b.WriteString("---|")
	}
	b.WriteString("---|\n")
	for _, r := range rows {
		if r.BuildError != "" {
			fmt.Fprintf(&b, "| %s | not built | %s |\n", r.Version, strings.ReplaceAll(r.BuildError, "|", "/"))
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", r.Version, r.Server)
		apply := "–"
		for _, sc := range chosen {
			c := r.Cells[sc.Name]
			fmt.Fprintf(&b, " %s %ds |", verdict(c), int(c.Elapsed.Seconds()))
			if sc.Name == "incident" && c.Apply != "" {
				apply = c.Apply
			}
		}
		fmt.Fprintf(&b, " %s |\n", apply)
	}
	b.WriteString("\nScenarios (each a `go test -run` of the project's own tests; seconds include starting the control plane):\n\n")
	for _, sc := range chosen {
		fmt.Fprintf(&b, "- **%s** (`%s -run '%s'`): %s.\n", sc.Name, sc.Package, sc.Run, sc.What)
	}
	var fails []string
	for _, r := range rows {
		for _, sc := range chosen {
			if c := r.Cells[sc.Name]; c != nil && !c.Pass && len(c.Failed) > 0 {
				fails = append(fails, fmt.Sprintf("- %s %s: %s (log: %s)", r.Version, sc.Name, strings.Join(c.Failed, ", "), filepath.Join(logs, r.Version+"-"+sc.Name+".log")))
			}
		}
	}
	if len(fails) > 0 {
		b.WriteString("\nFailures:\n\n" + strings.Join(fails, "\n") + "\n")
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

func readTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

package cli

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as ks-clean, so the SIGKILL test can run
// apply as a separate process without building one.
func TestMain(m *testing.M) {
	if os.Getenv("KS_CLEAN_AS_CLI") == "1" {
		os.Exit(Main())
	}
	os.Exit(m.Run())
}

func ksClean(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "KS_CLEAN_AS_CLI=1")
	return cmd
}

// journalSteps counts finished steps in an apply's journal.
func journalSteps(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"status":"done"`) || strings.Contains(sc.Text(), `"status":"skipped"`) {
			n++
		}
	}
	return n
}

// killAfter runs ks-clean and kills it with SIGKILL once journal holds k
// finished steps; it says whether it had to.
func killAfter(t *testing.T, journal string, k int, args ...string) bool {
	t.Helper()
	cmd := ksClean(args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case <-exited:
			return false
		case <-time.After(2 * time.Millisecond):
			if journalSteps(journal) >= k {
				cmd.Process.Signal(syscall.SIGKILL)
				<-exited
				return true
			}
		}
	}
}

// Apply is killed with SIGKILL after the k-th finished step, for several k;
// every rerun picks up from the journal, and the last one converges with
// every user object kept. Then restore is killed the same way, and resumes
// to every footprint object back, the users' objects still with their UIDs.
func TestSIGKILLAndResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cp, s := incidentCluster(t)
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	if out, err := ksClean("--kubeconfig", cp.AdminKubeconfig, "plan", "--out", planFile).CombinedOutput(); err != nil {
		t.Fatalf("plan: %v\n%s", err, out)
	}
	journal := planFile + ".apply/journal.jsonl"
	for _, k := range []int{1, 8, 20, 45, 90} {
		killed := killAfter(t, journal, k, "--kubeconfig", cp.AdminKubeconfig, "apply", planFile, "--confirm", "--finalizer-timeout", "20s")
		t.Logf("k=%d: killed=%v, journal has %d finished steps", k, killed, journalSteps(journal))
		if missing, _ := s.Missing(ctx, s.Seeded.Protected); len(missing) > 0 {
			t.Fatalf("after SIGKILL at step %d, user objects lost: %v", k, missing)
		}
	}
	out, err := ksClean("--kubeconfig", cp.AdminKubeconfig, "apply", planFile, "--confirm", "--finalizer-timeout", "20s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified") {
		t.Fatalf("final apply: %v\n%s", err, out)
	}
	if missing, _ := s.Missing(ctx, s.Seeded.Protected); len(missing) > 0 {
		t.Fatalf("user objects lost: %v", missing)
	}
	if present, _ := s.Present(ctx, s.Seeded.Footprint); len(present) > 0 {
		t.Fatalf("footprint left: %v", present)
	}

	backup := planFile + ".apply"
	journal = filepath.Join(backup, "restore-journal.jsonl")
	for _, k := range []int{1, 30, 70} {
		killed := killAfter(t, journal, k, append([]string{"--kubeconfig", cp.AdminKubeconfig, "restore", backup, "--confirm"}, allowKinds()...)...)
		t.Logf("restore k=%d: killed=%v, journal has %d finished steps", k, killed, journalSteps(journal))
	}
	out, err = ksClean(append([]string{"--kubeconfig", cp.AdminKubeconfig, "restore", backup, "--confirm"}, allowKinds()...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "verified") {
		t.Fatalf("final restore: %v\n%s", err, out)
	}
	if missing, _ := s.Missing(ctx, s.Seeded.Protected); len(missing) > 0 {
		t.Fatalf("user objects lost by restore: %v", missing)
	}
	var notBack []string
	for _, r := range s.Seeded.Footprint {
		r.UID = ""
		if _, err := s.Get(ctx, r); err != nil {
			notBack = append(notBack, r.String())
		}
	}
	if len(notBack) > 0 {
		t.Fatalf("%d footprint objects not back after the restore was killed and resumed: %v", len(notBack), notBack)
	}
}

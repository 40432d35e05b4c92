package journal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordAndResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := Open(path, "sha256:plan")
	if err != nil {
		t.Fatal(err)
	}
	for step, status := range map[string]string{"1": Done, "2": Skipped, "3": Failed} {
		if err := j.Record(step, status, "detail"); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	again, err := Open(path, "sha256:plan")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if !again.Done("1") || !again.Done("2") || again.Done("3") {
		t.Fatal("a resumed journal must hold the done and skipped steps, not the failed one")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode %v, %v", fi.Mode(), err)
	}
	if _, err := Open(path, "sha256:other"); err == nil || !strings.Contains(err.Error(), "belongs to another plan") {
		t.Fatalf("another plan's journal: %v", err)
	}
}

// A step whose line cannot be written is not done: Record says so, and the
// caller stops writing (apply and restore halt their Lease).
func TestRecordFailureIsAnError(t *testing.T) {
	j, err := Open(filepath.Join(t.TempDir(), "journal.jsonl"), "sha256:plan")
	if err != nil {
		t.Fatal(err)
	}
	j.f.Close() // the disk is gone
	if err := j.Record("1", Done, ""); err == nil {
		t.Fatal("Record on a closed journal returned no error")
	}
	if j.Done("1") {
		t.Fatal("a step the journal could not record counts as done")
	}
}

func TestNeverThroughALink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "journal.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, "sha256:plan"); err == nil {
		t.Fatal("a journal that is a symlink was opened")
	}
}

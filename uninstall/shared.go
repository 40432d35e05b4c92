package uninstall

import (
	"path/filepath"
	"strings"

	"github.com/ks-clean/ks-clean/api"
)

// What restore shares with apply: a journal to resume from (the Lease is
// internal/lease's).

// Journal records which steps of a run are done, one synced line each.
type Journal struct{ j *journal }

// OpenJournal opens (or starts) the journal in dir of the run keyed key;
// a journal of another key is refused.
func OpenJournal(dir, name, key string) (*Journal, error) {
	j, err := openJournalFile(filepath.Join(dir, name), key)
	if err != nil {
		return nil, err
	}
	return &Journal{j}, nil
}

// Done says whether step finished (done or skipped) in an earlier run.
func (j *Journal) Done(step string) bool { return j.j.isDone(step) }

// Record appends the step's outcome.
func (j *Journal) Record(step, status, detail string) { j.j.record(step, status, detail) }

// Close closes the file.
func (j *Journal) Close() { j.j.close() }

// JournalStep is how a step of an apply finished: done, or skipped, and
// why.
type JournalStep struct {
	Status string
	Detail string
}

// Gone says the step's target was gone when the step finished: apply
// made the change (a delete), or found the object gone already. A step
// skipped because its target was re-created since planning left that new
// object alone: it is not gone.
func (s JournalStep) Gone() bool {
	switch s.Status {
	case StatusDone:
		return true
	case StatusSkipped:
		return !strings.Contains(s.Detail, errRecreated.Error())
	}
	return false
}

// ReadJournal reads an apply's journal in dir: the key it was started with
// and how each finished step ended (done, or skipped), by step. A missing
// journal reads as empty; a journal that is a link, a special file or too
// large is an error.
func ReadJournal(dir string) (key string, finished map[string]JournalStep, err error) {
	head, entries, err := readJournalFile(filepath.Join(dir, api.JournalFile))
	if err != nil {
		return "", nil, err
	}
	if head != nil && head.Step == "plan" {
		key = head.Detail
	}
	finished = make(map[string]JournalStep, len(entries))
	for step, e := range entries {
		finished[step] = JournalStep{Status: e.Status, Detail: e.Detail}
	}
	return key, finished, nil
}

package uninstall

import (
	"path/filepath"
	"strings"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
)

// What restore shares with apply: how apply's journal says each step
// ended (the journal itself is internal/journal's, the Lease
// internal/lease's).

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
	head, entries, err := journal.Read(filepath.Join(dir, api.JournalFile))
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

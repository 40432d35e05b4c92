package uninstall

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/internal/journal"
)

// Step outcomes recorded in the journal and the result.
const (
	StatusDone    = journal.Done
	StatusSkipped = journal.Skipped // nothing to do: gone already, or re-created since planning and left alone
	StatusFailed  = journal.Failed
)

// StatusNote marks a progress Event that reports what a phase's wait saw
// and did, not a step's outcome (never journalled).
const StatusNote = "note"

// openJournal opens apply's journal in the stage's backup directory dir,
// after checking that directory holds nothing apply did not make as it
// makes it (api.CheckPrivateDir): the backup written next holds Secrets.
// In a plan of several stages (digest is "PLAN/STAGE") the directory of
// all the stages is checked.
func openJournal(dir, digest string) (*journal.Journal, error) {
	top := dir
	if strings.Contains(digest, "/") {
		top = filepath.Dir(dir)
	}
	if err := api.CheckPrivateDir(top); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, api.JournalFile)
	if err := checkEarlierBackup(dir, path, digest); err != nil {
		return nil, err
	}
	return journal.Open(path, digest)
}

// checkEarlierBackup refuses, before the run's first write, a backup index
// in dir that no earlier run of this stage can have written: apply reuses
// such a backup instead of taking its own (a resume), so one planted there
// would have it delete with nothing saved. An earlier run started the
// journal (key digest) before it took the backup, and sealed it with
// checksums.
func checkEarlierBackup(dir, journalPath, digest string) error {
	index := filepath.Join(dir, api.BackupIndexFile)
	if _, err := os.Lstat(index); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err := func() error {
		x, _, err := api.ReadBackup(dir)
		if err != nil {
			return err
		}
		head, _, err := journal.Read(journalPath)
		switch {
		case err != nil:
			return err
		case x.Plan != digest:
			return fmt.Errorf("it belongs to plan %s, not %s", x.Plan, digest)
		case head == nil || head.Step != "plan" || head.Detail != digest || x.TakenAt.Before(head.At):
			return fmt.Errorf("no journal of this plan was started before it was taken")
		}
		return nil
	}()
	if err != nil {
		return notOurBackup(index, dir, err)
	}
	return nil
}

func notOurBackup(index, dir string, err error) error {
	return api.Refuse(api.FixBackupDir, "%s is not the backup an earlier run of this plan's apply took (%w): apply will not go on without its own backup; move %s away (keep it if an earlier apply of this plan wrote it) and run apply again", index, err, dir)
}

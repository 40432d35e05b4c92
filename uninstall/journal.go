package uninstall

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ks-clean/ks-clean/api"
)

// Step outcomes recorded in the journal and the result.
const (
	StatusDone    = "done"
	StatusSkipped = "skipped" // nothing to do: gone already, or re-created since planning and left alone
	StatusFailed  = "failed"
)

// entry is one journal line.
type entry struct {
	Step   string    `json:"step"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// journal records progress as it happens, one JSON line per finished step,
// so a rerun after a crash or Ctrl-C skips what is done and converges.
type journal struct {
	mu   sync.Mutex
	f    *os.File
	done map[string]entry
}

// openJournal opens apply's journal in the stage's backup directory dir,
// after checking that directory holds nothing apply did not make as it
// makes it (api.CheckPrivateDir): the backup written next holds Secrets.
// In a plan of several stages (digest is "PLAN/STAGE") the directory of
// all the stages is checked.
func openJournal(dir, digest string) (*journal, error) {
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
	return openJournalFile(path, digest)
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
		head, _, err := readJournalFile(journalPath)
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

func openJournalFile(path, digest string) (*journal, error) {
	j := &journal{done: map[string]entry{}}
	head, finished, err := readJournalFile(path)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w: move it away to start over", path, err)
	}
	if head != nil && head.Step == "plan" && head.Detail != digest {
		return nil, fmt.Errorf("journal %s belongs to another plan (%s): use another backup directory for this plan", path, head.Detail)
	}
	j.done = finished
	f, err := openAppend(path)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j.f = f
	if st, _ := f.Stat(); st != nil && st.Size() == 0 {
		j.write(entry{Step: "plan", Status: "started", Detail: digest, At: time.Now().UTC()})
	}
	return j, nil
}

// openAppend opens a journal to append to: a new file is made exclusively
// (never through a link, mode 0600); an existing one must be a regular
// file open to nobody else, and the very file checked.
func openAppend(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is not a regular file of mode 0600 (mode %v): %w; ks-clean never writes through a link or into a file others can read", path, fi.Mode(), api.ErrBackupUnsafe)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	if now, err := f.Stat(); err != nil || !os.SameFile(fi, now) {
		f.Close()
		return nil, fmt.Errorf("%s changed while it was opened: %w", path, api.ErrBackupUnsafe)
	}
	return f, nil
}

// readJournalFile reads a journal: its first line (which names the run it
// belongs to), and the steps that finished (done or skipped), by step. A
// line cut by a crash is skipped; a missing file reads as empty.
func readJournalFile(path string) (head *entry, finished map[string]entry, err error) {
	finished = map[string]entry{}
	b, err := api.ReadRegularFile(path, api.MaxBackupRecordBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, finished, nil
	}
	if err != nil {
		return nil, nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e entry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		case head == nil:
			head = &e
		case e.Status == StatusDone || e.Status == StatusSkipped:
			finished[e.Step] = e
		}
	}
	return head, finished, sc.Err()
}

func (j *journal) isDone(step string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.done[step]
	return ok
}

func (j *journal) record(step, status, detail string) {
	e := entry{Step: step, Status: status, Detail: detail, At: time.Now().UTC()}
	j.mu.Lock()
	defer j.mu.Unlock()
	if status != StatusFailed {
		j.done[step] = e
	}
	j.write(e)
}

// write appends and syncs: a line is on disk before the next write starts.
func (j *journal) write(e entry) {
	b, _ := json.Marshal(e)
	j.f.Write(append(b, '\n'))
	j.f.Sync()
}

func (j *journal) close() {
	if j != nil && j.f != nil {
		j.f.Close()
	}
}

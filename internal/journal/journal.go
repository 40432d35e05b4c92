// Package journal records which steps of a run finished, one synced JSON
// line each, so that a run stopped by a crash, a kill or Ctrl-C is resumed
// by the same command: apply's journal beside its backup, restore's beside
// the backup it restores. A journal belongs to one run (its first line
// names the run's key, a plan digest): another run's is refused.
package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ks-clean/ks-clean/api"
)

// Step outcomes. Done and Skipped finish a step (a rerun does not do it
// again); Failed is recorded for the reader, and the step runs again.
const (
	Done    = "done"
	Skipped = "skipped"
	Failed  = "failed"
)

// ErrRecreated is why a step was skipped whose target was re-created since
// planning (another UID): the step is finished, and the new object was left
// alone, so the planned one is gone but nothing was done to it.
var ErrRecreated = errors.New("re-created since planning (another UID); left alone")

// Entry is one line.
type Entry struct {
	Step   string    `json:"step"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

// Gone says the step's target was gone when the step finished: the run made
// the change (a delete), or found the object gone already. A step skipped
// because its target was re-created since planning left that new object
// alone: it is not gone.
func (e Entry) Gone() bool {
	switch e.Status {
	case Done:
		return true
	case Skipped:
		return !strings.Contains(e.Detail, ErrRecreated.Error())
	}
	return false
}

// Key is the run a journal belongs to: its first line's, "" when it has
// none.
func Key(head *Entry) string {
	if head != nil && head.Step == "plan" {
		return head.Detail
	}
	return ""
}

// Journal is an open journal.
type Journal struct {
	mu   sync.Mutex
	f    *os.File
	done map[string]Entry
}

// Open opens the journal at path for the run keyed key, or starts it. A
// journal of another key is refused, as is a path that is a link, a
// special file or open to others.
func Open(path, key string) (*Journal, error) {
	head, finished, err := Read(path)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w: move it away to start over", path, err)
	}
	if head != nil && head.Step == "plan" && head.Detail != key {
		return nil, fmt.Errorf("journal %s belongs to another plan (%s): use another backup directory for this plan", path, head.Detail)
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	j := &Journal{f: f, done: finished}
	if st, _ := f.Stat(); st != nil && st.Size() == 0 {
		if err := j.write(Entry{Step: "plan", Status: "started", Detail: key, At: time.Now().UTC()}); err != nil {
			f.Close()
			return nil, fmt.Errorf("start journal %s: %w", path, err)
		}
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

// Read reads a journal: its first line (which names the run it belongs
// to), and the steps that finished (done or skipped), by step. A line cut
// by a crash is skipped; a missing file reads as empty.
func Read(path string) (head *Entry, finished map[string]Entry, err error) {
	finished = map[string]Entry{}
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
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch {
		case head == nil:
			head = &e
		case e.Status == Done || e.Status == Skipped:
			finished[e.Step] = e
		}
	}
	return head, finished, sc.Err()
}

// Done says whether step finished (done or skipped), in this run or an
// earlier one.
func (j *Journal) Done(step string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.done[step]
	return ok
}

// Record appends the step's outcome and syncs it. An error means the
// journal no longer says what was done: the caller must stop writing to
// the cluster, or a rerun could not resume.
func (j *Journal) Record(step, status, detail string) error {
	e := Entry{Step: step, Status: status, Detail: detail, At: time.Now().UTC()}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.write(e); err != nil {
		return fmt.Errorf("record step %s in the journal %s: %w", step, j.f.Name(), err)
	}
	if status != Failed {
		j.done[step] = e
	}
	return nil
}

// write appends and syncs: a line is on disk before the next write starts.
func (j *Journal) write(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return j.f.Sync()
}

// Close closes the file.
func (j *Journal) Close() {
	if j != nil && j.f != nil {
		j.f.Close()
	}
}

package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// The files of an apply's backup directory (one per stage): what `ks-clean
// restore` reads back.
const (
	BackupIndexFile = "index.json"
	BackupStageFile = "stage.json"
	JournalFile     = "journal.jsonl"
	KindBackupIndex = "BackupIndex"
	// BackupObjectsDir holds one file per object; every index entry is
	// below it.
	BackupObjectsDir = "objects"
)

// Size caps of what restore reads from a backup. A backup is an input like
// any other: a file of a crafted backup may be /dev/zero or a few gigabytes.
const (
	// MaxBackupObjectBytes caps one object's file. etcd refuses a request
	// above 1.5 MiB (--max-request-bytes) and a ConfigMap or Secret holds
	// at most 1 MiB of data; 4 MiB leaves room for JSON's overhead.
	MaxBackupObjectBytes = 4 << 20
	// MaxBackupRecordBytes caps index.json, stage.json, the journals and
	// the restore plan: about 300 bytes an object, so room for several
	// hundred thousand objects or steps.
	MaxBackupRecordBytes = 128 << 20
	// MaxBackupTotalBytes caps the object files of one stage together:
	// etcd's largest recommended database is 8 GiB.
	MaxBackupTotalBytes = 8 << 30
)

// ErrBackupUnsafe is returned for a file of a backup that is not a plain
// file inside the backup directory (a path leaving it, a symbolic link, a
// device, a pipe), too large, or writable by others.
var ErrBackupUnsafe = errors.New("not a plain file of the backup")

// BackupIndex lists what a stage's backup holds and which run took it. Its
// digest and each file's sha256 let restore refuse a backup that was cut
// short or edited.
type BackupIndex struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	// Plan is the journal key of the stage backed up (plan digest, and
	// "/STAGE" in a plan of several stages).
	Plan string `json:"plan"`
	// Cluster is the UID of the backed-up cluster's kube-system namespace.
	Cluster string    `json:"cluster,omitempty"`
	TakenAt time.Time `json:"takenAt"`
	// StageSHA256 is the sha256 of BackupStageFile: the plan's stage,
	// which says what apply was to do.
	StageSHA256 string        `json:"stageSha256,omitempty"`
	Objects     []BackupEntry `json:"objects"`
	Digest      string        `json:"digest,omitempty"`
}

// BackupEntry is one object of the backup: what it was, and the file
// (relative to the backup directory, '/'-separated, below objects/)
// holding it as read before any write.
type BackupEntry struct {
	ObjectRef
	File   string `json:"file"`
	SHA256 string `json:"sha256,omitempty"`
}

// ComputeDigest is the sha256 of the index's JSON with the digest empty.
func (x *BackupIndex) ComputeDigest() (string, error) {
	c := *x
	c.Digest = ""
	return digestOf(&c)
}

// FileSHA256 is the "sha256:HEX" of a file's bytes.
func FileSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckBackupPath refuses a file name of a backup's index that could lead
// outside the backup: absolute, with "..", ".", empty or backslashed
// elements, or not below objects/.
func CheckBackupPath(rel string) error {
	bad := rel == "" || strings.ContainsAny(rel, "\\\x00") || path.IsAbs(rel) || filepath.IsAbs(rel) || !filepath.IsLocal(filepath.FromSlash(rel))
	for _, el := range strings.Split(rel, "/") {
		bad = bad || el == "" || el == "." || el == ".."
	}
	if bad || !strings.HasPrefix(rel, BackupObjectsDir+"/") {
		return fmt.Errorf("%q: %w: a file of the index must be a relative path below %s/, without \"..\"", rel, ErrBackupUnsafe, BackupObjectsDir)
	}
	return nil
}

// ReadBackupFile reads the file rel (a '/'-separated path, checked with
// CheckBackupPath unless it is one of the backup's own records) inside
// dir: every element of its path must be a real directory, never a
// symbolic link, the file a regular one of at most limit bytes, none of
// them writable by others.
func ReadBackupFile(dir, rel string, limit int64) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return readInside(root, dir, rel, limit)
}

func readInside(root *os.Root, dir, rel string, limit int64) ([]byte, error) {
	if !strings.Contains(rel, "/") {
		if rel == "" || rel == "." || rel == ".." || strings.ContainsAny(rel, "\\\x00") {
			return nil, fmt.Errorf("%q: %w", rel, ErrBackupUnsafe)
		}
	} else if err := CheckBackupPath(rel); err != nil {
		return nil, err
	}
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		sub := filepath.Join(parts[:i]...)
		fi, err := root.Lstat(sub)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s: %s is %s, not a directory: %w", rel, sub, describe(fi), ErrBackupUnsafe)
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return nil, fmt.Errorf("%s: directory %s is writable by others (mode %v): %w; anyone could have changed it", rel, sub, fi.Mode().Perm(), ErrBackupUnsafe)
		}
	}
	name := filepath.FromSlash(rel)
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s: %w", rel, describe(fi), ErrBackupUnsafe)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by others (mode %v): %w; anyone could have changed it", rel, fi.Mode().Perm(), ErrBackupUnsafe)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a file of a backup may have: %w", rel, fi.Size(), limit, ErrBackupUnsafe)
	}
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readChecked(f, fi, rel, limit, ErrBackupUnsafe)
}

// readChecked reads f, opened after fi was checked: a file replaced
// between the check and the open (a link, a pipe) is refused, and no more
// than limit bytes are read whatever the file has become.
func readChecked(f *os.File, fi fs.FileInfo, name string, limit int64, kind error) ([]byte, error) {
	if now, err := f.Stat(); err != nil || !os.SameFile(fi, now) {
		return nil, fmt.Errorf("%s changed while it was read: %w", name, kind)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is more than %d bytes: %w", name, limit, kind)
	}
	return b, nil
}

func describe(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsRegular():
		return "a regular file"
	}
	return "not a regular file"
}

// ReadRegularFile reads a file ks-clean wrote itself (a journal, a restore
// plan) at path: never through a symbolic link, a regular file only, at most
// limit bytes. A missing file is an fs.ErrNotExist error.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s: %w", path, describe(fi), ErrBackupUnsafe)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d: %w", path, fi.Size(), limit, ErrBackupUnsafe)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readChecked(f, fi, path, limit, ErrBackupUnsafe)
}

// CheckPrivateDir refuses a backup directory apply would write Secrets
// into when anything in it is not as apply makes it: a symbolic link, a
// device or pipe, a directory wider than 0700, a file wider than 0600. A
// missing directory is fine (apply makes it).
func CheckPrivateDir(dir string) error {
	fix := "move it away, or choose another --backup-dir"
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return Refuse(FixBackupDir, "backup directory %s: %w", dir, err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return Refuse(FixBackupDir, "backup directory %s: %w", dir, err)
		}
		switch m := fi.Mode(); {
		case notOurs(fi) != "":
			return Refuse(FixBackupDir, "backup directory %s: %s is owned by %s: apply writes Secrets there, and its owner could read them or change the backup; %s", dir, p, notOurs(fi), fix)
		case m&fs.ModeSymlink != 0 || !(m.IsDir() || m.IsRegular()):
			return Refuse(FixBackupDir, "backup directory %s: %s is %s: apply writes Secrets there and never through a link or into a special file; %s", dir, p, describe(fi), fix)
		case m.IsDir() && m.Perm()&0o077 != 0:
			return Refuse(FixBackupDir, "backup directory %s: directory %s has mode %v, wider than 0700: others could read the Secrets apply saves there or plant files; chmod -R go-rwx it, or %s", dir, p, m.Perm(), fix)
		case m.IsRegular() && m.Perm()&0o077 != 0:
			return Refuse(FixBackupDir, "backup directory %s: file %s has mode %v, wider than 0600: apply never made it so; %s", dir, p, m.Perm(), fix)
		}
		return nil
	})
}

// WritePrivateFile writes b to path, mode 0600, through a new temporary
// file renamed over path: never through a symbolic link or into a file
// someone made beforehand with a wider mode.
func WritePrivateFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadBackup loads a stage's backup index and stage from dir and checks
// that nothing in it was edited, is missing, leaves the directory, or
// contradicts itself. Every problem is a Refusal.
func ReadBackup(dir string) (*BackupIndex, *Stage, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, Refuse(FixBackup, "backup directory %s: %w", dir, err)
	}
	defer root.Close()
	path := filepath.Join(dir, BackupIndexFile)
	b, err := readInside(root, dir, BackupIndexFile, MaxBackupRecordBytes)
	if err != nil {
		return nil, nil, Refuse(FixBackup, "%s is not a complete backup of an apply (%w): an apply that stopped before its backup was written changed nothing; give the backup directory apply printed", dir, err)
	}
	var x BackupIndex
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, nil, Refuse(FixBackup, "backup index %s is damaged: %w", path, err)
	}
	if x.Digest == "" || x.StageSHA256 == "" {
		return nil, nil, Refuse(FixBackup, "backup %s was taken by a ks-clean that could not restore (no checksums): restore it by hand from its objects/ folder", dir)
	}
	if d, err := x.ComputeDigest(); err != nil || d != x.Digest {
		return nil, nil, Refuse(FixBackup, "backup index %s: %w (it was edited after the backup): use the backup as apply wrote it", path, ErrBackupEdited)
	}
	sb, err := readInside(root, dir, BackupStageFile, MaxBackupRecordBytes)
	if err != nil {
		return nil, nil, Refuse(FixBackup, "backup %s: %s: %w: use the backup as apply wrote it", dir, BackupStageFile, err)
	}
	if FileSHA256(sb) != x.StageSHA256 {
		return nil, nil, Refuse(FixBackup, "backup %s: %s: %w: use the backup as apply wrote it", dir, BackupStageFile, ErrBackupEdited)
	}
	var st Stage
	if err := json.Unmarshal(sb, &st); err != nil {
		return nil, nil, Refuse(FixBackup, "backup %s: %s is damaged: %w", dir, BackupStageFile, err)
	}
	if err := checkIndex(&x, &st); err != nil {
		return nil, nil, Refuse(FixBackup, "backup %s: %w: use the backup as apply wrote it", dir, err)
	}
	var total int64
	for _, e := range x.Objects {
		ob, err := readInside(root, dir, e.File, MaxBackupObjectBytes)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, Refuse(FixBackup, "backup %s is incomplete: %s (%s) is missing: %w", dir, e.File, e.ObjectRef, err)
		}
		if err != nil {
			return nil, nil, Refuse(FixBackup, "backup %s: %s (%s): %w: use the backup as apply wrote it", dir, e.File, e.ObjectRef, err)
		}
		if total += int64(len(ob)); total > MaxBackupTotalBytes {
			return nil, nil, Refuse(FixBackup, "backup %s holds more than %d bytes of objects: %w", dir, int64(MaxBackupTotalBytes), ErrBackupUnsafe)
		}
		if FileSHA256(ob) != e.SHA256 {
			return nil, nil, Refuse(FixBackup, "backup %s: %s (%s): %w (edited after the backup): use the backup as apply wrote it", dir, e.File, e.ObjectRef, ErrBackupEdited)
		}
	}
	return &x, &st, nil
}

// checkIndex refuses an index and stage that contradict each other or
// themselves: what apply writes never does.
func checkIndex(x *BackupIndex, st *Stage) error {
	if st.Name == "" || st.Cluster.UID == "" {
		return fmt.Errorf("%s names no stage or cluster", BackupStageFile)
	}
	if st.Cluster.UID != x.Cluster {
		return fmt.Errorf("%s is of cluster %s, its index of cluster %s", BackupStageFile, st.Cluster.UID, x.Cluster)
	}
	if digest, name, multi := strings.Cut(x.Plan, "/"); digest == "" || multi && name != st.Name {
		return fmt.Errorf("its index belongs to %q, not to stage %q", x.Plan, st.Name)
	}
	steps := map[string]bool{}
	for _, s := range st.Steps {
		if s.ID == "" || steps[s.ID] {
			return fmt.Errorf("%s: step id %q is empty or not unique", BackupStageFile, s.ID)
		}
		steps[s.ID] = true
	}
	files, uids := map[string]bool{}, map[string]bool{}
	for _, e := range x.Objects {
		if err := CheckBackupPath(e.File); err != nil {
			return fmt.Errorf("index entry %s: %w", e.ObjectRef, err)
		}
		if e.APIVersion == "" || e.Kind == "" || e.Name == "" || e.UID == "" {
			return fmt.Errorf("index entry %q names no object", e.File)
		}
		if files[e.File] || uids[e.UID] {
			return fmt.Errorf("index entry %s: its file or UID is listed twice", e.ObjectRef)
		}
		files[e.File], uids[e.UID] = true, true
	}
	return nil
}

// WriteBackupIndex seals and writes the index, mode 0600, atomically.
func WriteBackupIndex(dir string, x *BackupIndex) error {
	x.APIVersion, x.Kind = APIVersion, KindBackupIndex
	d, err := x.ComputeDigest()
	if err != nil {
		return err
	}
	x.Digest = d
	if err := writeFile(filepath.Join(dir, BackupIndexFile), x); err != nil {
		return fmt.Errorf("write backup index: %w", err)
	}
	return nil
}

// StageDirName names the backup directory of stage i (from 0) called name
// in a plan of several stages, under apply's backup directory: "NN-NAME",
// the name reduced to [a-z0-9.-] (a context name such as EKS's
// arn:aws:eks:REGION:ACCOUNT:cluster/NAME holds '/' and ':'; a stage name
// is never a path). The number keeps names that reduce alike apart.
func StageDirName(i int, name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-'
		switch {
		case ok:
			b.WriteRune(r)
			dash = r == '-'
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-.")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-.")
	}
	if s == "" {
		s = "stage"
	}
	return fmt.Sprintf("%02d-%s", i+1, s)
}

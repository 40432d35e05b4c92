//go:build unix

package api

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A backup's files are read only inside it, never through a link, never a
// device or pipe, never beyond a size cap (issue 22, item 3).
func TestReadBackupFile(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "objects", "ns"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "objects", "ns", "ok.json"), []byte("{}"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "objects", "ns", "big.json"), make([]byte, 100), 0o600))
	must(os.WriteFile(filepath.Join(dir, "objects", "ns", "open.json"), []byte("{}"), 0o600))
	must(os.Chmod(filepath.Join(dir, "objects", "ns", "open.json"), 0o666))
	must(os.Symlink("/dev/zero", filepath.Join(dir, "objects", "ns", "zero.json")))
	must(os.Symlink(outside, filepath.Join(dir, "objects", "ns", "out.json")))
	must(os.Symlink(filepath.Dir(outside), filepath.Join(dir, "objects", "linked")))
	must(syscall.Mkfifo(filepath.Join(dir, "objects", "ns", "fifo.json"), 0o600))

	if b, err := ReadBackupFile(dir, "objects/ns/ok.json", 10); err != nil || string(b) != "{}" {
		t.Fatalf("a plain file: %q, %v", b, err)
	}
	for rel, want := range map[string]string{
		"objects/ns/big.json":    "more than",
		"objects/ns/open.json":   "writable by others",
		"objects/ns/zero.json":   "a symbolic link",
		"objects/ns/out.json":    "a symbolic link",
		"objects/linked/secret":  "not a directory",
		"objects/ns/fifo.json":   "a named pipe",
		"objects/../../secret":   `without ".."`,
		"/dev/zero":              "relative path below objects/",
		"objects/ns/../ok.json":  `without ".."`,
		"objects//ns/ok.json":    "relative path",
		"objects\\ns\\ok.json":   "not a plain file",
		"index.json/../../x":     "below objects/",
		"objects/ns/absent.json": "no such file",
	} {
		_, err := ReadBackupFile(dir, rel, 10)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", rel, err, want)
		}
		if err != nil && want != "no such file" && !errors.Is(err, ErrBackupUnsafe) {
			t.Errorf("%s: %v does not wrap ErrBackupUnsafe", rel, err)
		}
	}
}

// apply refuses a backup directory holding a link, a special file or
// anything wider than 0700/0600 (issue 22, item 7).
func TestCheckPrivateDir(t *testing.T) {
	if err := CheckPrivateDir(filepath.Join(t.TempDir(), "absent")); err != nil {
		t.Errorf("a missing directory: %v", err)
	}
	for name, prepare := range map[string]func(d string) error{
		"wide file":  func(d string) error { return os.WriteFile(filepath.Join(d, "f"), nil, 0o666) },
		"wide dir":   func(d string) error { return os.Chmod(d, 0o755) },
		"symlink":    func(d string) error { return os.Symlink("/etc/passwd", filepath.Join(d, "journal.jsonl")) },
		"named pipe": func(d string) error { return syscall.Mkfifo(filepath.Join(d, "p"), 0o600) },
		// Planted by another user, with a private mode: root can make one.
		"another user's file": func(d string) error {
			if os.Geteuid() != 0 {
				return os.Chmod(d, 0o755) // refused too: only root can give a file away
			}
			f := filepath.Join(d, "index.json")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				return err
			}
			return os.Chown(f, 4242, 4242)
		},
	} {
		d := filepath.Join(t.TempDir(), "b")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := prepare(d); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(filepath.Join(d, "f"), 0o666) // past the umask
		if _, ok := AsRefusal(CheckPrivateDir(d)); !ok {
			t.Errorf("%s: not refused", name)
		}
	}
	d := filepath.Join(t.TempDir(), "plan.json.apply")
	if err := os.MkdirAll(filepath.Join(d, "objects", "ns"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateFile(filepath.Join(d, "objects", "ns", "x.json"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivateDir(d); err != nil {
		t.Errorf("a directory as apply makes it: %v", err)
	}
}

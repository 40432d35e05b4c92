//go:build !windows

package lease

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// A holder's local mark is a file named after the random part of its
// identity, in a directory private to this user, locked (flock) for as long
// as the process lives: the kernel drops the lock when it dies, however it
// dies. So a mark that exists and can be locked is a dead holder's of this
// machine and user, and a Lease held by another machine (whatever its host
// name) or another user has no mark here: it is waited for until it expires.
type localMark struct {
	f *os.File
}

// localDir is private to the user: a directory anyone else could write to
// would let them plant a mark and make a live holder look dead.
func localDir() (string, error) {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("ks-clean-%d", os.Getuid()), "leases")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		fi, err := os.Lstat(d)
		if err != nil {
			return "", err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ok || int(st.Uid) != os.Getuid() {
			return "", fmt.Errorf("%s is not a private directory of this user", d)
		}
	}
	return dir, nil
}

// markLocal creates and locks this holder's mark; nil when it cannot (the
// Lease then simply expires after a crash).
func markLocal(nonce string) *localMark {
	dir, err := localDir()
	if err != nil || nonce == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dir, nonce), os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil
	}
	return &localMark{f: f}
}

func (m *localMark) release() {
	if m == nil {
		return
	}
	os.Remove(m.f.Name())
	m.f.Close()
}

// localHolderDead: the mark of nonce exists here and nobody holds its lock.
func localHolderDead(nonce string) bool {
	dir, err := localDir()
	if err != nil || nonce == "" || filepath.Base(nonce) != nonce {
		return false
	}
	p := filepath.Join(dir, nonce)
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false // its process still holds it
	}
	os.Remove(p)
	return true
}

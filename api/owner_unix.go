//go:build unix

package api

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// notOurs says who owns fi when it is not this process's user: a file
// someone else made in a backup directory may be read or swapped by them.
func notOurs(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() {
		return ""
	}
	return fmt.Sprintf("user %d, not this user (%d)", st.Uid, os.Geteuid())
}

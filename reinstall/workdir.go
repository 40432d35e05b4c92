package reinstall

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/ks-clean/ks-clean/api"
)

// privateDir makes dir mode 0700, created if missing: the plan and backup
// it receives hold Secrets. A symlink is refused (it may point anywhere, a
// directory another user controls included), as are a file and a directory
// of another user; a directory of the user's own with group or other
// permissions is tightened to 0700. fix says how to give another.
func privateDir(what, dir, fix string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("%s %s: %w", what, dir, err)
		}
	}
	// Checked after creating, too: what was found missing may have been
	// planted since.
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(dir)
		return api.Refuse(api.FixNone, "%s %s is a symbolic link (to %s): the plan and backup it would hold have Secrets, and a link may lead to a directory others can read or change; %s", what, dir, target, fix)
	}
	if !fi.IsDir() {
		return api.Refuse(api.FixNone, "%s %s is not a directory; %s", what, dir, fix)
	}
	if uid, ok := ownerUID(fi); ok && uid != os.Getuid() {
		return api.Refuse(api.FixNone, "%s %s belongs to user %d, not to you (user %d): its owner could read or replace the plan and backup it would hold; %s", what, dir, uid, os.Getuid(), fix)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// The user's own directory: made private, as ssh expects of ~/.ssh.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s %s is mode %04o, open to other users, and could not be made 0700: %w", what, dir, fi.Mode().Perm(), err)
		}
	}
	return nil
}
